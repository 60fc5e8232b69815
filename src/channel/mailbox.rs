//! The mailbox of one channel task: everything it handles, in order.

use fawkes_protocol::{Broadcast, Payload};

use super::Info;
use crate::session::{QueueSender, SessionControl, TryPushError};

/// An event pushed by the client.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) event: String,
    pub(crate) payload: Payload,
    pub(crate) ref_: Option<String>,
}

/// A message for a channel task. Large variants are boxed: the mailbox
/// preallocates slots, and most channels sit idle.
#[derive(Debug)]
pub(crate) enum ChannelMsg {
    /// An event pushed by the client.
    In(Box<Incoming>),
    /// The client left (`phx_leave`) with this ref.
    Leave { ref_: Option<String> },
    /// An intercepted broadcast.
    Out(Box<Broadcast>),
    /// A `handle_info` message.
    Info(Info),
}

/// The sending side of a channel's mailbox.
#[derive(Clone, Debug)]
pub(crate) struct Mailbox(pub(crate) QueueSender<ChannelMsg>);

impl Mailbox {
    /// Hand an intercepted broadcast to the channel without waiting; a full
    /// mailbox means the client's channel cannot keep up, so its session is
    /// closed as a slow client.
    pub(crate) fn intercepted(&self, broadcast: &Broadcast, control: &SessionControl) {
        if let Err((TryPushError::Full, _)) = self
            .0
            .try_push(ChannelMsg::Out(Box::new(broadcast.clone())))
        {
            control.overflowed();
        }
    }
}
