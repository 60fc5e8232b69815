//! [`Counters`]: the endpoint-wide atomics behind `/metrics`, and the
//! [`ClusterGauges`] the cluster layer reports through.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The transport a session runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A websocket.
    WebSocket,
    /// LongPoll requests.
    LongPoll,
}

impl Transport {
    /// The `transport` label value.
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::LongPoll => "longpoll",
        }
    }

    fn index(self) -> usize {
        match self {
            Transport::WebSocket => 0,
            Transport::LongPoll => 1,
        }
    }
}

/// How a `phx_join` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The channel joined.
    Ok,
    /// The channel's `join` answered with an error.
    Error,
    /// The channel's `join` panicked.
    Crash,
    /// The session refused it before any channel ran (unmatched topic,
    /// rate limit, too many channels).
    Refused,
}

impl JoinOutcome {
    /// Every outcome, in label order.
    pub const ALL: [JoinOutcome; 4] = [
        JoinOutcome::Ok,
        JoinOutcome::Error,
        JoinOutcome::Crash,
        JoinOutcome::Refused,
    ];

    /// The `result` label value.
    pub fn label(self) -> &'static str {
        match self {
            JoinOutcome::Ok => "ok",
            JoinOutcome::Error => "error",
            JoinOutcome::Crash => "crash",
            JoinOutcome::Refused => "refused",
        }
    }
}

/// Labels of the reasons a session closes (`DisconnectReason::label`).
pub(crate) const CLOSE_REASONS: [&str; 12] = [
    "client_closed",
    "idle_timeout",
    "invalid_frame",
    "invalid_utf8",
    "frame_too_large",
    "websocket_protocol",
    "disconnected",
    "slow_client",
    "server_shutdown",
    "rate_limited",
    "killed",
    "other",
];

/// The close reasons that mean a client frame was rejected.
pub const REJECTED_FRAME_REASONS: [&str; 5] = [
    "invalid_frame",
    "invalid_utf8",
    "frame_too_large",
    "websocket_protocol",
    "rate_limited",
];

/// Endpoint-wide counters. Each is one relaxed atomic operation per event:
/// per frame in, per frame queued out, per broadcast (its deliveries added
/// at once), per join, per session opened or closed.
#[derive(Debug, Default)]
pub struct Counters {
    connections: [AtomicI64; 2],
    channels_joined: AtomicI64,
    joins: [AtomicU64; 4],
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    broadcasts: AtomicU64,
    deliveries: AtomicU64,
    undeliverable: AtomicU64,
    closed: [AtomicU64; CLOSE_REASONS.len()],
    /// What the cluster layer reports.
    pub cluster: ClusterGauges,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    pub(crate) fn session_opened(&self, transport: Transport) {
        self.connections[transport.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_closed(&self, transport: Transport, reason: &'static str) {
        self.connections[transport.index()].fetch_sub(1, Ordering::Relaxed);
        let index = CLOSE_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(CLOSE_REASONS.len() - 1);
        add(&self.closed[index], 1);
    }

    pub(crate) fn channel_subscribed(&self) {
        self.channels_joined.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn channel_unsubscribed(&self) {
        self.channels_joined.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn join(&self, outcome: JoinOutcome) {
        add(&self.joins[outcome as usize], 1);
    }

    pub(crate) fn message_in(&self) {
        add(&self.messages_in, 1);
    }

    pub(crate) fn message_out(&self) {
        add(&self.messages_out, 1);
    }

    /// One broadcast handed to `deliveries` local subscribers' sessions.
    pub(crate) fn broadcast(&self, deliveries: u64) {
        add(&self.broadcasts, 1);
        add(&self.deliveries, deliveries);
        add(&self.messages_out, deliveries);
    }

    /// Frames that could not be sent to a client at all (a binary payload
    /// for a V1 or LongPoll client).
    pub(crate) fn undeliverable(&self, n: u64) {
        add(&self.undeliverable, n);
    }

    /// Open sessions over `transport`.
    pub fn connections(&self, transport: Transport) -> i64 {
        self.connections[transport.index()].load(Ordering::Relaxed)
    }

    /// Channels joined now, on every session.
    pub fn channels_joined(&self) -> i64 {
        self.channels_joined.load(Ordering::Relaxed)
    }

    /// Joins that ended with `outcome`.
    pub fn joins(&self, outcome: JoinOutcome) -> u64 {
        get(&self.joins[outcome as usize])
    }

    /// Frames received from clients.
    pub fn messages_in(&self) -> u64 {
        get(&self.messages_in)
    }

    /// Frames queued for clients (replies, pushes, broadcast deliveries).
    pub fn messages_out(&self) -> u64 {
        get(&self.messages_out)
    }

    /// Broadcasts dispatched on this node (local and from other nodes).
    pub fn broadcasts(&self) -> u64 {
        get(&self.broadcasts)
    }

    /// Broadcast frames handed to local sessions.
    pub fn deliveries(&self) -> u64 {
        get(&self.deliveries)
    }

    /// Frames that no transport of their client could carry.
    pub fn undeliverable_frames(&self) -> u64 {
        get(&self.undeliverable)
    }

    /// Sessions closed for the reason labelled `reason`.
    pub fn closed(&self, reason: &str) -> u64 {
        CLOSE_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| get(&self.closed[i]))
    }
}

/// Gauges of the cluster layer: set by whoever knows them (the Redis
/// adapter's link check, presence replication's replica table), read at
/// each scrape. Unset values are not exported.
#[derive(Debug)]
pub struct ClusterGauges {
    peer_nodes_up: AtomicI64,
    gossip_lag_ms: AtomicI64,
}

impl Default for ClusterGauges {
    fn default() -> Self {
        Self {
            peer_nodes_up: AtomicI64::new(-1),
            gossip_lag_ms: AtomicI64::new(-1),
        }
    }
}

impl ClusterGauges {
    /// Other nodes this node hears from now.
    pub fn set_peer_nodes_up(&self, nodes: usize) {
        let nodes = i64::try_from(nodes).unwrap_or(i64::MAX);
        self.peer_nodes_up.store(nodes, Ordering::Relaxed);
    }

    /// How far behind the freshest peer heartbeat is, in milliseconds.
    pub fn set_gossip_lag_ms(&self, lag_ms: u64) {
        let lag = i64::try_from(lag_ms).unwrap_or(i64::MAX);
        self.gossip_lag_ms.store(lag, Ordering::Relaxed);
    }

    /// [`ClusterGauges::set_peer_nodes_up`]'s value, if set.
    pub fn peer_nodes_up(&self) -> Option<u64> {
        u64::try_from(self.peer_nodes_up.load(Ordering::Relaxed)).ok()
    }

    /// [`ClusterGauges::set_gossip_lag_ms`]'s value, if set.
    pub fn gossip_lag_ms(&self) -> Option<u64> {
        u64::try_from(self.gossip_lag_ms.load(Ordering::Relaxed)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_label() {
        let c = Counters::default();
        c.session_opened(Transport::WebSocket);
        c.session_opened(Transport::LongPoll);
        c.session_closed(Transport::WebSocket, "slow_client");
        c.session_closed(Transport::LongPoll, "no such reason");
        assert_eq!(c.connections(Transport::WebSocket), 0);
        assert_eq!(c.connections(Transport::LongPoll), 0);
        assert_eq!(c.closed("slow_client"), 1);
        assert_eq!(c.closed("other"), 1);
        c.join(JoinOutcome::Crash);
        assert_eq!(c.joins(JoinOutcome::Crash), 1);
        assert_eq!(c.joins(JoinOutcome::Ok), 0);
        c.broadcast(7);
        c.message_out();
        assert_eq!(
            (c.broadcasts(), c.deliveries(), c.messages_out()),
            (1, 7, 8)
        );
        assert_eq!(c.cluster.peer_nodes_up(), None);
        c.cluster.set_peer_nodes_up(2);
        assert_eq!(c.cluster.peer_nodes_up(), Some(2));
    }
}
