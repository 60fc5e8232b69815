//! Per-socket transport options.

use std::time::Duration;

use super::CheckOrigin;
use crate::session::RateLimit;

/// Options of one mounted socket. Defaults follow Phoenix 1.8.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Close a websocket when no frame arrives for this long (60 s).
    pub idle_timeout: Duration,
    /// Largest accepted websocket frame/message in bytes (10,000,000).
    pub max_frame_size: usize,
    /// Which `Origin` headers are accepted ([`CheckOrigin::Host`], as
    /// Phoenix's `check_origin: true`).
    pub check_origin: CheckOrigin,
    /// Most channels one connection may join (100).
    pub max_channels: usize,
    /// Frames that may wait for a slow client before it is disconnected.
    pub outbound_capacity: usize,
    /// Frames read ahead of the session.
    pub inbound_capacity: usize,
    /// Serve the websocket transport at `<path>/websocket`.
    pub websocket: bool,
    /// Serve the longpoll transport at `<path>/longpoll`.
    pub longpoll: bool,
    /// Longpoll: how long a poll waits for messages (10 s).
    pub longpoll_window: Duration,
    /// Joins one connection may send (100 per second, bursts of 200); a
    /// join over it gets an error reply `{"reason": "join rate limit
    /// exceeded"}`. `None`: unlimited.
    pub join_rate: Option<RateLimit>,
    /// Frames one connection may send (1,000 per second, bursts of 2,000);
    /// a connection over it is closed (websocket close code 1008).
    /// `None`: unlimited.
    pub message_rate: Option<RateLimit>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            max_frame_size: 10_000_000,
            check_origin: CheckOrigin::Host,
            max_channels: 100,
            outbound_capacity: 1024,
            inbound_capacity: 32,
            websocket: true,
            longpoll: false,
            longpoll_window: Duration::from_secs(10),
            join_rate: Some(RateLimit::per_second(100, 200)),
            message_rate: Some(RateLimit::per_second(1_000, 2_000)),
        }
    }
}
