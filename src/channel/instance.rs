//! One joined channel: its state between callbacks, and the task that runs
//! each callback.
//!
//! An idle channel holds no task: its session keeps the state (the
//! [`Channel`] value and its [`ChannelSocket`]) and, for a message, spawns
//! a task that owns the state while the callbacks run and hands it back
//! when done. Messages that arrive meanwhile wait in the session's
//! [`Backlog`], and the same task handles them, in order, before handing
//! the state back (no round trip through the session per message).
//! Callbacks of one channel therefore run one at a time, channels of one
//! socket run concurrently, and a panic ends that callback's task and that
//! channel only.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use fawkes_protocol::Payload;
use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{
    Channel, ChannelMsg, ChannelSocket, HandleResult, Handled, JoinResult, Reply, StopReason,
    TerminateReason,
};
use crate::pubsub::{Subscriber, Target};
use crate::session::QueueError;

/// How a joined channel ended, as the client must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitKind {
    /// `phx_close`: left, or stopped normally.
    Close,
    /// `phx_error`: crashed or stopped abnormally.
    Error,
}

/// What one handled message means for the channel.
#[derive(Debug)]
enum Step {
    /// Keep the channel.
    Continue,
    /// End it, telling the client with `ExitKind`.
    End(TerminateReason, ExitKind),
}

/// The result of one callback task.
pub(crate) enum Finished {
    /// The channel goes on: its state, handed back.
    Continue(Box<dyn AnyChannel>),
    /// The channel ends: its state (none after a panic), why, and how the
    /// client is told.
    End {
        channel: Option<Box<dyn AnyChannel>>,
        reason: TerminateReason,
        kind: ExitKind,
    },
}

impl Finished {
    /// A callback task that panicked (or ended without handing the state back).
    pub(crate) fn crashed() -> Self {
        Finished::End {
            channel: None,
            reason: TerminateReason::Crashed,
            kind: ExitKind::Error,
        }
    }
}

/// The result of a join task: the channel's state and the join callback's
/// answer, or `None` when the callback panicked.
pub(crate) type Joined = Option<(Box<dyn AnyChannel>, JoinResult)>;

/// The messages waiting for a channel while its callback task runs (kept
/// by the session, which queues them as they come).
pub(crate) trait Backlog: Send + Sync + 'static {
    /// The next waiting message, taken off the backlog.
    fn take_next(&self) -> Option<ChannelMsg>;
}

/// A channel's state between callbacks, whatever its [`Channel`] type.
pub(crate) trait AnyChannel: Send + 'static {
    /// Publish the presence diffs the last callback produced.
    fn flush_presence(&self);
    /// Subscribe to the topic (after a successful join).
    fn subscribe(&mut self);
    /// Send the pushes `join` made (after its `ok` reply).
    fn release_pushes(&self);
    /// Handle `msg` in a task of its own, then what `backlog` holds, until
    /// it is empty or the channel ends.
    fn handle(self: Box<Self>, msg: ChannelMsg, backlog: Arc<dyn Backlog>) -> JoinHandle<Finished>;
    /// Run `terminate` for `reason` in a task of its own (not after a
    /// crash); the state is dropped after it.
    fn terminate(self: Box<Self>, reason: TerminateReason);
}

/// Run `channel`'s join callback in a task of its own.
pub(crate) fn join<C: Channel<I>, I: Send + 'static>(
    channel: C,
    socket: ChannelSocket<I>,
    params: Payload,
) -> JoinHandle<Joined> {
    let span = channel_span(&socket);
    let run = async move {
        let mut this = Box::new(Instance { channel, socket });
        let topic = this.socket.topic.clone();
        let joining = this.channel.join(&topic, params, &mut this.socket);
        let result = AssertUnwindSafe(joining).catch_unwind().await;
        match result {
            Ok(result) => Some((this as Box<dyn AnyChannel>, result)),
            Err(_) => {
                tracing::error!(topic = %topic, "channel join crashed");
                this.socket.flush_presence();
                None
            }
        }
    };
    tokio::spawn(run.instrument(span))
}

/// The span of one channel callback: its topic and instance id, inside the
/// span of the session that runs it (socket id, transport) when there is
/// one. Created per callback, never per broadcast delivery.
fn channel_span<I>(socket: &ChannelSocket<I>) -> tracing::Span {
    tracing::info_span!("channel", topic = %socket.topic, channel_id = socket.channel_id)
}

/// A channel value and its socket.
struct Instance<C, I> {
    channel: C,
    socket: ChannelSocket<I>,
}

/// However the channel ends (left, stopped, replaced, crashed, its session
/// closed), it leaves its topic and its presences leave with it.
impl<C, I> Drop for Instance<C, I> {
    fn drop(&mut self) {
        let session = &self.socket.session;
        if let Some(id) = self.socket.subscription.take() {
            session.pubsub.unsubscribe(&self.socket.topic, id);
            session.pubsub.counters().channel_unsubscribed();
        }
        if let Some(presence) = &session.presence {
            presence.untrack_owner(self.socket.presence_owner());
        }
    }
}

impl<C: Channel<I>, I: Send + 'static> AnyChannel for Instance<C, I> {
    fn flush_presence(&self) {
        self.socket.flush_presence();
    }

    fn release_pushes(&self) {
        self.socket.release_pushes();
    }

    fn subscribe(&mut self) {
        let session = &self.socket.session;
        let id = session.pubsub.subscribe(
            &self.socket.topic,
            Subscriber {
                target: Target::Channel {
                    sink: session.outbound.sink(),
                    serializer: session.serializer,
                    intercepts: self.channel.intercepts(),
                    channel_id: self.socket.channel_id,
                },
            },
        );
        self.socket.subscription = Some(id);
        session.pubsub.counters().channel_subscribed();
    }

    fn handle(self: Box<Self>, msg: ChannelMsg, backlog: Arc<dyn Backlog>) -> JoinHandle<Finished> {
        let span = channel_span(&self.socket);
        let run = async move {
            let mut this = self;
            let mut msg = msg;
            loop {
                let step = AssertUnwindSafe(this.handle_msg(msg)).catch_unwind().await;
                this.socket.current_ref = None;
                this.socket.flush_presence();
                match step {
                    Ok(Step::Continue) => {}
                    Ok(Step::End(reason, kind)) => {
                        return Finished::End {
                            channel: Some(this),
                            reason,
                            kind,
                        }
                    }
                    Err(_) => {
                        tracing::error!(topic = %this.socket.topic, "channel crashed");
                        return Finished::crashed();
                    }
                }
                // What arrived meanwhile is handled here, at once: handing
                // the state back to the session first would wait for the
                // session's task, which a broadcast may have queued behind
                // every subscriber's connection.
                match backlog.take_next() {
                    Some(next) => msg = next,
                    None => return Finished::Continue(this),
                }
                // Fair to the other tasks of this worker: a long backlog
                // yields now and then (tokio's cooperative budget).
                tokio::task::coop::consume_budget().await;
            }
        };
        tokio::spawn(run.instrument(span))
    }

    fn terminate(self: Box<Self>, reason: TerminateReason) {
        if reason == TerminateReason::Crashed {
            return;
        }
        // At runtime shutdown there is nowhere to run it; the state is
        // still dropped (and leaves its topic).
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let span = channel_span(&self.socket);
        let run = async move {
            let mut this = self;
            let terminate = this.channel.terminate(&reason, &mut this.socket);
            if AssertUnwindSafe(terminate).catch_unwind().await.is_err() {
                tracing::error!(topic = %this.socket.topic, "channel terminate crashed");
            }
        };
        runtime.spawn(run.instrument(span));
    }
}

impl<C: Channel<I>, I: Send + 'static> Instance<C, I> {
    async fn handle_msg(&mut self, msg: ChannelMsg) -> Step {
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
                self.apply(result)
            }
            ChannelMsg::Leave { ref_ } => {
                self.socket.current_ref = ref_;
                self.reply(Reply::ok_empty());
                Step::End(TerminateReason::Left, ExitKind::Close)
            }
            ChannelMsg::Out(broadcast) => {
                let result = self
                    .channel
                    .handle_out(&broadcast.event, broadcast.payload, &mut self.socket)
                    .await;
                self.apply(result)
            }
            ChannelMsg::Info(info) => match info.downcast::<I>() {
                Ok(info) => {
                    let result = self.channel.handle_info(*info, &mut self.socket).await;
                    self.apply(result)
                }
                // Only an `InfoSender<I>` of this channel sends here.
                Err(_) => Step::Continue,
            },
        }
    }

    fn apply(&mut self, result: HandleResult) -> Step {
        match result {
            Ok(Handled::NoReply) => Step::Continue,
            Ok(Handled::Reply(reply)) => {
                self.reply(reply);
                Step::Continue
            }
            Err(error) => {
                if self.socket.current_ref.is_some() {
                    self.reply(Reply::error(error.into_response()));
                } else {
                    // An `Err` from `handle_info` or `handle_out` (e.g. a
                    // failed push with `?`): nobody to answer, so it is at
                    // least logged.
                    tracing::debug!(topic = %self.socket.topic, response = ?error.response(), "callback error with no message to answer");
                }
                Step::Continue
            }
            Ok(Handled::Stop { reason, reply }) => {
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
        let Some(handle) = self.socket.reply_handle() else {
            return;
        };
        match handle.reply(reply) {
            Ok(()) => self.socket.session.pubsub.counters().message_out(),
            Err(error) => {
                if matches!(error, super::PushError::Encode(_)) {
                    self.socket.session.pubsub.counters().undeliverable(1);
                }
                if matches!(error, super::PushError::Queue(QueueError::Closed)) {
                    // The socket stopped (a `disconnect`, or the client left).
                    tracing::debug!(topic = %self.socket.topic, "reply not sent: socket closed");
                } else {
                    tracing::warn!(topic = %self.socket.topic, %error, "reply not sent");
                }
            }
        }
    }
}
