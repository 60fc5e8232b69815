//! What a channel handles, in order: the messages its session queues for it.

use fawkes_protocol::{Broadcast, Payload};

use crate::session::{SessionControl, TryPushError};

/// An event pushed by the client.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) event: String,
    pub(crate) payload: Payload,
    pub(crate) ref_: Option<String>,
}

/// A message for one channel. Large variants are boxed: messages wait in
/// queues, and most channels sit idle.
#[derive(Debug)]
pub(crate) enum ChannelMsg {
    /// An event pushed by the client.
    In(Box<Incoming>),
    /// The client left (`phx_leave`) with this ref.
    Leave { ref_: Option<String> },
    /// An intercepted broadcast.
    Out(Box<Broadcast>),
    /// A `handle_info` message: the channel's `Info` type, boxed (the
    /// session does not know it; the channel's instance unboxes it).
    Info(Box<dyn std::any::Any + Send>),
}

/// Sends messages to one channel: through its session, which runs the
/// channel's callbacks one at a time.
#[derive(Clone, Debug)]
pub(crate) struct Mailbox {
    pub(crate) control: SessionControl,
    pub(crate) channel_id: u64,
}

impl Mailbox {
    /// Queue `msg` without waiting.
    pub(crate) fn send(&self, msg: ChannelMsg) -> Result<(), TryPushError> {
        self.control.to_channel(self.channel_id, msg)
    }
}
