//! The joined channels of one session (at most one per topic), the messages
//! waiting for each, and the callback tasks running for them.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::channel::{AnyChannel, Backlog, ChannelMsg, Finished, TerminateReason};

/// Messages that may wait for one channel's running callback before the
/// session stops reading its client.
pub(crate) const MAX_WAITING: usize = 1024;

/// One joined channel, as the session sees it.
pub(crate) struct ChannelEntry {
    pub(crate) channel_id: u64,
    pub(crate) join_ref: Option<String>,
    /// The channel's state while no callback runs (`None` while one does).
    pub(crate) idle: Option<Box<dyn AnyChannel>>,
    /// Messages that arrived while a callback was running, in order,
    /// shared with the running task (which takes them before handing the
    /// channel back). Only while a callback runs: an idle channel holds no
    /// allocation for it.
    pub(crate) waiting: Option<Arc<Waiting>>,
}

/// The messages waiting for one running channel.
#[derive(Default)]
pub(crate) struct Waiting(Mutex<VecDeque<ChannelMsg>>);

impl Waiting {
    fn lock(&self) -> MutexGuard<'_, VecDeque<ChannelMsg>> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Backlog for Waiting {
    fn take_next(&self) -> Option<ChannelMsg> {
        let mut queue = self.lock();
        let next = queue.pop_front();
        if queue.is_empty() {
            *queue = VecDeque::new();
        }
        next
    }
}

/// topic -> joined channel, plus the running callbacks by channel id.
/// Vectors: a connection joins a handful of topics (at most
/// `max_channels`), and a hash map costs more memory than a scan costs time.
#[derive(Default)]
pub(crate) struct ChannelTable {
    entries: Vec<(String, ChannelEntry)>,
    running: Vec<(u64, JoinHandle<Finished>)>,
}

impl ChannelTable {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get_mut(&mut self, topic: &str) -> Option<&mut ChannelEntry> {
        self.entries
            .iter_mut()
            .find(|(t, _)| t == topic)
            .map(|(_, entry)| entry)
    }

    /// Add the channel of `topic` (the caller removed any previous one).
    pub(crate) fn insert(&mut self, topic: String, entry: ChannelEntry) {
        // Exactly one slot for the common single-channel connection.
        self.entries.reserve_exact(1);
        self.entries.push((topic, entry));
    }

    pub(crate) fn remove(&mut self, topic: &str) -> Option<ChannelEntry> {
        let index = self.entries.iter().position(|(t, _)| t == topic)?;
        Some(self.entries.swap_remove(index).1)
    }

    fn index_of(&self, channel_id: u64) -> Option<usize> {
        self.entries
            .iter()
            .position(|(_, entry)| entry.channel_id == channel_id)
    }

    pub(crate) fn remove_by_id(&mut self, channel_id: u64) -> Option<(String, ChannelEntry)> {
        let index = self.index_of(channel_id)?;
        Some(self.entries.swap_remove(index))
    }

    /// Give `msg` to the channel: run it now if the channel is idle,
    /// otherwise queue it behind the running callback.
    pub(crate) fn deliver(&mut self, channel_id: u64, msg: ChannelMsg) {
        let Some(index) = self.index_of(channel_id) else {
            // The channel ended; so does what was sent to it.
            return;
        };
        let entry = &mut self.entries[index].1;
        match entry.idle.take() {
            Some(channel) => {
                let waiting = Arc::new(Waiting::default());
                entry.waiting = Some(waiting.clone());
                self.running
                    .push((channel_id, channel.handle(msg, waiting)));
            }
            None => entry
                .waiting
                .get_or_insert_with(Default::default)
                .lock()
                .push_back(msg),
        }
    }

    /// How many messages wait for `channel_id`.
    pub(crate) fn waiting(&self, channel_id: u64) -> usize {
        self.index_of(channel_id).map_or(0, |index| {
            let entry = &self.entries[index].1;
            entry
                .waiting
                .as_ref()
                .map_or(0, |waiting| waiting.lock().len())
        })
    }

    /// Put a channel whose callback finished back to idle, or start its
    /// next waiting message.
    pub(crate) fn resume(&mut self, channel_id: u64, channel: Box<dyn AnyChannel>) {
        let Some(index) = self.index_of(channel_id) else {
            channel.terminate(TerminateReason::Closed);
            return;
        };
        let entry = &mut self.entries[index].1;
        // Messages queued after the task last looked at its backlog.
        let next = entry
            .waiting
            .as_ref()
            .and_then(|w| Some((w.take_next()?, w.clone())));
        match next {
            Some((msg, waiting)) => self
                .running
                .push((channel_id, channel.handle(msg, waiting))),
            None => {
                entry.waiting = None;
                entry.idle = Some(channel);
            }
        }
    }

    /// The next callback to finish (pending while none runs).
    pub(crate) async fn next_finished(&mut self) -> (u64, Finished) {
        poll_fn(|cx| self.poll_finished(cx)).await
    }

    /// Poll for the next callback to finish.
    pub(crate) fn poll_finished(&mut self, cx: &mut Context<'_>) -> Poll<(u64, Finished)> {
        for index in 0..self.running.len() {
            let (channel_id, handle) = &mut self.running[index];
            let channel_id = *channel_id;
            if let Poll::Ready(result) = std::pin::Pin::new(handle).poll(cx) {
                self.running.swap_remove(index);
                if self.running.is_empty() {
                    self.running = Vec::new();
                }
                // A task that ended without handing the state back
                // (aborted, or a panic outside the callback) crashed.
                return Poll::Ready((channel_id, result.unwrap_or_else(|_| Finished::crashed())));
            }
        }
        Poll::Pending
    }

    /// End `entry`'s channel for `reason` without telling the client: its
    /// `terminate` runs once any running callback has finished.
    pub(crate) fn end(&mut self, entry: ChannelEntry, reason: TerminateReason) {
        // A running task takes nothing more: what waited ends with it.
        if let Some(waiting) = &entry.waiting {
            *waiting.lock() = VecDeque::new();
        }
        if let Some(channel) = entry.idle {
            return channel.terminate(reason);
        }
        let Some(index) = self
            .running
            .iter()
            .position(|(id, _)| *id == entry.channel_id)
        else {
            return;
        };
        let (_, running) = self.running.swap_remove(index);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            match running.await {
                Ok(Finished::Continue(channel)) => channel.terminate(reason),
                Ok(Finished::End {
                    channel: Some(channel),
                    reason: stopped,
                    ..
                }) => channel.terminate(stopped),
                Ok(Finished::End { channel: None, .. }) | Err(_) => {}
            }
        });
    }

    /// End every channel (the session is closing).
    pub(crate) fn clear(&mut self, reason: &TerminateReason) {
        for (_, entry) in std::mem::take(&mut self.entries) {
            self.end(entry, reason.clone());
        }
        self.running = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use fawkes_protocol::{Payload, Serializer};
    use tokio::sync::Semaphore;

    use super::{ChannelEntry, ChannelTable};
    use crate::channel::{
        noreply, AnyChannel, Channel, ChannelMsg, ChannelSocket, Finished, HandleResult, Incoming,
        JoinResult, Router, TerminateReason,
    };
    use crate::pubsub::PubSub;
    use crate::session::{Outbound, SessionContext, SessionControl};

    /// Logs each event it handles; `wait` holds its callback until the
    /// gate has a permit.
    struct Logged {
        log: Arc<Mutex<Vec<String>>>,
        gate: Arc<Semaphore>,
    }

    impl Channel for Logged {
        async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelSocket) -> JoinResult {
            Ok(Payload::empty())
        }

        async fn handle_in(
            &mut self,
            event: &str,
            _: Payload,
            _: &mut ChannelSocket,
        ) -> HandleResult {
            if event == "wait" {
                let _permit = self.gate.acquire().await;
            }
            self.log.lock().expect("log").push(event.to_owned());
            noreply()
        }
    }

    const ID: u64 = 7;

    /// A joined `Logged` channel, idle in a table.
    async fn joined(log: &Arc<Mutex<Vec<String>>>, gate: &Arc<Semaphore>) -> ChannelTable {
        let (control, _events) = SessionControl::new();
        let (outbound, _frames) = Outbound::new(16, control.clone());
        let socket = ChannelSocket {
            session: SessionContext {
                serializer: Serializer::V2,
                outbound,
                pubsub: PubSub::new(),
                presence: None,
                assigns: Arc::from(Vec::new()),
                control,
                id: None,
                state: Default::default(),
            },
            topic: "room:t".into(),
            join_ref: Some("1".into()),
            channel_id: ID,
            subscription: None,
            current_ref: None,
            held: Default::default(),
            _info: std::marker::PhantomData,
        };
        let mut router = Router::default();
        let (log, gate) = (log.clone(), gate.clone());
        router.route("room:*", move || Logged {
            log: log.clone(),
            gate: gate.clone(),
        });
        let joining = router.join(socket, Payload::empty()).expect("route");
        let (channel, result): (Box<dyn AnyChannel>, _) =
            joining.await.expect("join task").expect("join ran");
        assert_eq!(result, Ok(Payload::empty()));
        let mut table = ChannelTable::default();
        table.insert(
            "room:t".into(),
            ChannelEntry {
                channel_id: ID,
                join_ref: Some("1".into()),
                idle: None,
                waiting: None,
            },
        );
        table.resume(ID, channel);
        table
    }

    fn push(event: &str) -> ChannelMsg {
        ChannelMsg::In(Box::new(Incoming {
            event: event.into(),
            payload: Payload::empty(),
            ref_: None,
        }))
    }

    /// The session's task may be queued behind many others (a broadcast
    /// wakes every subscriber's connection): messages that arrive while a
    /// callback runs are handled by that callback's task, before the
    /// channel is handed back, not one per round trip through the session.
    #[tokio::test]
    async fn messages_queued_during_a_callback_are_handled_by_its_task() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let mut table = joined(&log, &gate).await;
        table.deliver(ID, push("wait"));
        table.deliver(ID, push("a"));
        table.deliver(ID, push("b"));
        assert_eq!(table.waiting(ID), 2);
        gate.add_permits(1);
        let (id, handled) = tokio::time::timeout(Duration::from_secs(10), table.next_finished())
            .await
            .expect("the callback task finished");
        assert_eq!(id, ID);
        assert!(matches!(handled, Finished::Continue(_)));
        // One hand-back, after all three.
        assert_eq!(*log.lock().expect("log"), ["wait", "a", "b"]);
        assert_eq!(table.waiting(ID), 0);
        if let Finished::Continue(channel) = handled {
            table.resume(ID, channel);
        }
        // Idle again: the next message starts a task of its own.
        table.deliver(ID, push("c"));
        let (_, handled) = tokio::time::timeout(Duration::from_secs(10), table.next_finished())
            .await
            .expect("the callback task finished");
        assert!(matches!(handled, Finished::Continue(_)));
        assert_eq!(*log.lock().expect("log"), ["wait", "a", "b", "c"]);
    }

    /// A channel ended while its callback runs handles nothing that waited.
    #[tokio::test]
    async fn an_ended_channel_drops_what_waited() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let mut table = joined(&log, &gate).await;
        table.deliver(ID, push("wait"));
        table.deliver(ID, push("a"));
        table.deliver(ID, push("b"));
        let entry = table.remove("room:t").expect("joined");
        table.end(entry, TerminateReason::Closed);
        gate.add_permits(1);
        // The channel (and the log it holds) is dropped after `terminate`.
        tokio::time::timeout(Duration::from_secs(10), async {
            while Arc::strong_count(&log) > 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the channel ended");
        assert_eq!(*log.lock().expect("log"), ["wait"]);
    }
}
