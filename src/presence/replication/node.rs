//! The replication state machine of one node, in the manner of
//! Phoenix.Tracker's shard, over any broadcast medium:
//!
//! * every `broadcast_period` the node sends a heartbeat to all peers with
//!   its clock and, when it changed anything, the delta of its own changes
//!   since the previous one ([`Tracker::local_delta`]); an idle node still
//!   heartbeats every `max_silent_periods` periods;
//! * a heartbeat whose clock shows events of the sender this node has not
//!   merged (a lost delta, a node that just came up or back) makes it ask
//!   the sender for a transfer: the sender answers with everything the
//!   requester's clock lacks ([`Tracker::delta_since`]);
//! * a peer silent for `down_period` is *down*: its presences leave here
//!   ([`Tracker::forget_replica`]), and nothing about it is merged until it
//!   is heard from again, when a transfer from it restores them; after
//!   `permdown_period` it is forgotten;
//! * a new incarnation of a node name replaces the old one at once, and a
//!   `leave` drops the sender at once ([`Tracker::drop_replica`]).
//!
//! Only origins that are up here are merged from a transfer, so a node
//! never shows presences of a replica it has not itself heard from
//! recently: no ghost of a node that died behind a partition.
//!
//! Pure: the caller owns the tracker, the clock and the network; every call
//! returns the local diffs to publish and the messages to send.

use std::time::Duration;

use tokio::time::Instant;

use super::replicas::{Change, Heard, Replicas};
use super::wire::Gossip;
use crate::presence::tracker::{Diff, ReplicaId, Tracker};

/// The periods a node runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    /// How often local changes are shipped.
    pub(crate) broadcast_period: Duration,
    /// How often an idle node still heartbeats.
    pub(crate) heartbeat_period: Duration,
    /// Silence after which a peer is down.
    pub(crate) down_period: Duration,
    /// Silence after which a peer is forgotten.
    pub(crate) permdown_period: Duration,
    /// How long a transfer request is awaited before it may be repeated.
    pub(crate) transfer_timeout: Duration,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outgoing {
    /// To every other node.
    All(Gossip),
    /// To one node only (others would ignore it).
    To(ReplicaId, Gossip),
}

/// What a call asks its caller to do.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Presence changes to publish to local subscribers.
    pub(crate) diffs: Vec<Diff>,
    /// Messages to send.
    pub(crate) out: Vec<Outgoing>,
}

/// The replication state of one node (besides its tracker).
#[derive(Debug)]
pub(crate) struct Replicator {
    me: ReplicaId,
    timing: Timing,
    peers: Replicas,
    /// Own events up to this one were shipped in a heartbeat.
    shipped: u64,
    last_heartbeat: Option<Instant>,
    next_ref: u64,
}

impl Replicator {
    /// A node `me` that has shipped nothing yet.
    pub(crate) fn new(me: ReplicaId, timing: Timing) -> Replicator {
        Replicator {
            me,
            timing,
            peers: Replicas::default(),
            shipped: 0,
            last_heartbeat: None,
            next_ref: 0,
        }
    }

    /// The period's work: detect silent peers, then heartbeat (with the
    /// local delta if anything changed).
    pub(crate) fn tick(&mut self, tracker: &mut Tracker, now: Instant) -> Effects {
        let mut effects = Effects::default();
        let t = self.timing;
        for change in self.peers.detect(now, t.down_period, t.permdown_period) {
            match change {
                Change::Down(id) => {
                    tracing::info!(replica = %id, "presence replica down");
                    effects.diffs.extend(tracker.forget_replica(&id));
                }
                Change::Permdown(id) => {
                    tracing::info!(replica = %id, "presence replica forgotten");
                }
            }
        }
        let events = tracker.local_events();
        let delta = if events > self.shipped {
            let delta = tracker.local_delta(self.shipped);
            self.shipped = events;
            Some(delta)
        } else {
            None
        };
        let due = self
            .last_heartbeat
            .is_none_or(|at| now.saturating_duration_since(at) >= t.heartbeat_period);
        if delta.is_some() || due {
            self.last_heartbeat = Some(now);
            effects.out.push(Outgoing::All(Gossip::Heartbeat {
                from: self.me.clone(),
                clock: tracker.clock(),
                delta,
            }));
        }
        effects
    }

    /// Handles one message from a peer.
    pub(crate) fn receive(
        &mut self,
        tracker: &mut Tracker,
        gossip: Gossip,
        now: Instant,
    ) -> Effects {
        let mut effects = Effects::default();
        let from = gossip.from().clone();
        if from.node == self.me.node {
            if from != self.me {
                tracing::warn!(replica = %from, "another presence replica uses this node's name");
            }
            return effects;
        }
        if tracker.is_dropped(&from) {
            return effects;
        }
        if let Gossip::Leave { .. } = gossip {
            let newer_known = self
                .peers
                .iter()
                .any(|p| p.id.node == from.node && p.id.incarnation > from.incarnation);
            if !newer_known {
                tracing::info!(replica = %from, "presence replica left");
                self.peers.remove(&from);
                effects.diffs.extend(tracker.drop_replica(&from));
            }
            return effects;
        }
        match self.peers.heard(&from, now) {
            Heard::Stale => return effects,
            Heard::Replaced(old) => {
                tracing::info!(old = %old, new = %from, "presence replica restarted");
                effects.diffs.extend(tracker.drop_replica(&old));
            }
            Heard::New | Heard::Recovered => {
                tracing::info!(replica = %from, "presence replica up");
            }
            Heard::Alive => {}
        }
        match gossip {
            Gossip::Heartbeat { clock, delta, .. } => {
                if let Some(mut delta) = delta {
                    delta.retain_origins(|origin| *origin == from);
                    effects.diffs.extend(tracker.merge(delta));
                }
                if tracker.clock().get(&from) < clock.get(&from) {
                    self.request_transfer(tracker, &from, now, &mut effects);
                }
            }
            Gossip::TransferReq {
                to,
                reference,
                clock,
                ..
            } if to == self.me => {
                effects.out.push(Outgoing::To(
                    from.clone(),
                    Gossip::TransferAck {
                        from: self.me.clone(),
                        to: from,
                        reference,
                        state: tracker.delta_since(&clock),
                    },
                ));
            }
            Gossip::TransferAck {
                to,
                reference,
                mut state,
                ..
            } if to == self.me => {
                if let Some(peer) = self.peers.get_mut(&from) {
                    if peer.transfer.is_some_and(|(r, _)| r == reference) {
                        peer.transfer = None;
                    }
                }
                let peers = &self.peers;
                state.retain_origins(|origin| peers.is_up(origin));
                effects.diffs.extend(tracker.merge(state));
            }
            Gossip::TransferReq { .. } | Gossip::TransferAck { .. } | Gossip::Leave { .. } => {}
        }
        effects
    }

    /// The message announcing a graceful shutdown.
    pub(crate) fn leave(&self) -> Gossip {
        Gossip::Leave {
            from: self.me.clone(),
        }
    }

    /// This node's replica id.
    pub(crate) fn replica(&self) -> &ReplicaId {
        &self.me
    }

    fn request_transfer(
        &mut self,
        tracker: &Tracker,
        from: &ReplicaId,
        now: Instant,
        effects: &mut Effects,
    ) {
        let timeout = self.timing.transfer_timeout;
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        if peer
            .transfer
            .is_some_and(|(_, at)| now.saturating_duration_since(at) < timeout)
        {
            return;
        }
        self.next_ref += 1;
        peer.transfer = Some((self.next_ref, now));
        tracing::debug!(replica = %from, "presence transfer requested");
        effects.out.push(Outgoing::To(
            from.clone(),
            Gossip::TransferReq {
                from: self.me.clone(),
                to: from.clone(),
                reference: self.next_ref,
                clock: tracker.clock(),
            },
        ));
    }
}
