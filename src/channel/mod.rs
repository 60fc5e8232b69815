//! Channels: the [`Channel`] trait an application implements (in the spirit
//! of `Phoenix.Channel`), the values its callbacks return, and how one
//! joined channel runs them in isolation.

mod info;
mod instance;
mod mailbox;
mod reply;
mod router;
mod socket;

use std::future::Future;

use fawkes_protocol::Payload;

pub use info::Info;
pub(crate) use instance::{AnyChannel, Backlog, ExitKind, Handled};
pub(crate) use mailbox::{ChannelMsg, Incoming, Mailbox};
pub use reply::{Reply, ReplyHandle};
pub(crate) use router::Router;
pub use socket::{ChannelSocket, InfoError, InfoSender, PushError};

/// The outcome of [`Channel::join`].
#[derive(Debug, Clone, PartialEq)]
pub enum JoinResult {
    /// Join accepted; the payload is the reply's `response` (use
    /// [`Payload::empty`] for `{}`).
    Ok(Payload),
    /// Join refused; the payload is the error reply's `response`.
    Error(Payload),
}

/// Why a channel asked to stop. `Normal` and `Shutdown` close the channel on
/// the client (`phx_close`); `Crash` is reported as `phx_error`, like a
/// Phoenix channel exiting with an abnormal reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A normal stop (`{:stop, :normal, socket}`).
    Normal,
    /// A shutdown stop (`{:stop, :shutdown, socket}`).
    Shutdown,
    /// An abnormal stop, reported to the client as a crash.
    Crash(String),
}

/// What a callback returns: reply, stay silent, or stop.
#[derive(Debug, Clone, PartialEq)]
pub enum HandleResult {
    /// No reply (the client's push will time out unless replied later via a
    /// [`ReplyHandle`]).
    NoReply,
    /// Reply to the message being handled.
    Reply(Reply),
    /// Stop the channel, optionally replying first.
    Stop {
        /// Why the channel stops.
        reason: StopReason,
        /// A reply sent before the channel closes.
        reply: Option<Reply>,
    },
}

/// Why a channel is ending, passed to [`Channel::terminate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateReason {
    /// The client sent `phx_leave`.
    Left,
    /// The socket closed (client gone, disconnect, slow client, shutdown).
    Closed,
    /// A callback returned [`HandleResult::Stop`].
    Stopped(StopReason),
    /// The client joined the same topic again; this instance is replaced.
    DuplicateJoin,
    /// A callback panicked.
    Crashed,
}

/// One channel type, in the spirit of `Phoenix.Channel`. An instance is
/// created for each join and owns its state; its callbacks run one at a time,
/// each in a task of its own (an idle channel holds no task), so a panic
/// affects only this channel.
pub trait Channel: Send + 'static {
    /// Broadcast events that go through [`Channel::handle_out`] instead of
    /// straight to the client (Phoenix's `intercept`).
    fn intercepts(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called when a client joins `topic` with `params`.
    fn join(
        &mut self,
        topic: &str,
        params: Payload,
        socket: &mut ChannelSocket,
    ) -> impl Future<Output = JoinResult> + Send;

    /// Called for each event the client pushes on the joined topic.
    fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> impl Future<Output = HandleResult> + Send;

    /// Called for each intercepted broadcast; by default pushes it on.
    fn handle_out(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> impl Future<Output = HandleResult> + Send {
        let pushed = socket.push(event, payload);
        async move {
            match pushed {
                Ok(()) => HandleResult::NoReply,
                Err(error) => HandleResult::Stop {
                    reason: StopReason::Crash(error.to_string()),
                    reply: None,
                },
            }
        }
    }

    /// Called for messages sent to the channel with
    /// [`ChannelSocket::send_info`] or an [`crate::channel::ChannelSocket::info_sender`].
    fn handle_info(
        &mut self,
        info: Info,
        socket: &mut ChannelSocket,
    ) -> impl Future<Output = HandleResult> + Send {
        let _ = (info, socket);
        async { HandleResult::NoReply }
    }

    /// Called once when the channel ends (not after a panic).
    fn terminate(
        &mut self,
        reason: &TerminateReason,
        socket: &mut ChannelSocket,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, socket);
        async {}
    }
}
