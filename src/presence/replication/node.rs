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

    /// After this node may have missed messages (its link to the others
    /// came back, or it dropped some while behind): asks every peer that
    /// is up here for a transfer of what this node lacks, without waiting
    /// for their heartbeats to show the gap. A request still awaited is
    /// not repeated.
    pub(crate) fn resync(&mut self, tracker: &Tracker, now: Instant) -> Effects {
        let mut effects = Effects::default();
        let up: Vec<ReplicaId> = self
            .peers
            .iter()
            .filter(|p| self.peers.is_up(&p.id))
            .map(|p| p.id.clone())
            .collect();
        for peer in up {
            self.request_transfer(tracker, &peer, now, &mut effects);
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

    /// The peers this node knows (up or down), for tests and diagnostics.
    pub(crate) fn peers(&self) -> impl Iterator<Item = &ReplicaId> {
        self.peers.iter().map(|p| &p.id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::tracker::Meta;

    fn timing() -> Timing {
        Timing {
            broadcast_period: Duration::from_millis(100),
            heartbeat_period: Duration::from_millis(500),
            down_period: Duration::from_secs(3),
            permdown_period: Duration::from_secs(60),
            transfer_timeout: Duration::from_secs(1),
        }
    }

    struct N {
        t: Tracker,
        r: Replicator,
    }

    fn node(name: &str, incarnation: u64) -> N {
        let id = ReplicaId::new(name, incarnation);
        N {
            t: Tracker::new(id.clone()),
            r: Replicator::new(id, timing()),
        }
    }

    impl N {
        fn track(&mut self, owner: u64, key: &str) {
            let o = self.t.owner(owner);
            self.t
                .track(o, "room", key, Meta::new(), format!("{key}-ref"))
                .unwrap();
        }
        fn tick(&mut self, now: Instant) -> Effects {
            self.r.tick(&mut self.t, now)
        }
        /// Delivers `out` (encoded and decoded) to this node.
        fn recv(&mut self, out: &[Outgoing], now: Instant) -> Effects {
            let mut all = Effects::default();
            for o in out {
                let (to, g) = match o {
                    Outgoing::All(g) => (None, g),
                    Outgoing::To(to, g) => (Some(to), g),
                };
                if to.is_some_and(|to| *to != self.r.me) {
                    continue;
                }
                let g = Gossip::decode(&g.encode().unwrap()).unwrap();
                let e = self.r.receive(&mut self.t, g, now);
                all.diffs.extend(e.diffs);
                all.out.extend(e.out);
            }
            all
        }
        fn keys(&self) -> Vec<&str> {
            self.t.keys("room")
        }
    }

    fn leaves(e: &Effects) -> Vec<String> {
        e.diffs
            .iter()
            .flat_map(|d| d.leaves.0.keys().cloned())
            .collect()
    }

    #[test]
    fn changes_ship_once_on_the_period_and_idle_nodes_heartbeat() {
        let t0 = Instant::now();
        let (mut a, mut b) = (node("a", 1), node("b", 1));
        a.track(1, "x");
        let out = a.tick(t0).out;
        assert!(matches!(
            &out[..],
            [Outgoing::All(Gossip::Heartbeat { delta: Some(_), .. })]
        ));
        let e = b.recv(&out, t0);
        assert_eq!(e.diffs[0].joins.0.keys().collect::<Vec<_>>(), ["x"]);
        assert!(e.out.is_empty(), "no gap, no transfer");
        assert_eq!(b.keys(), ["x"]);
        // Nothing new: silent until the heartbeat period is over.
        assert!(a.tick(t0 + Duration::from_millis(100)).out.is_empty());
        let hb = a.tick(t0 + Duration::from_millis(500)).out;
        assert!(matches!(
            &hb[..],
            [Outgoing::All(Gossip::Heartbeat { delta: None, .. })]
        ));
    }

    #[test]
    fn a_lost_delta_is_detected_and_transferred() {
        let t0 = Instant::now();
        let (mut a, mut b) = (node("a", 1), node("b", 1));
        a.track(1, "x");
        let _lost = a.tick(t0);
        a.track(2, "y");
        let second = a.tick(t0 + Duration::from_millis(100)).out;
        let e = b.recv(&second, t0);
        assert_eq!(b.keys(), ["y"]);
        let [Outgoing::To(to, Gossip::TransferReq { .. })] = &e.out[..] else {
            panic!("expected a transfer request, got {:?}", e.out);
        };
        assert_eq!(to.node, "a");
        let ack = a.recv(&e.out, t0).out;
        b.recv(&ack, t0);
        assert_eq!(b.keys(), ["x", "y"]);
        assert_eq!(b.t.clock().get(a.r.replica()), a.t.local_events());
    }

    #[test]
    fn a_silent_peer_goes_down_its_presences_leave_and_it_comes_back() {
        let t0 = Instant::now();
        let (mut a, mut b) = (node("a", 1), node("b", 1));
        a.track(1, "x");
        b.recv(&a.tick(t0).out, t0);
        let almost = b.tick(t0 + Duration::from_secs(3));
        assert!(
            almost.diffs.is_empty(),
            "silent for exactly down_period: still up"
        );
        let down = b.tick(t0 + Duration::from_millis(3001));
        assert_eq!(leaves(&down), ["x"]);
        assert!(b.keys().is_empty());
        // Back: its heartbeat shows a gap, the transfer restores x.
        let t1 = t0 + Duration::from_secs(4);
        let e = b.recv(&a.tick(t1).out, t1);
        let ack = a.recv(&e.out, t1).out;
        b.recv(&ack, t1);
        assert_eq!(b.keys(), ["x"]);
    }

    #[test]
    fn permdown_forgets_a_peer() {
        let t0 = Instant::now();
        let (mut a, mut b) = (node("a", 1), node("b", 1));
        a.track(1, "x");
        b.recv(&a.tick(t0).out, t0);
        b.tick(t0 + Duration::from_secs(4));
        assert!(b.r.peers.get(a.r.replica()).is_some());
        b.tick(t0 + Duration::from_secs(61));
        assert!(b.r.peers.get(a.r.replica()).is_none());
        assert_eq!(b.r.peers.iter().count(), 0);
    }

    #[test]
    fn a_new_incarnation_replaces_the_old_at_once() {
        let t0 = Instant::now();
        let (mut a1, mut b) = (node("a", 1), node("b", 1));
        a1.track(1, "old");
        b.recv(&a1.tick(t0).out, t0);
        let mut a2 = node("a", 2);
        a2.track(1, "new");
        let e = b.recv(&a2.tick(t0).out, t0);
        assert_eq!(leaves(&e), ["old"]);
        assert_eq!(b.keys(), ["new"]);
        // A late message of the old incarnation changes nothing.
        a1.track(2, "late");
        assert!(b.recv(&a1.tick(t0).out, t0).diffs.is_empty());
        assert_eq!(b.keys(), ["new"]);
    }

    #[test]
    fn a_graceful_leave_drops_the_presences_at_once() {
        let t0 = Instant::now();
        let (mut a, mut b) = (node("a", 1), node("b", 1));
        a.track(1, "x");
        b.recv(&a.tick(t0).out, t0);
        let e = b.recv(&[Outgoing::All(a.r.leave())], t0);
        assert_eq!(leaves(&e), ["x"]);
        assert!(b.keys().is_empty());
        assert!(b.r.peers.get(a.r.replica()).is_none());
        assert!(
            b.recv(&a.tick(t0).out, t0).diffs.is_empty(),
            "gone for good"
        );
    }

    #[test]
    fn a_transfer_never_brings_back_a_peer_that_is_down_here() {
        let t0 = Instant::now();
        let (mut a, mut b, mut c) = (node("a", 1), node("b", 1), node("c", 1));
        c.track(1, "ghost");
        let hb = c.tick(t0).out;
        a.recv(&hb, t0);
        b.recv(&hb, t0);
        // c dies. a still hears b, and marks c down first.
        let t1 = t0 + Duration::from_millis(3001);
        a.recv(&b.tick(t0 + Duration::from_secs(2)).out, t1);
        assert_eq!(leaves(&a.tick(t1)), ["ghost"]);
        // b, which still counts c up, answers a transfer request of a.
        let req = vec![Outgoing::To(
            b.r.replica().clone(),
            Gossip::TransferReq {
                from: a.r.replica().clone(),
                to: b.r.replica().clone(),
                reference: 99,
                clock: a.t.clock(),
            },
        )];
        let ack = b.recv(&req, t0).out;
        assert!(a.recv(&ack, t1).diffs.is_empty());
        assert!(a.keys().is_empty(), "c's presence came back as a ghost");
    }

    #[test]
    fn a_resync_asks_every_up_peer_for_a_transfer_once() {
        let t0 = Instant::now();
        let (mut a, mut b, mut c) = (node("a", 1), node("b", 1), node("c", 1));
        b.track(1, "x");
        c.track(1, "y");
        a.recv(&b.tick(t0).out, t0);
        a.recv(&c.tick(t0).out, t0);
        // b's next change is lost; no heartbeat of b has shown the gap yet.
        b.track(2, "lost");
        let _lost = b.tick(t0 + Duration::from_millis(100));
        let e = a.r.resync(&a.t, t0 + Duration::from_millis(200));
        let mut asked: Vec<&str> = e
            .out
            .iter()
            .map(|o| match o {
                Outgoing::To(to, Gossip::TransferReq { .. }) => to.node.as_str(),
                other => panic!("not a transfer request: {other:?}"),
            })
            .collect();
        asked.sort_unstable();
        assert_eq!(asked, ["b", "c"]);
        let acks = b.recv(&e.out, t0).out;
        a.recv(&acks, t0);
        assert_eq!(a.keys(), ["lost", "x", "y"]);
        // Still awaited from c: not asked again within the timeout.
        let again = a.r.resync(&a.t, t0 + Duration::from_millis(300));
        assert!(
            again
                .out
                .iter()
                .all(|o| !matches!(o, Outgoing::To(to, _) if to.node == "c")),
            "{:?}",
            again.out
        );
    }

    #[test]
    fn own_echoes_and_namesakes_are_ignored() {
        let t0 = Instant::now();
        let mut a = node("a", 1);
        a.track(1, "x");
        let out = a.tick(t0).out;
        assert!(a.recv(&out, t0).out.is_empty());
        let mut twin = node("a", 2);
        twin.track(1, "y");
        assert!(a.recv(&twin.tick(t0).out, t0).diffs.is_empty());
        assert_eq!(a.keys(), ["x"]);
    }
}
