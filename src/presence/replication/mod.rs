//! Presence replicated across nodes, the way Phoenix.Tracker does it over
//! any pubsub: each node is a replica (node name + per-boot incarnation)
//! that ships CRDT deltas of its own changes on a period, heartbeats its
//! clock, asks for a transfer of what it missed, and marks silent peers
//! down (their presences leave) and later forgets them. The protocol is in
//! `node`; its messages in `wire`.
//!
//! This module owns no network. [`Replication::start`] takes a
//! [`GossipSink`] that carries a message to the other nodes, and whoever
//! receives messages from them hands each to [`Replication::receive`]. The
//! cluster adapter (Redis, or [`GossipHub`] in tests) is that medium. Each
//! node computes `presence_diff` from what it merged and publishes it to
//! its own subscribers only; diffs never cross nodes.

mod hub;
mod node;
mod over_redis;
#[cfg(test)]
mod props;
mod replicas;
#[cfg(test)]
mod service_tests;
mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use hub::GossipHub;
pub use wire::{DecodeError, MAX_GOSSIP_BYTES, VERSION};

use node::{Outgoing, Replicator, Timing};
use wire::Gossip;

use super::tracker::ReplicaId;
use super::{Presence, Publish};

/// Carries presence gossip to the other nodes of the cluster. Sends never
/// block: a medium that cannot send now drops the message (and logs it);
/// replication recovers from any loss with heartbeats and transfers.
pub trait GossipSink: Send + Sync + 'static {
    /// Send `msg` to every other node.
    fn broadcast(&self, msg: Bytes);

    /// Send `msg` to the node named `node` only. Messages carry their
    /// addressee, so the default, a broadcast, is correct, only wasteful.
    fn send_to(&self, node: &str, msg: Bytes) {
        let _ = node;
        self.broadcast(msg);
    }
}

/// How often local presence changes are shipped, by default: 100 ms, so a
/// join is listed on every node within a few tenths of a second (Phoenix
/// ships every 1.5 s). An idle node sends nothing more than its heartbeat.
pub const DEFAULT_BROADCAST_PERIOD: Duration = Duration::from_millis(100);
/// How long a silent peer stays up, by default: 4 s. A node killed without
/// a goodbye has its presences leave everywhere within 4 s plus one
/// broadcast period (the target is 5 s; Phoenix waits 30 s), and a peer is
/// marked down only after six heartbeats in a row (one every 667 ms) were
/// lost or late, so a node busy for a few seconds is not taken for dead.
pub const DEFAULT_DOWN_PERIOD: Duration = Duration::from_secs(4);
/// How long a down peer is remembered, by default: 20 minutes, as Phoenix.
pub const DEFAULT_PERMDOWN_PERIOD: Duration = Duration::from_secs(20 * 60);

/// Settings of presence replication (the `[cluster]` section's
/// `node_name`, `broadcast_period_ms`, `down_period_ms`,
/// `permdown_period_ms`). The defaults are [`DEFAULT_BROADCAST_PERIOD`],
/// [`DEFAULT_DOWN_PERIOD`] and [`DEFAULT_PERMDOWN_PERIOD`].
///
/// There is no separate heartbeat setting: an idle node heartbeats six
/// times per `down_period` (but never more often than once a period), so a
/// peer is marked down only after about six heartbeats in a row were lost,
/// whatever the periods are set to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationOptions {
    /// This node's name, unique in the cluster.
    pub node_name: String,
    /// How often local changes are shipped.
    pub broadcast_period: Duration,
    /// A peer silent this long is down: its presences leave.
    pub down_period: Duration,
    /// A down peer silent this long is forgotten.
    pub permdown_period: Duration,
}

/// Heartbeats an idle node sends per `down_period`.
const HEARTBEATS_PER_DOWN_PERIOD: u32 = 6;

impl ReplicationOptions {
    /// The defaults for a node named `node_name`.
    pub fn new(node_name: impl Into<String>) -> ReplicationOptions {
        ReplicationOptions {
            node_name: node_name.into(),
            broadcast_period: DEFAULT_BROADCAST_PERIOD,
            down_period: DEFAULT_DOWN_PERIOD,
            permdown_period: DEFAULT_PERMDOWN_PERIOD,
        }
    }

    /// How often an idle node heartbeats.
    pub fn heartbeat_period(&self) -> Duration {
        (self.down_period / HEARTBEATS_PER_DOWN_PERIOD).max(self.broadcast_period)
    }

    fn timing(&self) -> Result<Timing, ReplicationError> {
        let heartbeat_period = self.heartbeat_period();
        if self.node_name.is_empty() {
            return Err(ReplicationError::Options("node_name is empty"));
        }
        if self.broadcast_period.is_zero() {
            return Err(ReplicationError::Options("broadcast_period is zero"));
        }
        if self.down_period < self.broadcast_period * 3 {
            return Err(ReplicationError::Options(
                "down_period must be at least three broadcast periods",
            ));
        }
        if self.permdown_period < self.down_period {
            return Err(ReplicationError::Options(
                "permdown_period is shorter than down_period",
            ));
        }
        Ok(Timing {
            broadcast_period: self.broadcast_period,
            heartbeat_period,
            down_period: self.down_period,
            permdown_period: self.permdown_period,
            transfer_timeout: heartbeat_period * 2,
        })
    }
}

/// Why replication could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The options are inconsistent.
    #[error("invalid presence replication options: {0}")]
    Options(&'static str),
    /// The presence service already tracks presences or replicates: start
    /// replication before serving.
    #[error("presence replication must start before anything is tracked, once")]
    AlreadyStarted,
}

/// What a node knows of one peer (see [`Replication::peer_states`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerState {
    /// The peer's node name.
    pub node: String,
    /// Heard from within `down_period` (its presences are listed).
    pub up: bool,
    /// Time since the last message from it (its gossip lag).
    pub silent_for: Duration,
}

/// A running replication of one presence service. Cheap to clone; the
/// timer task stops with [`Replication::leave`] or when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Replication {
    shared: Arc<Shared>,
}

struct Shared {
    presence: Presence,
    sink: Arc<dyn GossipSink>,
    core: Mutex<Replicator>,
    stop: CancellationToken,
    left: AtomicBool,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("replica", &self.replica())
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Replication {
    /// Makes `presence` the replica of node `options.node_name` and starts
    /// its timer task (on the current tokio runtime). Outbound gossip goes
    /// to `sink`; hand inbound gossip to [`Replication::receive`].
    ///
    /// # Errors
    /// Inconsistent options, or a presence service that already tracked
    /// something or already replicates.
    pub fn start(
        presence: &Presence,
        options: ReplicationOptions,
        sink: Arc<dyn GossipSink>,
    ) -> Result<Replication, ReplicationError> {
        let timing = options.timing()?;
        let me = presence.become_node(&options.node_name)?;
        let shared = Arc::new(Shared {
            presence: presence.clone(),
            sink,
            core: Mutex::new(Replicator::new(me, timing)),
            stop: CancellationToken::new(),
            left: AtomicBool::new(false),
        });
        tokio::spawn(run(
            Arc::downgrade(&shared),
            shared.stop.clone(),
            timing.broadcast_period,
        ));
        Ok(Replication { shared })
    }

    /// This node's replica id.
    pub fn replica(&self) -> ReplicaId {
        self.shared.core().replica().clone()
    }

    /// The peer replicas this node currently knows (up or down).
    pub fn peers(&self) -> Vec<ReplicaId> {
        self.shared.core().peers().cloned().collect()
    }

    /// What this node knows of each peer now (for metrics and the
    /// dashboard): name, up or down, and how long since it was heard.
    pub fn peer_states(&self) -> Vec<PeerState> {
        let now = Instant::now();
        self.shared
            .core()
            .peer_states(now)
            .into_iter()
            .map(|(node, up, silent_for)| PeerState {
                node,
                up,
                silent_for,
            })
            .collect()
    }

    /// Handles one message from another node. Bytes that are not a valid
    /// message are dropped with a log line, and the error is returned so
    /// the medium can count them.
    pub fn receive(&self, msg: &[u8]) -> Result<(), DecodeError> {
        if self.shared.left.load(Ordering::Acquire) {
            return Ok(());
        }
        let gossip = match Gossip::decode(msg) {
            Ok(gossip) => gossip,
            Err(error) => {
                tracing::warn!(%error, bytes = msg.len(), "presence gossip dropped");
                return Err(error);
            }
        };
        tracing::trace!(kind = gossip.kind(), from = %gossip.from(), "presence gossip");
        let now = Instant::now();
        self.shared
            .step(|core, tracker| core.receive(tracker, gossip, now));
        Ok(())
    }

    /// Asks every peer that is up for a transfer of what this node lacks.
    /// The medium calls it when messages may have been lost: after its
    /// link to the other nodes came back, or after it dropped messages
    /// because this node fell behind reading them.
    pub fn resync(&self) {
        if self.shared.left.load(Ordering::Acquire) {
            return;
        }
        tracing::debug!("presence resync: asking peers for a transfer");
        let now = Instant::now();
        self.shared.step(|core, tracker| core.resync(tracker, now));
    }

    /// Graceful shutdown: stops the timer and tells the other nodes to drop
    /// this node's presences now. Later messages are ignored.
    pub fn leave(&self) {
        if self.shared.left.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.stop.cancel();
        let leave = self.shared.core().leave();
        self.shared.send(vec![Outgoing::All(leave)]);
    }
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Replicator> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one step of the state machine with the presence state locked,
    /// publishes its diffs locally (under the lock, so they keep their
    /// order), then sends its messages.
    fn step(&self, f: impl FnOnce(&mut Replicator, &mut super::tracker::Tracker) -> node::Effects) {
        let out = {
            let mut state = self.presence.state();
            let effects = f(&mut self.core(), &mut state.tracker);
            self.presence
                .changed(&mut state, effects.diffs, &Publish::Now);
            effects.out
        };
        self.send(out);
    }

    fn send(&self, out: Vec<Outgoing>) {
        for message in out {
            let (to, gossip) = match message {
                Outgoing::All(gossip) => (None, gossip),
                Outgoing::To(to, gossip) => (Some(to), gossip),
            };
            match (gossip.encode(), to) {
                (Ok(bytes), None) => self.sink.broadcast(bytes),
                (Ok(bytes), Some(to)) => self.sink.send_to(&to.node, bytes),
                (Err(error), _) => {
                    tracing::error!(%error, kind = gossip.kind(), "presence gossip not encodable");
                }
            }
        }
    }
}

/// The timer task: one step per broadcast period until stopped.
async fn run(shared: Weak<Shared>, stop: CancellationToken, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        shared.step(|core, tracker| core.tick(tracker, now));
    }
}
