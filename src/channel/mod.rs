//! Channels: the [`Channel`] trait an application implements (in the spirit
//! of `Phoenix.Channel`), the values its callbacks return, and how one
//! joined channel runs them in isolation.

mod held;
mod instance;
mod mailbox;
mod reply;
mod result;
mod router;
mod socket;

use std::future::Future;

use fawkes_protocol::Payload;

pub use crate::session::QueueError;
pub(crate) use held::{Held, Pending};
pub(crate) use instance::{AnyChannel, Backlog, ExitKind, Finished};
pub(crate) use mailbox::{ChannelMsg, Incoming, Mailbox};
pub use reply::{Reply, ReplyHandle};
pub use result::{
    noreply, reply, reply_error, reply_ok, stop, stop_with_reply, ChannelError, HandleResult,
    Handled, JoinResult, StopReason,
};
pub(crate) use router::Router;
pub use socket::{ChannelSocket, InfoError, InfoSender, PushError};

/// Why a channel is ending, passed to [`Channel::terminate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateReason {
    /// The client sent `phx_leave`.
    Left,
    /// The socket closed (client gone, disconnect, slow client, shutdown).
    Closed,
    /// A callback returned [`Handled::Stop`].
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
///
/// Every callback has a default: a join is accepted with `{}`, an event
/// from the client crashes the channel (no `handle_in` clause matched),
/// intercepted broadcasts are pushed on, messages to `handle_info` are
/// ignored and `terminate` does nothing.
///
/// `Info` is the type of the messages the channel sends itself (or is sent
/// from anywhere with an [`InfoSender`]) for [`Channel::handle_info`]:
/// `impl Channel<Tick> for Clock` declares it, and its callbacks take a
/// `&mut ChannelSocket<Tick>`. Plain `impl Channel for X` has `()`.
///
/// ```
/// use fawkes::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, Serialize)]
/// struct NewMsg { body: String }
///
/// #[derive(Default)]
/// struct Room;
///
/// impl Channel for Room {
///     async fn handle_in(&mut self, event: &str, payload: Payload, socket: &mut ChannelSocket) -> HandleResult {
///         match event {
///             "new_msg" => {
///                 // A payload without a string `body`: the client gets an
///                 // error reply `{"reason": "invalid payload: ..."}`.
///                 let msg: NewMsg = payload.deserialize()?;
///                 socket.broadcast("new_msg", Payload::json(&msg));
///                 reply_ok(Payload::empty())
///             }
///             "leave_me" => stop(),
///             _ => Err(ChannelError::reason("unknown event")),
///         }
///     }
/// }
/// ```
pub trait Channel<Info: Send + 'static = ()>: Send + 'static {
    /// Broadcast events that go through [`Channel::handle_out`] instead of
    /// straight to the client (Phoenix's `intercept`).
    fn intercepts(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called when a client joins `topic` with `params`: `Ok(response)`
    /// accepts (the join reply's `response`), `Err` refuses with the
    /// error's response. By default every join is accepted with `{}`.
    ///
    /// What it pushes reaches the client right after the `ok` join reply
    /// (where a Phoenix channel sends itself `:after_join`), and the diffs
    /// of what it tracks in presence come after that; a refused join's
    /// pushes are dropped. For the presence list use
    /// [`ChannelSocket::push_presence_state`], which reads it after the
    /// subscription.
    fn join(
        &mut self,
        topic: &str,
        params: Payload,
        socket: &mut ChannelSocket<Info>,
    ) -> impl Future<Output = JoinResult> + Send {
        let _ = (topic, params, socket);
        async { Ok(Payload::empty()) }
    }

    /// Called for each event the client pushes on the joined topic. An
    /// `Err` is answered with an error reply carrying its response (and the
    /// channel goes on), so `payload.deserialize()?` reads a typed payload.
    /// By default the channel crashes, as a Phoenix channel without a
    /// matching `handle_in` clause does: the client gets `phx_error`.
    fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket<Info>,
    ) -> impl Future<Output = HandleResult> + Send {
        let _ = (payload, socket);
        let reason = StopReason::Crash(format!("no handle_in for {event:?}"));
        async move {
            Ok(Handled::Stop {
                reason,
                reply: None,
            })
        }
    }

    /// Called for each intercepted broadcast; by default pushes it on.
    fn handle_out(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket<Info>,
    ) -> impl Future<Output = HandleResult> + Send {
        let pushed = socket.push(event, payload);
        async move {
            match pushed {
                Ok(()) => noreply(),
                Err(error) => Ok(Handled::Stop {
                    reason: StopReason::Crash(error.to_string()),
                    reply: None,
                }),
            }
        }
    }

    /// Called for each message sent with [`ChannelSocket::send_info`] or an
    /// [`InfoSender`]. By default ignores it.
    fn handle_info(
        &mut self,
        info: Info,
        socket: &mut ChannelSocket<Info>,
    ) -> impl Future<Output = HandleResult> + Send {
        let _ = (info, socket);
        async { noreply() }
    }

    /// Called once when the channel ends (not after a panic).
    fn terminate(
        &mut self,
        reason: &TerminateReason,
        socket: &mut ChannelSocket<Info>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, socket);
        async {}
    }
}
