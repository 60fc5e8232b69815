//! One encoded frame, as the fan-out shares it between subscribers.

use bytes::Bytes;
use fawkes_protocol::Frame;
use tokio_tungstenite::tungstenite::Utf8Bytes;

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
