//! Why a session ended, and what that means on the wire.

use fawkes_protocol::DecodeError;

/// Why a session (one connected client) ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DisconnectReason {
    /// The client closed the connection (or the TCP connection dropped).
    #[error("client closed the connection")]
    ClientClosed,
    /// No frame arrived within the socket's idle timeout.
    #[error("idle timeout")]
    IdleTimeout,
    /// The client sent a frame that could not be decoded.
    #[error("undecodable frame: {0}")]
    InvalidFrame(#[from] DecodeError),
    /// The client broke the websocket protocol (e.g. a frame larger than
    /// the socket's `max_frame_size`).
    #[error("websocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A `disconnect` broadcast on the socket's id topic.
    #[error("disconnected by broadcast")]
    Disconnected,
    /// The client did not read its frames and its outbound queue filled up.
    #[error("slow client: outbound queue full")]
    SlowClient,
    /// The server is shutting down.
    #[error("server shutdown")]
    ServerShutdown,
    /// The client sent more frames than the socket's `message_rate`.
    #[error("message rate limit exceeded")]
    RateLimited,
    /// A channel killed the socket ([`crate::ChannelSocket::kill`]): the
    /// connection drops with no close frame.
    #[error("killed by a channel")]
    Killed,
}

impl DisconnectReason {
    /// The `reason` label of the `fawkes_sessions_closed_total` metric.
    pub(crate) fn label(&self) -> &'static str {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match self {
            DisconnectReason::ClientClosed => "client_closed",
            DisconnectReason::IdleTimeout => "idle_timeout",
            DisconnectReason::InvalidFrame(_) => "invalid_frame",
            DisconnectReason::WebSocket(WsError::Capacity(_)) => "frame_too_large",
            DisconnectReason::WebSocket(WsError::Utf8(_)) => "invalid_utf8",
            DisconnectReason::WebSocket(_) => "websocket_protocol",
            DisconnectReason::Disconnected => "disconnected",
            DisconnectReason::SlowClient => "slow_client",
            DisconnectReason::ServerShutdown => "server_shutdown",
            DisconnectReason::RateLimited => "rate_limited",
            DisconnectReason::Killed => "killed",
        }
    }

    /// The websocket close code Phoenix (on Bandit) uses for this reason,
    /// or `None` when no close frame should be sent.
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self {
            DisconnectReason::ClientClosed | DisconnectReason::Killed => None,
            DisconnectReason::IdleTimeout => Some(1002),
            DisconnectReason::InvalidFrame(_) => Some(1011),
            DisconnectReason::WebSocket(tokio_tungstenite::tungstenite::Error::Capacity(_)) => {
                Some(1009)
            }
            // RFC 6455 §8.1: a text frame that is not UTF-8 fails with 1007.
            DisconnectReason::WebSocket(tokio_tungstenite::tungstenite::Error::Utf8(_)) => {
                Some(1007)
            }
            DisconnectReason::WebSocket(_) => Some(1002),
            DisconnectReason::Disconnected => Some(1001),
            DisconnectReason::SlowClient => Some(1008),
            DisconnectReason::ServerShutdown => Some(1012),
            // Policy violation: the client broke the socket's message rate.
            DisconnectReason::RateLimited => Some(1008),
        }
    }
}
