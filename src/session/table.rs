//! The joined channels of one session (at most one per topic), the messages
//! waiting for each, and the callback tasks running for them.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::channel::{AnyChannel, ChannelMsg, Finished, TerminateReason};

/// Messages that may wait for one channel's running callback before the
/// session stops reading its client.
pub(crate) const MAX_WAITING: usize = 1024;

/// One joined channel, as the session sees it.
pub(crate) struct ChannelEntry {
    pub(crate) channel_id: u64,
    pub(crate) join_ref: Option<String>,
    /// The channel's state while no callback runs (`None` while one does).
    pub(crate) idle: Option<Box<dyn AnyChannel>>,
    /// Messages that arrived while a callback was running, in order.
    pub(crate) waiting: VecDeque<ChannelMsg>,
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
            Some(channel) => self.running.push((channel_id, channel.handle(msg))),
            None => entry.waiting.push_back(msg),
        }
    }

    /// How many messages wait for `channel_id`.
    pub(crate) fn waiting(&self, channel_id: u64) -> usize {
        self.index_of(channel_id)
            .map_or(0, |index| self.entries[index].1.waiting.len())
    }

    /// Put a channel whose callback finished back to idle, or start its
    /// next waiting message.
    pub(crate) fn resume(&mut self, channel_id: u64, channel: Box<dyn AnyChannel>) {
        let Some(index) = self.index_of(channel_id) else {
            channel.terminate(TerminateReason::Closed);
            return;
        };
        let entry = &mut self.entries[index].1;
        match entry.waiting.pop_front() {
            Some(msg) => self.running.push((channel_id, channel.handle(msg))),
            None => {
                entry.waiting = VecDeque::new();
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
