//! The bounded outbound queue of one session (encoded frames waiting for the
//! transport to write them), and the session's side of pubsub's
//! [`Deliver`] seam: broadcasts arrive here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fawkes_protocol::Broadcast;

use super::control::SessionControl;
use super::queue::{self, QueueReceiver, QueueSender, Shared, TryPushError};
use crate::channel::ChannelMsg;
use crate::pubsub::{Deliver, WireFrame};

/// Why a frame could not be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// The session is gone (its transport closed).
    #[error("session closed")]
    Closed,
    /// The queue is full: the client is not reading fast enough.
    #[error("outbound queue full")]
    Full,
}

/// The sending side of a session's outbound queue.
///
/// Nothing ever waits for room: [`Outbound::deliver`] disconnects a client
/// whose queue is full instead of growing memory, so fan-out never blocks
/// on one subscriber.
#[derive(Clone, Debug)]
pub(crate) struct Outbound(QueueSender<WireFrame, Link>);

/// The receiving end of a session's outbound queue (its transport's).
pub(crate) type OutboundReceiver = QueueReceiver<WireFrame, Link>;

/// What the outbound queue carries beside its frames, in the same
/// allocation: it makes the queue the session's delivery target for
/// pubsub, shared by its channels and subscriptions at no extra cost.
#[derive(Debug)]
pub(crate) struct Link {
    control: SessionControl,
    /// An overflow is reported once; later ones are dropped so a stuck
    /// client cannot grow the control queue.
    overflowed: AtomicBool,
}

impl Outbound {
    /// A queue holding at most `capacity` frames, and its receiving end.
    pub(crate) fn new(capacity: usize, control: SessionControl) -> (Self, OutboundReceiver) {
        let link = Link {
            control,
            overflowed: AtomicBool::new(false),
        };
        let (frames, rx) = queue::queue_with(capacity, link);
        (Self(frames), rx)
    }

    /// Queue a frame without waiting; a full queue closes the session as a
    /// slow client.
    pub(crate) fn deliver(&self, frame: WireFrame) -> Result<(), QueueError> {
        match self.0.try_push(frame) {
            Ok(()) => Ok(()),
            Err((TryPushError::Full, _)) => {
                self.overflowed();
                Err(QueueError::Full)
            }
            Err((TryPushError::Closed, _)) => Err(QueueError::Closed),
        }
    }

    /// This session as pubsub's delivery target.
    ///
    /// Uncounted: subscriptions do not keep the queue open once the
    /// session (which holds this `Outbound`) is gone.
    pub(crate) fn sink(&self) -> Arc<dyn Deliver> {
        self.0.shared().clone()
    }

    fn overflowed(&self) {
        self.0.shared().extra().overflowed();
    }
}

impl Link {
    fn overflowed(&self) {
        if !self.overflowed.swap(true, Ordering::AcqRel) {
            self.control.overflowed();
        }
    }
}

impl Deliver for Shared<WireFrame, Link> {
    fn deliver_frame(&self, frame: WireFrame) {
        if let Err((TryPushError::Full, _)) = self.try_push(frame) {
            self.extra().overflowed();
        }
    }

    /// A full queue means the client's channels cannot keep up, so its
    /// session is closed as a slow client.
    fn deliver_intercepted(&self, channel_id: u64, broadcast: &Broadcast) {
        let msg = ChannelMsg::Out(Box::new(broadcast.clone()));
        if let Err(TryPushError::Full) = self.extra().control.to_channel(channel_id, msg) {
            self.extra().overflowed();
        }
    }

    /// The socket stops at once, as Phoenix's transport does: nothing
    /// queued after the `disconnect` (such as the reply of the very channel
    /// callback that broadcast it) is written; what was queued before is.
    fn deliver_disconnect(&self) {
        self.seal();
        self.extra().control.disconnect();
    }
}
