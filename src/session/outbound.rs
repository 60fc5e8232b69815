//! The bounded outbound queue of one session: encoded frames waiting for the
//! transport to write them.

use bytes::Bytes;
use fawkes_protocol::Frame;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::control::SessionControl;
use super::queue::{self, QueueReceiver, QueueSender, TryPushError};

/// One encoded frame, cheap to clone: broadcasts share the same bytes across
/// every subscriber that uses the same serializer.
#[derive(Clone, Debug, PartialEq)]
pub enum WireFrame {
    /// A text frame (always valid UTF-8).
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
}

impl From<Frame> for WireFrame {
    fn from(frame: Frame) -> Self {
        match frame {
            Frame::Text(text) => WireFrame::Text(Utf8Bytes::from(text)),
            Frame::Binary(bytes) => WireFrame::Binary(bytes),
        }
    }
}

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
pub struct Outbound {
    tx: QueueSender<WireFrame>,
    control: SessionControl,
}

impl Outbound {
    /// A queue holding at most `capacity` frames, and its receiving end.
    pub(crate) fn new(
        capacity: usize,
        control: SessionControl,
    ) -> (Self, QueueReceiver<WireFrame>) {
        let (tx, rx) = queue::queue(capacity);
        (Self { tx, control }, rx)
    }

    /// Queue a frame without waiting; a full queue closes the session as a
    /// slow client.
    pub fn deliver(&self, frame: WireFrame) -> Result<(), QueueError> {
        match self.tx.try_push(frame) {
            Ok(()) => Ok(()),
            Err((TryPushError::Full, _)) => {
                self.control.overflowed();
                Err(QueueError::Full)
            }
            Err((TryPushError::Closed, _)) => Err(QueueError::Closed),
        }
    }

    /// The session this queue belongs to.
    pub(crate) fn control(&self) -> &SessionControl {
        &self.control
    }
}
