//! Events that reach a session from outside its inbound frames: channel
//! exits, remote disconnects, queue overflow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::queue::{queue, QueueReceiver, QueueSender};

use crate::channel::ChannelExit;

/// Something the session loop must act on.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    /// A channel task ended.
    ChannelExit(ChannelExit),
    /// A `disconnect` broadcast arrived on the socket's id topic.
    Disconnect,
    /// The outbound queue overflowed.
    Overflow,
}

/// A handle to send [`SessionEvent`]s to one session.
#[derive(Clone, Debug)]
pub struct SessionControl {
    tx: QueueSender<SessionEvent>,
    overflowed: Arc<AtomicBool>,
}

impl SessionControl {
    /// A new control handle and the session's receiving end.
    pub(crate) fn new() -> (Self, QueueReceiver<SessionEvent>) {
        // Unbounded in practice: events are few (one per channel exit, one
        // overflow at most), and nothing may block on sending one.
        let (tx, rx) = queue(usize::MAX);
        (
            Self {
                tx,
                overflowed: Arc::new(AtomicBool::new(false)),
            },
            rx,
        )
    }

    pub(crate) fn send(&self, event: SessionEvent) {
        // The session may already be gone; then nobody needs the event.
        let _ = self.tx.try_push(event);
    }

    /// Report an overflow once; later ones are dropped so a stuck client
    /// cannot grow the control queue.
    pub(crate) fn overflowed(&self) {
        if !self.overflowed.swap(true, Ordering::AcqRel) {
            self.send(SessionEvent::Overflow);
        }
    }

    /// Ask the session to close as if its id received a `disconnect`.
    pub(crate) fn disconnect(&self) {
        self.send(SessionEvent::Disconnect);
    }
}
