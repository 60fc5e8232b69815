//! What reaches a session from outside its inbound frames: messages for its
//! channels (intercepted broadcasts, `handle_info`), remote disconnects and
//! queue overflow.

use super::queue::{queue, QueueReceiver, QueueSender, TryPushError};

use crate::channel::ChannelMsg;

/// How many channel messages may wait for one session's channels.
const CHANNEL_MESSAGES: usize = 1024;

/// Something the session loop must act on.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    /// A message for the channel with this id.
    Channel(u64, ChannelMsg),
    /// A `disconnect` broadcast arrived on the socket's id topic.
    Disconnect,
    /// The outbound queue or the channel messages overflowed.
    Overflow,
    /// A channel asked to drop the connection with no close frame.
    Kill,
}

/// A handle that sends events to one session: messages for its channels,
/// `disconnect`, queue overflow.
#[derive(Clone, Debug)]
pub(crate) struct SessionControl {
    tx: QueueSender<SessionEvent>,
}

impl SessionControl {
    /// A new control handle and the session's receiving end.
    pub(crate) fn new() -> (Self, QueueReceiver<SessionEvent>) {
        let (tx, rx) = queue(CHANNEL_MESSAGES);
        (Self { tx }, rx)
    }

    /// Queue `msg` for channel `channel_id` without waiting.
    pub(crate) fn to_channel(&self, channel_id: u64, msg: ChannelMsg) -> Result<(), TryPushError> {
        self.tx
            .try_push(SessionEvent::Channel(channel_id, msg))
            .map_err(|(error, _)| error)
    }

    /// Report an overflow (the outbound queue reports it once per session).
    pub(crate) fn overflowed(&self) {
        // The session may already be gone; then nobody needs the event.
        let _ = self.tx.push_past_capacity(SessionEvent::Overflow);
    }

    /// Ask the session to drop its connection at once, with no close frame.
    pub(crate) fn kill(&self) {
        let _ = self.tx.push_past_capacity(SessionEvent::Kill);
    }

    /// Ask the session to close as if its id received a `disconnect`.
    pub(crate) fn disconnect(&self) {
        let _ = self.tx.push_past_capacity(SessionEvent::Disconnect);
    }
}
