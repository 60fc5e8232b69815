//! The table of peer replicas a node has heard from, and their liveness:
//! up while heard within `down_period`, down after that (their presences
//! leave), forgotten after `permdown_period`. A node name is one row: a new
//! incarnation of the same name replaces the old one at once.
//!
//! Pure: the caller passes the time in.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::presence::tracker::ReplicaId;

/// Whether a peer is currently counted in the cluster's presences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Heard from recently; its presences are listed.
    Up,
    /// Silent for longer than `down_period`; its presences left.
    Down,
}

/// What the node knows of one peer.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// The peer's current incarnation.
    pub(crate) id: ReplicaId,
    pub(crate) status: Status,
    pub(crate) last_heard: Instant,
    /// The outstanding transfer request to this peer: reference and when.
    pub(crate) transfer: Option<(u64, Instant)>,
}

/// What hearing from a replica changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A name never heard before (or forgotten): now up.
    New,
    /// An up peer, still up.
    Alive,
    /// A down peer is up again.
    Recovered,
    /// A newer incarnation of the name replaced this old one.
    Replaced(ReplicaId),
    /// An older incarnation than the one known: to be ignored.
    Stale,
}

/// A liveness change found by [`Replicas::detect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Silent for `down_period`: its presences must leave.
    Down(ReplicaId),
    /// Silent for `permdown_period`: forgotten.
    Permdown(ReplicaId),
}

/// Peers by node name.
#[derive(Debug, Default)]
pub(crate) struct Replicas {
    peers: BTreeMap<String, Peer>,
}

impl Replicas {
    /// Records that `id` was heard from at `now`.
    pub(crate) fn heard(&mut self, id: &ReplicaId, now: Instant) -> Heard {
        let Some(peer) = self.peers.get_mut(&id.node) else {
            self.peers
                .insert(id.node.clone(), Peer::up(id.clone(), now));
            return Heard::New;
        };
        if id.incarnation < peer.id.incarnation {
            return Heard::Stale;
        }
        if id.incarnation > peer.id.incarnation {
            let old = std::mem::replace(peer, Peer::up(id.clone(), now));
            return Heard::Replaced(old.id);
        }
        peer.last_heard = now;
        match std::mem::replace(&mut peer.status, Status::Up) {
            Status::Up => Heard::Alive,
            Status::Down => Heard::Recovered,
        }
    }

    /// Marks peers down or forgets them, by how long they have been silent.
    pub(crate) fn detect(
        &mut self,
        now: Instant,
        down_period: Duration,
        permdown_period: Duration,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        self.peers.retain(|_, peer| {
            let silent = now.saturating_duration_since(peer.last_heard);
            if silent > permdown_period {
                if peer.status == Status::Up {
                    changes.push(Change::Down(peer.id.clone()));
                }
                changes.push(Change::Permdown(peer.id.clone()));
                return false;
            }
            if silent > down_period && peer.status == Status::Up {
                peer.status = Status::Down;
                peer.transfer = None;
                changes.push(Change::Down(peer.id.clone()));
            }
            true
        });
        changes
    }

    /// Whether `id` is the current incarnation of an up peer.
    pub(crate) fn is_up(&self, id: &ReplicaId) -> bool {
        self.get(id).is_some_and(|p| p.status == Status::Up)
    }

    /// The row of exactly this incarnation.
    pub(crate) fn get(&self, id: &ReplicaId) -> Option<&Peer> {
        self.peers.get(&id.node).filter(|p| p.id == *id)
    }

    /// The row of exactly this incarnation, to change.
    pub(crate) fn get_mut(&mut self, id: &ReplicaId) -> Option<&mut Peer> {
        self.peers.get_mut(&id.node).filter(|p| p.id == *id)
    }

    /// Removes the row of exactly this incarnation; whether there was one.
    pub(crate) fn remove(&mut self, id: &ReplicaId) -> bool {
        if self.get(id).is_some() {
            self.peers.remove(&id.node);
            true
        } else {
            false
        }
    }

    /// Every peer, by node name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }
}

impl Peer {
    fn up(id: ReplicaId, now: Instant) -> Peer {
        Peer {
            id,
            status: Status::Up,
            last_heard: now,
            transfer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: Duration = Duration::from_secs(3);
    const PERM: Duration = Duration::from_secs(60);

    #[test]
    fn peers_go_down_come_back_and_are_forgotten() {
        let t0 = Instant::now();
        let b = ReplicaId::new("b", 1);
        let mut table = Replicas::default();
        assert_eq!(table.heard(&b, t0), Heard::New);
        assert_eq!(table.heard(&b, t0 + DOWN), Heard::Alive);
        assert!(
            table.detect(t0 + DOWN * 2, DOWN, PERM).is_empty(),
            "not silent long enough"
        );
        let later = t0 + DOWN * 2 + Duration::from_millis(1);
        assert_eq!(
            table.detect(later, DOWN, PERM),
            vec![Change::Down(b.clone())]
        );
        assert!(!table.is_up(&b) && table.get(&b).is_some());
        assert!(table.detect(later, DOWN, PERM).is_empty(), "down once");
        assert_eq!(table.heard(&b, later), Heard::Recovered);
        assert!(table.is_up(&b));
        let gone = later + PERM + Duration::from_millis(1);
        assert_eq!(
            table.detect(gone, DOWN, PERM),
            vec![Change::Down(b.clone()), Change::Permdown(b.clone())]
        );
        assert!(table.get(&b).is_none());
        assert_eq!(table.heard(&b, gone), Heard::New);
    }

    #[test]
    fn a_new_incarnation_replaces_the_old_and_old_ones_are_stale() {
        let t0 = Instant::now();
        let (old, new) = (ReplicaId::new("b", 1), ReplicaId::new("b", 2));
        let mut table = Replicas::default();
        table.heard(&old, t0);
        assert_eq!(table.heard(&new, t0), Heard::Replaced(old.clone()));
        assert_eq!(table.heard(&old, t0), Heard::Stale);
        assert!(table.is_up(&new) && !table.is_up(&old));
        assert!(!table.remove(&old));
        assert!(table.remove(&new));
        assert_eq!(table.iter().count(), 0);
    }
}
