//! Causal context of the presence tracker: which events of each replica a
//! tracker has observed, and the [`Clock`] summary it sends to peers.
//!
//! Every change a replica makes to its own presences (a track, an update, an
//! untrack) is an *event* numbered by that replica's counter: 1, 2, 3, ...
//! A tracker remembers the set of `(replica, counter)` events it has observed.
//! As in Phoenix.Tracker this set is kept in two parts:
//!
//! * a contiguous prefix per replica (`1..=n` all observed), stored in a
//!   [`crdts::VClock`], which is exactly what a version vector can express;
//! * a *cloud* of observed counters above the prefix with holes below them.
//!   `crdts` has no such structure (its `VClock` only stores a maximum, so an
//!   event received out of order would silently mark the missing ones as
//!   observed), hence [`Ranges`]. Clouds fold into the prefix as soon as the
//!   holes fill.

use std::collections::BTreeMap;

use crdts::{CmRDT, CvRDT, Dot, ResetRemove, VClock};
use serde::{Deserialize, Serialize};

use super::ReplicaId;

/// A set of counters stored as sorted, disjoint, non-adjacent inclusive ranges.
///
/// Counter `0` is never a member (replica counters start at 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    /// Builds a set from arbitrary `(start, end)` pairs (inclusive); pairs are
    /// normalised, so malformed input from a peer cannot break the invariants.
    pub(super) fn from_pairs(pairs: impl IntoIterator<Item = (u64, u64)>) -> Ranges {
        let mut set = Ranges::default();
        for (start, end) in pairs {
            set.insert(start, end);
        }
        set
    }

    /// Builds a set from single counters.
    pub(super) fn from_points(points: impl IntoIterator<Item = u64>) -> Ranges {
        Ranges::from_pairs(points.into_iter().map(|c| (c, c)))
    }

    /// The ranges in ascending order.
    pub(super) fn pairs(&self) -> Vec<(u64, u64)> {
        self.0.iter().map(|(s, e)| (*s, *e)).collect()
    }

    /// Every member, ascending.
    #[cfg(test)]
    pub(super) fn points(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|(s, e)| *s..=*e)
    }

    /// Whether `counter` is a member.
    pub(super) fn contains(&self, counter: u64) -> bool {
        self.0
            .range(..=counter)
            .next_back()
            .is_some_and(|(_, end)| *end >= counter)
    }

    /// The largest member, or 0 when empty.
    pub(super) fn max(&self) -> u64 {
        self.0.values().next_back().copied().unwrap_or(0)
    }

    /// Whether the set is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `start..=end`, coalescing with overlapping or adjacent ranges.
    pub(super) fn insert(&mut self, start: u64, end: u64) {
        let start = start.max(1);
        if start > end {
            return;
        }
        let (mut lo, mut hi) = (start, end);
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end.saturating_add(1))
            .rev()
            .take_while(|(_, e)| e.saturating_add(1) >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.0.remove(&s);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        self.0.insert(lo, hi);
    }

    /// Adds every member of `other`.
    pub(super) fn union(&mut self, other: &Ranges) {
        for (s, e) in &other.0 {
            self.insert(*s, *e);
        }
    }

    /// The members of `self` that are not in `other`, in time linear in the
    /// number of ranges (never in the number of members).
    pub(super) fn difference(&self, other: &Ranges) -> Ranges {
        let mut out = self.clone();
        for (s, e) in &other.0 {
            out.remove_range(*s, *e);
        }
        out
    }

    /// Removes every member in `start..=end`.
    pub(super) fn remove_range(&mut self, start: u64, end: u64) {
        if start > end {
            return;
        }
        let overlapping: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.0.remove(&s);
            if s < start {
                self.0.insert(s, start - 1);
            }
            if e > end {
                self.0.insert(end + 1, e);
            }
        }
    }

    /// Removes one counter, splitting its range if needed.
    #[cfg(test)]
    pub(super) fn remove_point(&mut self, counter: u64) {
        self.remove_range(counter, counter);
    }

    /// Removes and returns the lowest range.
    fn pop_first(&mut self) -> Option<(u64, u64)> {
        self.0.pop_first()
    }

    /// The lowest range.
    fn first(&self) -> Option<(u64, u64)> {
        self.0.first_key_value().map(|(s, e)| (*s, *e))
    }
}

/// The set of events a tracker has observed, per origin replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct CausalContext {
    /// Per replica, the highest `n` such that events `1..=n` were all observed.
    prefix: VClock<ReplicaId>,
    /// Per replica, observed events above `prefix + 1` (never adjacent to it).
    cloud: BTreeMap<ReplicaId, Ranges>,
}

impl CausalContext {
    /// Mints the next event of `replica`, which must be the owning replica
    /// (its events are always contiguous, so it never has a cloud).
    pub(super) fn next_event(&mut self, replica: &ReplicaId) -> u64 {
        debug_assert!(!self.cloud.contains_key(replica));
        let dot = self.prefix.inc(replica.clone());
        let counter = dot.counter;
        self.prefix.apply(dot);
        counter
    }

    /// Whether event `counter` of `replica` has been observed.
    pub(super) fn contains(&self, replica: &ReplicaId, counter: u64) -> bool {
        counter <= self.prefix.get(replica)
            || self.cloud.get(replica).is_some_and(|c| c.contains(counter))
    }

    /// The highest observed event of `replica` (0 if none).
    pub(super) fn max(&self, replica: &ReplicaId) -> u64 {
        let cloud = self.cloud.get(replica).map_or(0, Ranges::max);
        cloud.max(self.prefix.get(replica))
    }

    /// All observed events of `replica`.
    pub(super) fn observed(&self, replica: &ReplicaId) -> Ranges {
        let mut all = self.cloud.get(replica).cloned().unwrap_or_default();
        all.insert(1, self.prefix.get(replica));
        all
    }

    /// Every replica with at least one observed event.
    pub(super) fn replicas(&self) -> Vec<ReplicaId> {
        let mut all: Vec<ReplicaId> = self.prefix.dots.keys().cloned().collect();
        all.extend(self.cloud.keys().cloned());
        all.sort();
        all.dedup();
        all
    }

    /// Marks `events` of `replica` as observed, folding the cloud into the
    /// prefix where the holes are now filled.
    pub(super) fn add(&mut self, replica: &ReplicaId, events: &Ranges) {
        if events.is_empty() {
            return;
        }
        let mut prefix = self.prefix.get(replica);
        let cloud = self.cloud.entry(replica.clone()).or_default();
        cloud.union(events);
        while let Some((start, end)) = cloud.first() {
            if start > prefix.saturating_add(1) {
                break;
            }
            cloud.pop_first();
            prefix = prefix.max(end);
        }
        if cloud.is_empty() {
            self.cloud.remove(replica);
        }
        self.prefix.apply(Dot::new(replica.clone(), prefix));
    }

    /// Forgets everything observed from `replica` (used when it is dropped).
    pub(super) fn forget(&mut self, replica: &ReplicaId) {
        let everything = VClock::from(Dot::new(replica.clone(), u64::MAX));
        self.prefix.reset_remove(&everything);
        self.cloud.remove(replica);
    }

    /// The contiguous prefix as a [`Clock`].
    pub(super) fn clock(&self) -> Clock {
        Clock(self.prefix.clone())
    }
}

/// A summary of a tracker's causal context: for each replica, the highest
/// counter `n` such that all of that replica's events `1..=n` are known.
///
/// A tracker sends its clock to peers; a peer answers with
/// [`Tracker::delta_since`](super::Tracker::delta_since). It wraps a
/// [`crdts::VClock`] and serializes as a JSON list of
/// `{"replica": {...}, "counter": n}` objects (replica ids are not strings,
/// so they cannot be JSON map keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<ClockEntry>", into = "Vec<ClockEntry>")]
pub struct Clock(VClock<ReplicaId>);

/// One replica's counter in the serialized form of a [`Clock`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ClockEntry {
    replica: ReplicaId,
    counter: u64,
}

impl From<Vec<ClockEntry>> for Clock {
    fn from(entries: Vec<ClockEntry>) -> Clock {
        let mut clock = VClock::new();
        for e in entries {
            clock.apply(Dot::new(e.replica, e.counter));
        }
        Clock(clock)
    }
}

impl From<Clock> for Vec<ClockEntry> {
    fn from(clock: Clock) -> Vec<ClockEntry> {
        clock
            .0
            .dots
            .into_iter()
            .map(|(replica, counter)| ClockEntry { replica, counter })
            .collect()
    }
}

impl Clock {
    /// The counter known for `replica` (0 if none).
    pub fn get(&self, replica: &ReplicaId) -> u64 {
        self.0.get(replica)
    }

    /// Whether this clock has seen at least everything `other` has
    /// (pointwise `>=`), i.e. a peer with `other` has nothing new for us
    /// in its contiguous prefix.
    pub fn dominates(&self, other: &Clock) -> bool {
        self.0 >= other.0
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &Clock) {
        self.0.merge(other.0.clone());
    }

    /// The replicas and counters, in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (&ReplicaId, u64)> {
        self.0.dots.iter().map(|(r, c)| (r, *c))
    }

    /// The underlying `crdts` version vector.
    pub fn as_vclock(&self) -> &VClock<ReplicaId> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(n: &str) -> ReplicaId {
        ReplicaId::new(n, 1)
    }

    #[test]
    fn ranges_insert_coalesces_and_remove_splits() {
        let mut r = Ranges::from_pairs([(5, 6), (1, 2), (8, 9), (0, 0), (4, 3)]);
        assert_eq!(r.pairs(), vec![(1, 2), (5, 6), (8, 9)]);
        r.insert(3, 4);
        assert_eq!(r.pairs(), vec![(1, 6), (8, 9)]);
        r.insert(7, 7);
        assert_eq!(r.pairs(), vec![(1, 9)]);
        r.remove_point(5);
        assert_eq!(r.pairs(), vec![(1, 4), (6, 9)]);
        r.remove_point(1);
        r.remove_point(9);
        r.remove_point(20);
        assert_eq!(r.pairs(), vec![(2, 4), (6, 8)]);
        assert!(r.contains(3) && !r.contains(5) && !r.contains(1) && r.contains(8));
        assert_eq!(r.max(), 8);
        assert_eq!(r.points().collect::<Vec<_>>(), vec![2, 3, 4, 6, 7, 8]);
        assert_eq!(
            Ranges::from_points([3, 1, 2, 7]).pairs(),
            vec![(1, 3), (7, 7)]
        );
    }

    #[test]
    fn difference_works_on_ranges_of_any_width() {
        let all = Ranges::from_pairs([(1, u64::MAX)]);
        let some = Ranges::from_pairs([(3, 5), (10, 10), (u64::MAX, u64::MAX)]);
        assert_eq!(
            all.difference(&some).pairs(),
            vec![(1, 2), (6, 9), (11, u64::MAX - 1)]
        );
        assert_eq!(some.difference(&all).pairs(), vec![]);
        let mut r = Ranges::from_pairs([(1, 4), (6, 9), (12, 20)]);
        r.remove_range(3, 13);
        assert_eq!(r.pairs(), vec![(1, 2), (14, 20)]);
        r.remove_range(9, 2);
        assert_eq!(r.pairs(), vec![(1, 2), (14, 20)]);
    }

    #[test]
    fn context_clouds_fold_into_the_prefix() {
        let a = rid("a");
        let mut ctx = CausalContext::default();
        ctx.add(&a, &Ranges::from_pairs([(3, 4), (7, 7)]));
        assert_eq!(ctx.clock().get(&a), 0);
        assert!(ctx.contains(&a, 4) && !ctx.contains(&a, 2) && !ctx.contains(&a, 5));
        assert_eq!(ctx.max(&a), 7);
        ctx.add(&a, &Ranges::from_pairs([(1, 2)]));
        assert_eq!(ctx.clock().get(&a), 4);
        ctx.add(&a, &Ranges::from_pairs([(5, 6)]));
        assert_eq!(ctx.clock().get(&a), 7);
        assert!(ctx.cloud.is_empty());
        assert_eq!(ctx.observed(&a).pairs(), vec![(1, 7)]);
        ctx.add(&a, &Ranges::from_pairs([(2, 3)]));
        assert_eq!(ctx.observed(&a).pairs(), vec![(1, 7)]);
        ctx.forget(&a);
        assert_eq!(ctx, CausalContext::default());
    }

    #[test]
    fn own_events_are_minted_in_order() {
        let a = rid("a");
        let mut ctx = CausalContext::default();
        assert_eq!(ctx.next_event(&a), 1);
        assert_eq!(ctx.next_event(&a), 2);
        assert_eq!(ctx.replicas(), vec![a.clone()]);
        assert_eq!(ctx.clock().get(&a), 2);
    }

    #[test]
    fn clock_serializes_as_a_list_and_compares() {
        let (a, b) = (rid("a"), rid("b"));
        let mut c1 = Clock::default();
        c1.0.apply(Dot::new(a.clone(), 3));
        let mut c2 = Clock::default();
        c2.0.apply(Dot::new(b.clone(), 1));
        assert!(!c1.dominates(&c2) && !c2.dominates(&c1));
        let json = serde_json::to_value(&c1).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"replica": {"node": "a", "incarnation": 1}, "counter": 3}])
        );
        let back: Clock = serde_json::from_value(json).unwrap();
        assert_eq!(back, c1);
        c1.merge(&c2);
        assert!(c1.dominates(&c2));
        assert_eq!(c1.iter().map(|(_, c)| c).collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(c1.as_vclock().get(&a), 3);
    }
}
