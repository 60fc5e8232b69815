//! Replication between trackers: clocks, deltas, merging and dropping a
//! replica. The rules are explained in the [module docs](super).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::crdt_context::{Clock, Ranges};
use super::tracker_diff::DiffBuilder;
use super::{Diff, Entry, Meta, OwnerId, ReplicaId, Tracker};

/// State one tracker sends another: for each origin replica it has news
/// about, the events it has observed, the live entries the receiver may lack
/// and the live events the receiver already has. Made by
/// [`Tracker::delta_since`] or [`Tracker::full_state`], consumed by
/// [`Tracker::merge`]; serializable for any transport.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    origins: Vec<OriginDelta>,
}

impl Delta {
    /// Whether the delta carries nothing (the peer was up to date).
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// How many entries (with metas) the delta carries.
    pub fn entry_count(&self) -> usize {
        self.origins.iter().map(|o| o.entries.len()).sum()
    }

    /// The origin replicas the delta speaks about, in its order.
    pub fn origins(&self) -> impl Iterator<Item = &ReplicaId> {
        self.origins.iter().map(|o| &o.replica)
    }

    /// Keeps only what the delta says about origins for which `keep` is
    /// true. What is left is still a sound delta: each origin's part stands
    /// on its own.
    pub fn retain_origins(&mut self, mut keep: impl FnMut(&ReplicaId) -> bool) {
        self.origins.retain(|o| keep(&o.replica));
    }
}

/// What a delta says about one origin replica's entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OriginDelta {
    replica: ReplicaId,
    /// Every event of `replica` the sender observed, as inclusive ranges.
    observed: Vec<(u64, u64)>,
    /// Live entries above the receiver's clock, with their metas.
    entries: Vec<WireEntry>,
    /// Live events at or below the receiver's clock, as inclusive ranges:
    /// the receiver holds these already, so no metas are sent.
    kept: Vec<(u64, u64)>,
}

/// One live entry on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct WireEntry {
    event: u64,
    since: u64,
    owner: u64,
    topic: String,
    key: String,
    meta: Meta,
}

impl Tracker {
    /// The summary of what this tracker has seen, to send to peers.
    pub fn clock(&self) -> Clock {
        self.context.clock()
    }

    /// What a peer whose clock is `clock` may lack. Origins about which the
    /// peer already knows every event we know are left out, so the result is
    /// empty when the peer is up to date. A delta cut for one clock may be
    /// merged anywhere: a receiver that lacks some "kept" entry simply does
    /// not learn about it from this delta.
    pub fn delta_since(&self, clock: &Clock) -> Delta {
        let origins = self
            .context
            .replicas()
            .into_iter()
            .filter_map(|origin| {
                let known = clock.get(&origin);
                self.origin_delta(origin, known)
            })
            .collect();
        Delta { origins }
    }

    /// How many events this tracker's own replica has made (its counter).
    pub fn local_events(&self) -> u64 {
        self.context.max(&self.replica)
    }

    /// This replica's own changes after its event `shipped`: what every peer
    /// that has merged the local deltas up to `shipped` lacks. It is what a
    /// node broadcasts on each period; a peer that missed an earlier one
    /// learns the new entries, and its clock shows the gap. Empty when
    /// nothing happened since `shipped`.
    pub fn local_delta(&self, shipped: u64) -> Delta {
        let origins = self
            .origin_delta(self.replica.clone(), shipped)
            .into_iter()
            .collect();
        Delta { origins }
    }

    /// What a peer that knows `origin`'s events `1..=known` may lack about
    /// `origin`, or `None` when it lacks nothing.
    fn origin_delta(&self, origin: ReplicaId, known: u64) -> Option<OriginDelta> {
        if self.context.max(&origin) <= known {
            return None;
        }
        let mut entries = Vec::new();
        let mut kept = Vec::new();
        for (event, e) in self.entries.get(&origin).into_iter().flatten() {
            if *event > known {
                entries.push(WireEntry {
                    event: *event,
                    since: e.since,
                    owner: e.owner,
                    topic: e.topic.clone(),
                    key: e.key.clone(),
                    meta: e.meta.clone(),
                });
            } else {
                kept.push(*event);
            }
        }
        Some(OriginDelta {
            observed: self.context.observed(&origin).pairs(),
            kept: Ranges::from_points(kept).pairs(),
            replica: origin,
            entries,
        })
    }

    /// Everything this tracker knows (what a peer with an empty clock lacks).
    pub fn full_state(&self) -> Delta {
        self.delta_since(&Clock::default())
    }

    /// Applies a peer's delta or full state. Returns the joins and leaves it
    /// caused, one diff per topic in topic order. Information about this
    /// tracker's own entries and about dropped replicas is ignored, so a
    /// merge never removes our own presences. Merging is idempotent and
    /// deltas may arrive in any order.
    pub fn merge(&mut self, delta: Delta) -> Vec<Diff> {
        let mut diff = DiffBuilder::default();
        for origin in delta.origins {
            if origin.replica != self.replica && !self.dropped.contains(&origin.replica) {
                self.merge_origin(origin, &mut diff);
            }
        }
        diff.into_diffs()
    }

    /// Forgets `replica` for good: removes its entries (returned as leaves,
    /// one diff per topic) and its events, and ignores it in later merges.
    /// Dropping this tracker's own replica does nothing.
    pub fn drop_replica(&mut self, replica: &ReplicaId) -> Vec<Diff> {
        if *replica == self.replica {
            return Vec::new();
        }
        self.dropped.insert(replica.clone());
        self.forget_replica(replica)
    }

    /// Whether `replica` was dropped for good.
    pub fn is_dropped(&self, replica: &ReplicaId) -> bool {
        self.dropped.contains(replica)
    }

    /// Forgets what this tracker knows of `replica` (its entries, returned
    /// as leaves, and its events) without refusing later news about it:
    /// what a node does when a peer goes *down*. If the peer comes back, a
    /// full state from it (whose events are all news again) restores its
    /// presences. Forgetting this tracker's own replica does nothing.
    pub fn forget_replica(&mut self, replica: &ReplicaId) -> Vec<Diff> {
        let mut diff = DiffBuilder::default();
        if *replica == self.replica {
            return diff.into_diffs();
        }
        self.context.forget(replica);
        let events: Vec<u64> = self
            .entries
            .get(replica)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        for event in events {
            if let Some(entry) = self.remove_entry(replica, event) {
                diff.leave(replica, event, &entry);
            }
        }
        diff.into_diffs()
    }

    fn merge_origin(&mut self, delta: OriginDelta, diff: &mut DiffBuilder) {
        let origin = delta.replica;
        let observed = Ranges::from_pairs(delta.observed);
        let kept = Ranges::from_pairs(delta.kept);
        let live: BTreeSet<u64> = delta.entries.iter().map(|e| e.event).collect();

        // Leaves: the sender saw the event and no longer holds the entry.
        let dead: Vec<u64> = self
            .entries
            .get(&origin)
            .into_iter()
            .flatten()
            .map(|(event, _)| *event)
            .filter(|e| observed.contains(*e) && !kept.contains(*e) && !live.contains(e))
            .collect();
        for event in dead {
            if let Some(entry) = self.remove_entry(&origin, event) {
                diff.leave(&origin, event, &entry);
            }
        }

        // What we may now claim to have observed: not the kept events we
        // never saw (we lack their metas). Computed on ranges, never per
        // event: a peer's ranges may be as wide as `u64`.
        let unseen_kept = kept.difference(&self.context.observed(&origin));
        let learned = observed.difference(&unseen_kept);

        // Joins: live entries whose events are news to us.
        for w in delta.entries {
            if !observed.contains(w.event) || self.context.contains(&origin, w.event) {
                continue;
            }
            let owner = OwnerId::new(origin.clone(), w.owner);
            if let Some(held) = self.lookup(&owner, &w.topic, &w.key) {
                if held > w.event {
                    continue; // the newer entry proves this one dead
                }
                if let Some(old) = self.remove_entry(&origin, held) {
                    diff.leave(&origin, held, &old);
                }
            }
            let entry = Entry {
                owner: w.owner,
                topic: w.topic,
                key: w.key,
                since: w.since,
                meta: w.meta,
            };
            diff.join(&origin, w.event, &entry);
            self.insert_entry(origin.clone(), w.event, entry);
        }

        self.context.add(&origin, &learned);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rid(n: &str) -> ReplicaId {
        ReplicaId::new(n, 1)
    }

    fn track(t: &mut Tracker, id: u64, topic: &str, key: &str, r: &str) {
        let owner = t.owner(id);
        t.track(owner, topic, key, Meta::new(), r.into()).unwrap();
    }

    fn refs(t: &Tracker, topic: &str) -> Vec<(String, String)> {
        t.list(topic)
            .0
            .into_iter()
            .flat_map(|(k, metas)| {
                metas
                    .into_iter()
                    .map(move |m| (k.clone(), m["phx_ref"].as_str().unwrap().to_owned()))
            })
            .collect()
    }

    #[test]
    fn delta_brings_joins_and_leaves() {
        let (mut a, mut b) = (Tracker::new(rid("a")), Tracker::new(rid("b")));
        track(&mut a, 1, "t", "k", "a1");
        track(&mut a, 2, "t", "k", "a2");
        let diffs = b.merge(a.delta_since(&b.clock()));
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].joins.get("k").map(<[Meta]>::len), Some(2));
        assert!(a.delta_since(&b.clock()).is_empty());

        let owner = a.owner(1);
        a.untrack(owner, "t", "k");
        let delta = a.delta_since(&b.clock());
        assert_eq!(delta.entry_count(), 0, "a2 is sent as a kept event only");
        let diffs = b.merge(delta.clone());
        assert_eq!(
            diffs[0].to_json(),
            json!({"joins": {}, "leaves": {"k": {"metas": [{"phx_ref": "a1"}]}}})
        );
        assert_eq!(refs(&b, "t"), refs(&a, "t"));
        assert!(b.merge(delta).is_empty(), "merging twice changes nothing");
    }

    #[test]
    fn gaps_are_remembered_not_skipped() {
        let (mut a, mut b) = (Tracker::new(rid("a")), Tracker::new(rid("b")));
        track(&mut a, 1, "t", "x", "r1");
        let first = a.delta_since(&b.clock());
        let clock_before = b.clock();
        track(&mut a, 2, "t", "y", "r2");
        let second = a.delta_since(&clock_before).clone();
        // A delta cut against the first clock, arriving first, still carries both.
        b.merge(second);
        assert_eq!(refs(&b, "t").len(), 2);
        b.merge(first);
        assert_eq!(refs(&b, "t"), refs(&a, "t"));
        assert_eq!(b.clock(), a.clock());
    }

    #[test]
    fn kept_events_the_receiver_never_saw_are_not_claimed() {
        let (mut a, mut b, mut c) = (
            Tracker::new(rid("a")),
            Tracker::new(rid("b")),
            Tracker::new(rid("c")),
        );
        track(&mut a, 1, "t", "x", "r1");
        b.merge(a.full_state());
        track(&mut a, 2, "t", "y", "r2");
        // Cut for b (which has r1) but delivered to c (which has nothing).
        let for_b = a.delta_since(&b.clock());
        c.merge(for_b);
        assert_eq!(refs(&c, "t"), vec![("y".to_owned(), "r2".to_owned())]);
        assert!(!c.context.contains(&rid("a"), 1));
        c.merge(a.full_state());
        assert_eq!(refs(&c, "t"), refs(&a, "t"));
    }

    #[test]
    fn own_entries_survive_any_merge() {
        let (mut a, b) = (Tracker::new(rid("a")), Tracker::new(rid("b")));
        track(&mut a, 1, "t", "x", "r1");
        // b claims to have seen a's events 1..=10 and holds none of them.
        let mut forged = b.full_state();
        forged.origins.push(OriginDelta {
            replica: rid("a"),
            observed: vec![(1, 10)],
            entries: vec![],
            kept: vec![],
        });
        assert!(a.merge(forged).is_empty());
        assert_eq!(refs(&a, "t").len(), 1);
        assert!(a.drop_replica(&rid("a")).is_empty());
    }

    #[test]
    fn dropped_replicas_stay_dropped() {
        let (mut a, mut b, mut c) = (
            Tracker::new(rid("a")),
            Tracker::new(rid("b")),
            Tracker::new(rid("c")),
        );
        track(&mut a, 1, "t", "x", "r1");
        track(&mut b, 1, "t", "x", "r2");
        c.merge(a.full_state());
        c.merge(b.full_state());
        let diffs = c.drop_replica(&rid("a"));
        assert_eq!(diffs[0].leaves.get("x").map(<[Meta]>::len), Some(1));
        assert!(diffs[0].joins.is_empty());
        assert_eq!(refs(&c, "t"), vec![("x".to_owned(), "r2".to_owned())]);
        b.merge(a.full_state());
        assert!(
            c.merge(b.full_state()).is_empty(),
            "b's copy of a is ignored"
        );
        assert!(c.full_state().origins.iter().all(|o| o.replica != rid("a")));
    }

    #[test]
    fn a_newer_event_for_the_same_triple_supersedes() {
        let (mut a, mut c) = (Tracker::new(rid("a")), Tracker::new(rid("c")));
        track(&mut a, 1, "t", "x", "r1");
        c.merge(a.full_state());
        let owner = a.owner(1);
        a.update(owner, "t", "x", Meta::new(), "r2".into()).unwrap();
        // A partial delta that only knows the update's event (3), not the
        // removal of event 1: the newer entry alone proves r1 dead.
        let mut partial = a.delta_since(&c.clock());
        partial.origins[0].observed = vec![(3, 3)];
        let mut d = Tracker::new(rid("d"));
        d.merge(partial.clone());
        let diffs = c.merge(partial);
        assert_eq!(
            diffs[0].to_json(),
            json!({"joins": {"x": {"metas": [{"phx_ref": "r2", "phx_ref_prev": "r1"}]}},
                   "leaves": {"x": {"metas": [{"phx_ref": "r1"}]}}})
        );
        assert_eq!(refs(&c, "t"), vec![("x".to_owned(), "r2".to_owned())]);
        // d holds only r2; r1 arriving later (never observed by d) is not
        // resurrected, though d learns its event.
        let mut stale = OriginDelta {
            replica: rid("a"),
            observed: vec![(1, 1)],
            entries: vec![],
            kept: vec![],
        };
        stale.entries.push(WireEntry {
            event: 1,
            since: 1,
            owner: 1,
            topic: "t".into(),
            key: "x".into(),
            meta: Meta::new(),
        });
        assert!(d
            .merge(Delta {
                origins: vec![stale]
            })
            .is_empty());
        assert_eq!(refs(&d, "t"), vec![("x".to_owned(), "r2".to_owned())]);
        assert!(d.context.contains(&rid("a"), 1));
    }

    #[test]
    fn hostile_ranges_merge_in_time_linear_in_their_count() {
        let mut a = Tracker::new(rid("a"));
        // Without range arithmetic this would walk 2^64 kept events.
        let hostile = Delta {
            origins: vec![OriginDelta {
                replica: rid("x"),
                observed: vec![(1, u64::MAX)],
                entries: vec![],
                kept: vec![(1, u64::MAX)],
            }],
        };
        assert!(a.merge(hostile).is_empty());
        assert_eq!(
            a.clock().get(&rid("x")),
            0,
            "unseen kept events are not claimed"
        );
    }

    #[test]
    fn local_delta_carries_only_own_changes_since_shipped() {
        let (mut a, mut b, mut c) = (
            Tracker::new(rid("a")),
            Tracker::new(rid("b")),
            Tracker::new(rid("c")),
        );
        track(&mut b, 1, "t", "x", "b1");
        a.merge(b.full_state());
        track(&mut a, 1, "t", "y", "a1");
        assert_eq!(a.local_events(), 1);
        let first = a.local_delta(0);
        assert_eq!(first.origins().collect::<Vec<_>>(), vec![&rid("a")]);
        assert!(a.local_delta(1).is_empty());
        track(&mut a, 2, "t", "z", "a2");
        let second = a.local_delta(1);
        assert_eq!(second.entry_count(), 1);
        // c missed the first delta: it learns a2, not a1, and its clock
        // for a stays below a's counter (the gap a heartbeat reveals).
        c.merge(second);
        assert_eq!(refs(&c, "t"), vec![("z".to_owned(), "a2".to_owned())]);
        assert!(c.clock().get(&rid("a")) < a.local_events());
        c.merge(first);
        assert_eq!(c.clock().get(&rid("a")), a.local_events());
        assert_eq!(refs(&c, "t").len(), 2);
    }

    #[test]
    fn forgotten_replicas_come_back_with_a_full_state() {
        let (mut a, mut b) = (Tracker::new(rid("a")), Tracker::new(rid("b")));
        track(&mut a, 1, "t", "x", "r1");
        b.merge(a.full_state());
        let left = b.forget_replica(&rid("a"));
        assert_eq!(left[0].leaves.get("x").map(<[Meta]>::len), Some(1));
        assert!(refs(&b, "t").is_empty() && !b.is_dropped(&rid("a")));
        assert_eq!(b.clock().get(&rid("a")), 0);
        let back = b.merge(a.full_state());
        assert_eq!(back[0].joins.get("x").map(<[Meta]>::len), Some(1));
        assert!(b.forget_replica(&rid("b")).is_empty(), "own replica stays");
        b.drop_replica(&rid("a"));
        assert!(b.is_dropped(&rid("a")));
    }

    #[test]
    fn retain_origins_filters_a_delta() {
        let (mut a, mut b) = (Tracker::new(rid("a")), Tracker::new(rid("b")));
        track(&mut a, 1, "t", "x", "r1");
        track(&mut b, 1, "t", "y", "r2");
        a.merge(b.full_state());
        let mut state = a.full_state();
        state.retain_origins(|r| *r != rid("b"));
        let mut c = Tracker::new(rid("c"));
        c.merge(state);
        assert_eq!(refs(&c, "t"), vec![("x".to_owned(), "r1".to_owned())]);
    }

    #[test]
    fn delta_round_trips_through_json() {
        let mut a = Tracker::new(rid("a"));
        track(&mut a, 1, "t", "k", "r1");
        let delta = a.full_state();
        let text = serde_json::to_string(&delta).unwrap();
        let back: Delta = serde_json::from_str(&text).unwrap();
        assert_eq!(back, delta);
        let clock: Clock =
            serde_json::from_str(&serde_json::to_string(&a.clock()).unwrap()).unwrap();
        assert_eq!(clock, a.clock());
    }
}
