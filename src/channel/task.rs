//! The task that runs one joined channel: join handshake with the session,
//! callbacks one at a time, crash isolation, and one exit path.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use fawkes_protocol::Payload;
use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{
    Channel, ChannelMsg, ChannelSocket, HandleResult, JoinResult, Mailbox, Reply, StopReason,
    TerminateReason,
};
use crate::pubsub::{Subscriber, Target};
use crate::session::{QueueReceiver, SessionContext};

/// How many messages may wait in a channel's mailbox.
const MAILBOX_CAPACITY: usize = 1024;

/// What the session hands a new channel task.
pub(crate) struct StartChannel {
    pub(crate) session: SessionContext,
    pub(crate) topic: String,
    pub(crate) join_ref: Option<String>,
    pub(crate) params: Payload,
    pub(crate) channel_id: u64,
    /// Cancelled when the session closes or replaces this channel.
    pub(crate) kill: CancellationToken,
    /// Why `kill` was cancelled, when it was for a reason other than the
    /// session closing.
    pub(crate) kill_reason: Arc<OnceLock<TerminateReason>>,
}

/// What the session keeps of a channel task it started.
pub(crate) struct SpawnedChannel {
    pub(crate) joined: oneshot::Receiver<JoinOutcome>,
    pub(crate) go: oneshot::Sender<()>,
    pub(crate) mailbox: Mailbox,
}

/// The result of the join callback.
#[derive(Debug)]
pub(crate) enum JoinOutcome {
    Joined(Payload),
    Refused(Payload),
}

/// How a joined channel ended, as the client must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitKind {
    /// `phx_close`: left, or stopped normally.
    Close,
    /// `phx_error`: crashed or stopped abnormally.
    Error,
    /// Nothing: the session closed it or replaced it.
    Silent,
}

/// Sent to the session when a joined channel ends.
#[derive(Debug)]
pub(crate) struct ChannelExit {
    pub(crate) channel_id: u64,
    pub(crate) kind: ExitKind,
}

/// Start the task for `channel`.
pub(crate) fn spawn<C: Channel>(channel: C, start: StartChannel) -> SpawnedChannel {
    let (tx, rx) = crate::session::queue(MAILBOX_CAPACITY);
    let (joined_tx, joined_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let mailbox = Mailbox(tx);
    let socket = ChannelSocket {
        session: start.session,
        topic: start.topic,
        join_ref: start.join_ref,
        channel_id: start.channel_id,
        mailbox: mailbox.clone(),
        subscription: None,
        current_ref: None,
        held_diffs: Default::default(),
    };
    let run = Run {
        channel,
        socket,
        kill: start.kill,
        kill_reason: start.kill_reason,
    };
    tokio::spawn(run.run(start.params, rx, joined_tx, go_rx));
    SpawnedChannel {
        joined: joined_rx,
        go: go_tx,
        mailbox,
    }
}

struct Run<C> {
    channel: C,
    socket: ChannelSocket,
    kill: CancellationToken,
    kill_reason: Arc<OnceLock<TerminateReason>>,
}

/// What one handled message means for the loop.
enum Step {
    Continue,
    End(TerminateReason, ExitKind),
}

impl<C: Channel> Run<C> {
    async fn run(
        mut self,
        params: Payload,
        mut mailbox: QueueReceiver<ChannelMsg>,
        joined: oneshot::Sender<JoinOutcome>,
        go: oneshot::Receiver<()>,
    ) {
        let topic = self.socket.topic.clone();
        // Callbacks are boxed: an idle channel task then holds only its loop,
        // not the largest callback future.
        let join = Box::pin(
            AssertUnwindSafe(self.channel.join(&topic, params, &mut self.socket)).catch_unwind(),
        )
        .await;
        match join {
            // A join that panics drops `joined`; the session reports "join crashed".
            Err(_) => {
                tracing::error!(topic = %topic, "channel join crashed");
            }
            Ok(JoinResult::Error(response)) => {
                let _ = joined.send(JoinOutcome::Refused(response));
            }
            Ok(JoinResult::Ok(response)) => {
                let _guard = self.subscribe();
                if joined.send(JoinOutcome::Joined(response)).is_err() || go.await.is_err() {
                    return;
                }
                self.socket.flush_presence();
                let (reason, kind) = self.serve(&mut mailbox).await;
                Box::pin(self.finish(reason, kind)).await;
            }
        }
    }

    /// Subscribe to the topic; the returned guard unsubscribes and untracks
    /// presences however the task ends (return, panic or abort).
    fn subscribe(&mut self) -> Membership {
        let session = &self.socket.session;
        let intercepts = self.channel.intercepts();
        let id = session.pubsub.subscribe(
            &self.socket.topic,
            Subscriber {
                target: Target::Channel {
                    outbound: session.outbound.clone(),
                    serializer: session.serializer,
                    intercepts,
                    mailbox: self.socket.mailbox.clone(),
                },
            },
        );
        self.socket.subscription = Some(id);
        Membership {
            session: session.clone(),
            topic: self.socket.topic.clone(),
            subscription: id,
            owner: self.socket.presence_owner(),
        }
    }

    async fn serve(
        &mut self,
        mailbox: &mut QueueReceiver<ChannelMsg>,
    ) -> (TerminateReason, ExitKind) {
        loop {
            let msg = tokio::select! {
                biased;
                _ = self.kill.cancelled() => {
                    let reason = self.kill_reason.get().cloned().unwrap_or(TerminateReason::Closed);
                    return (reason, ExitKind::Silent);
                }
                msg = mailbox.recv() => msg,
            };
            let Some(msg) = msg else {
                return (TerminateReason::Closed, ExitKind::Silent);
            };
            let step = Box::pin(AssertUnwindSafe(self.handle(msg)).catch_unwind()).await;
            self.socket.flush_presence();
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::End(reason, kind)) => return (reason, kind),
                Err(_) => {
                    tracing::error!(topic = %self.socket.topic, "channel crashed");
                    return (TerminateReason::Crashed, ExitKind::Error);
                }
            }
        }
    }

    async fn handle(&mut self, msg: ChannelMsg) -> Step {
        match msg {
            ChannelMsg::In(incoming) => {
                let super::Incoming {
                    event,
                    payload,
                    ref_,
                } = *incoming;
                self.socket.current_ref = ref_;
                let result = self
                    .channel
                    .handle_in(&event, payload, &mut self.socket)
                    .await;
                let step = self.apply(result);
                self.socket.current_ref = None;
                step
            }
            ChannelMsg::Leave { ref_ } => {
                self.socket.current_ref = ref_;
                self.reply(Reply::ok_empty());
                self.socket.current_ref = None;
                Step::End(TerminateReason::Left, ExitKind::Close)
            }
            ChannelMsg::Out(broadcast) => {
                let result = self
                    .channel
                    .handle_out(&broadcast.event, broadcast.payload, &mut self.socket)
                    .await;
                self.apply(result)
            }
            ChannelMsg::Info(info) => {
                let result = self.channel.handle_info(info, &mut self.socket).await;
                self.apply(result)
            }
        }
    }

    fn apply(&mut self, result: HandleResult) -> Step {
        match result {
            HandleResult::NoReply => Step::Continue,
            HandleResult::Reply(reply) => {
                self.reply(reply);
                Step::Continue
            }
            HandleResult::Stop { reason, reply } => {
                if let Some(reply) = reply {
                    self.reply(reply);
                }
                let kind = match reason {
                    StopReason::Normal | StopReason::Shutdown => ExitKind::Close,
                    StopReason::Crash(_) => ExitKind::Error,
                };
                Step::End(TerminateReason::Stopped(reason), kind)
            }
        }
    }

    /// Reply to the message being handled; a message without a ref gets none.
    fn reply(&self, reply: Reply) {
        if let Some(handle) = self.socket.reply_handle() {
            if let Err(error) = handle.reply(reply) {
                tracing::warn!(topic = %self.socket.topic, %error, "reply not sent");
            }
        }
    }

    /// Tell the session first (so `phx_close`/`phx_error` goes out in order
    /// after any reply), then run `terminate`.
    async fn finish(mut self, reason: TerminateReason, kind: ExitKind) {
        self.socket
            .session
            .control
            .send(crate::session::SessionEvent::ChannelExit(ChannelExit {
                channel_id: self.socket.channel_id,
                kind,
            }));
        if reason != TerminateReason::Crashed {
            let terminate = Box::pin(
                AssertUnwindSafe(self.channel.terminate(&reason, &mut self.socket)).catch_unwind(),
            );
            if terminate.await.is_err() {
                tracing::error!(topic = %self.socket.topic, "channel terminate crashed");
            }
        }
    }
}

/// Unsubscribes and untracks presences when a channel task ends.
struct Membership {
    session: SessionContext,
    topic: String,
    subscription: crate::pubsub::SubscriptionId,
    owner: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.session
            .pubsub
            .unsubscribe(&self.topic, self.subscription);
        if let Some(presence) = &self.session.presence {
            presence.untrack_owner(self.owner);
        }
    }
}
