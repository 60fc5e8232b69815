//! The bounded outbound queue of one session (encoded frames waiting for the
//! transport to write them), and the session's side of pubsub's
//! [`Deliver`] seam: broadcasts arrive here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fawkes_protocol::Broadcast;

use super::control::SessionControl;
use super::queue::{self, QueueReceiver, QueueSender, TryPushError};
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
pub struct Outbound(Arc<Link>);

/// One allocation per session, shared by its channels and its
/// subscriptions.
#[derive(Debug)]
struct Link {
    frames: QueueSender<WireFrame>,
    control: SessionControl,
    /// An overflow is reported once; later ones are dropped so a stuck
    /// client cannot grow the control queue.
    overflowed: AtomicBool,
}

impl Outbound {
    /// A queue holding at most `capacity` frames, and its receiving end.
    pub(crate) fn new(
        capacity: usize,
        control: SessionControl,
    ) -> (Self, QueueReceiver<WireFrame>) {
        let (frames, rx) = queue::queue(capacity);
        let link = Link {
            frames,
            control,
            overflowed: AtomicBool::new(false),
        };
        (Self(Arc::new(link)), rx)
    }

    /// Queue a frame without waiting; a full queue closes the session as a
    /// slow client.
    pub fn deliver(&self, frame: WireFrame) -> Result<(), QueueError> {
        match self.0.frames.try_push(frame) {
            Ok(()) => Ok(()),
            Err((TryPushError::Full, _)) => {
                self.overflowed();
                Err(QueueError::Full)
            }
            Err((TryPushError::Closed, _)) => Err(QueueError::Closed),
        }
    }

    /// This session as pubsub's delivery target.
    pub(crate) fn sink(&self) -> Arc<dyn Deliver> {
        self.0.clone()
    }

    fn overflowed(&self) {
        self.0.overflowed();
    }
}

impl Link {
    fn overflowed(&self) {
        if !self.overflowed.swap(true, Ordering::AcqRel) {
            self.control.overflowed();
        }
    }
}

impl Deliver for Link {
    fn deliver_frame(&self, frame: WireFrame) {
        if let Err((TryPushError::Full, _)) = self.frames.try_push(frame) {
            self.overflowed();
        }
    }

    /// A full queue means the client's channels cannot keep up, so its
    /// session is closed as a slow client.
    fn deliver_intercepted(&self, channel_id: u64, broadcast: &Broadcast) {
        let msg = ChannelMsg::Out(Box::new(broadcast.clone()));
        if let Err(TryPushError::Full) = self.control.to_channel(channel_id, msg) {
            self.overflowed();
        }
    }

    /// The socket stops at once, as Phoenix's transport does: nothing
    /// queued after the `disconnect` (such as the reply of the very channel
    /// callback that broadcast it) is written; what was queued before is.
    fn deliver_disconnect(&self) {
        self.frames.seal();
        self.control.disconnect();
    }
}
