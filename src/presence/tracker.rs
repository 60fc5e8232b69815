//! The presence tracker: a replicated, conflict-free record of who is present
//! on which topic, shaped the way Phoenix.Presence shows it to clients.
//!
//! This module is pure: no I/O, no tasks, no clocks. Callers pass in the
//! `phx_ref` of every new meta and move [`Clock`]s and [`Delta`]s between
//! nodes themselves.
//!
//! # Model
//!
//! A *presence* is one meta (a JSON object) tracked by an *owner* (one
//! channel instance, [`OwnerId`]) under a `(topic, key)`. An owner tracks a
//! `(topic, key)` at most once; many owners may share a key (several tabs of
//! one user), so a key lists several metas. Every owner lives on exactly one
//! *replica* ([`ReplicaId`]: node name plus an incarnation number that
//! changes on restart), and only that replica ever changes the presences its
//! owners track. That single-writer rule is what makes the design below
//! simple.
//!
//! # CRDT design
//!
//! The tracker is a delta-state observed-remove set over *events*, in the
//! spirit of Phoenix.Tracker's state. Each replica numbers its own changes
//! with a counter: a track creates a live entry named by its event
//! `(replica, counter)`, an untrack is an event that kills an entry, and an
//! update is both. Each tracker stores the live entries it knows of, grouped
//! by origin replica, and a causal context (`crdt_context.rs`): the events it
//! has observed, as a `crdts::VClock` prefix plus a *cloud* of ranges above
//! holes. The single rule that makes merging sound: an entry whose event a
//! tracker has observed but does not hold is dead, forever. A [`Delta`]
//! carries, per origin, the sender's observed events, the live entries the
//! receiver may lack (with metas) and the live events the receiver already
//! has (bare counters, "kept"). Merging kills held entries whose events the
//! sender observed but does not list as live, adds listed entries whose events
//! the receiver has not observed, and adds the sender's observed events to
//! the context, except kept events the receiver has not itself observed (it
//! lacks their metas, so it must not claim them). Every step only records
//! facts the sender knew, so deltas can be lost, duplicated or reordered:
//! nothing live is ever marked dead, and one full-state exchange
//! ([`Tracker::full_state`], which has no kept part) brings any replica up to
//! date. Two further facts follow from the single-writer rule: a replica
//! ignores what peers say about its own entries (it is their only author),
//! and a newer event for the same `(owner, topic, key)` proves the older one
//! dead (the origin never holds both). Well-formed deltas never need the
//! latter, as whoever has seen the newer event has seen the older one end;
//! it guards the uniqueness of that triple against a misbehaving peer.
//!
//! A delta names every live entry of each origin it covers (new ones with
//! metas, the rest as "kept" counter ranges), so its size grows with the
//! number of presences of the replicas that changed, not only with the
//! changes; in exchange no tombstones are stored and nothing needs garbage
//! collection. Origins with nothing new for the peer are left out.
//!
//! [`Tracker::drop_replica`] forgets a replica for good: its
//! entries and events are removed and later deltas about it are ignored
//! (a restarted node comes back with a new incarnation).
//!
//! # Why not `crdts::Orswot`
//!
//! `crdts` 7.3 has the right semantics (add-wins observed remove) but not the
//! right machinery for a tracker that gossips deltas:
//!
//! * its op-based `apply` only checks the *maximum* counter per actor, so an
//!   add received after a gap marks the missed events as seen and a later
//!   state merge then treats the missed entry as removed; its `VClock` cannot
//!   record holes and the version vector with exceptions (`vvwe`) is not
//!   public. We keep the `VClock` for the contiguous prefix and add the cloud.
//! * state-based `merge` needs the whole other set: a partial set is read as
//!   "everything missing was removed". There is no delta with a causal
//!   context of its own, which is what [`Delta`] is.
//! * it does not report what a merge added or removed, which is exactly the
//!   `presence_diff` we must broadcast, and metas would live in a side map
//!   anyway.
//!
//! Replica liveness (Phoenix's "down" and "permdown") is the caller's policy:
//! it calls [`Tracker::drop_replica`] when a replica is gone for good.
//!
//! # Order
//!
//! [`Tracker::list`] gives each key's metas grouped by replica (in replica id
//! order) and, within a replica, in tracking order, oldest first. An update
//! keeps the meta's place, as in Phoenix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

#[path = "crdt_context.rs"]
mod crdt_context;
#[path = "tracker_diff.rs"]
mod tracker_diff;
#[cfg(test)]
#[path = "tracker_props.rs"]
mod tracker_props;
#[path = "tracker_replication.rs"]
mod tracker_replication;
#[cfg(test)]
#[path = "tracker_syncdiff.rs"]
pub(crate) mod tracker_syncdiff;

pub use crdt_context::Clock;
pub use tracker_diff::{Diff, DiffBatch, PresenceList};
pub use tracker_replication::Delta;

use crdt_context::CausalContext;
use tracker_diff::DiffBuilder;

/// The meta of one presence: the application's fields plus `phx_ref` (and,
/// after an update, `phx_ref_prev`).
pub type Meta = serde_json::Map<String, serde_json::Value>;

/// The meta field holding a presence's unique reference.
pub const PHX_REF: &str = "phx_ref";
/// The meta field an update sets to the reference of the meta it replaces.
pub const PHX_REF_PREV: &str = "phx_ref_prev";

/// Identity of one tracker replica: a node name and an incarnation that is
/// different each time the node (re)starts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId {
    /// The node name, unique in the cluster.
    pub node: String,
    /// Distinguishes successive runs of the same node.
    pub incarnation: u64,
}

impl ReplicaId {
    /// A replica id from its parts.
    pub fn new(node: impl Into<String>, incarnation: u64) -> ReplicaId {
        ReplicaId {
            node: node.into(),
            incarnation,
        }
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.node, self.incarnation)
    }
}

/// The owner of presences: one channel instance on one replica.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OwnerId {
    /// The replica the owner runs on (the only one that may change its presences).
    pub replica: ReplicaId,
    /// Local id of the owner, unique within its replica.
    pub id: u64,
}

impl OwnerId {
    /// An owner id from its parts.
    pub fn new(replica: ReplicaId, id: u64) -> OwnerId {
        OwnerId { replica, id }
    }
}

/// Why a local tracker operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The owner already tracks this `(topic, key)`; use `update` instead.
    #[error("presence already tracked for this owner, topic and key")]
    AlreadyTracked,
    /// The owner does not track this `(topic, key)`.
    #[error("no presence tracked for this owner, topic and key")]
    NoPresence,
    /// The meta given is not a JSON object.
    #[error("presence meta must be a JSON object")]
    MetaNotObject,
}

/// One live presence, stored under its origin replica and event counter.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    /// Local id of the owner on the origin replica.
    owner: u64,
    topic: String,
    key: String,
    /// Event of the first track of this `(owner, topic, key)`; kept by
    /// updates so a meta keeps its place in [`Tracker::list`].
    since: u64,
    meta: Meta,
}

/// Where an entry sits in a key's list: origin replica, then `since`, then
/// its event (the last part only breaks ties that cannot happen).
type Order = (ReplicaId, u64, u64);

/// owner -> topic -> key -> event counter.
type OwnerIndex = BTreeMap<OwnerId, BTreeMap<String, BTreeMap<String, u64>>>;

/// topic -> key -> (origin, since) -> event counter.
type TopicIndex = BTreeMap<String, BTreeMap<String, BTreeMap<(ReplicaId, u64), u64>>>;

/// The replicated presence state of one node. See the module docs.
#[derive(Clone, Debug)]
pub struct Tracker {
    replica: ReplicaId,
    /// Events observed, per origin replica.
    context: CausalContext,
    /// Live entries per origin replica, keyed by event counter.
    entries: BTreeMap<ReplicaId, BTreeMap<u64, Entry>>,
    /// owner -> topic -> key -> event counter (the triple is unique).
    owners: OwnerIndex,
    /// topic -> key -> (origin, since) -> event counter, in list order.
    topics: TopicIndex,
    /// Replicas forgotten for good by [`Tracker::drop_replica`].
    dropped: BTreeSet<ReplicaId>,
}

impl Tracker {
    /// An empty tracker for `replica`.
    pub fn new(replica: ReplicaId) -> Tracker {
        Tracker {
            replica,
            context: CausalContext::default(),
            entries: BTreeMap::new(),
            owners: BTreeMap::new(),
            topics: BTreeMap::new(),
            dropped: BTreeSet::new(),
        }
    }

    /// Live entries, of every replica.
    pub fn entry_count(&self) -> usize {
        self.entries.values().map(BTreeMap::len).sum()
    }

    /// This tracker's replica id.
    pub fn replica(&self) -> &ReplicaId {
        &self.replica
    }

    /// An owner id on this replica.
    pub fn owner(&self, id: u64) -> OwnerId {
        OwnerId::new(self.replica.clone(), id)
    }

    /// Tracks `meta` for `(owner, topic, key)`. The stored meta is `meta` with
    /// `"phx_ref"` set to `phx_ref`. Returns the join diff.
    ///
    /// # Errors
    /// [`TrackError::AlreadyTracked`] if the owner already tracks that key.
    ///
    /// # Panics
    /// If `owner` belongs to another replica.
    pub fn track(
        &mut self,
        owner: OwnerId,
        topic: &str,
        key: &str,
        mut meta: Meta,
        phx_ref: String,
    ) -> Result<Diff, TrackError> {
        self.assert_local(&owner);
        if self.lookup(&owner, topic, key).is_some() {
            return Err(TrackError::AlreadyTracked);
        }
        meta.insert(PHX_REF.to_owned(), phx_ref.into());
        let counter = self.context.next_event(&self.replica);
        let entry = Entry {
            owner: owner.id,
            topic: topic.to_owned(),
            key: key.to_owned(),
            since: counter,
            meta,
        };
        let mut diff = DiffBuilder::default();
        diff.join(&self.replica, counter, &entry);
        self.insert_entry(owner.replica, counter, entry);
        Ok(diff.into_single(topic))
    }

    /// Replaces the meta of `(owner, topic, key)`. The new meta is `meta` with
    /// `"phx_ref"` = `phx_ref` and `"phx_ref_prev"` = the old meta's ref.
    /// Returns a diff that joins the new meta and leaves the old one.
    ///
    /// # Errors
    /// [`TrackError::NoPresence`] if the owner does not track that key.
    ///
    /// # Panics
    /// If `owner` belongs to another replica.
    pub fn update(
        &mut self,
        owner: OwnerId,
        topic: &str,
        key: &str,
        mut meta: Meta,
        phx_ref: String,
    ) -> Result<Diff, TrackError> {
        self.assert_local(&owner);
        let old_counter = self
            .lookup(&owner, topic, key)
            .ok_or(TrackError::NoPresence)?;
        let mut diff = DiffBuilder::default();
        let old = self.remove_local(old_counter, &mut diff);
        let prev = old.meta.get(PHX_REF).cloned().unwrap_or_default();
        meta.insert(PHX_REF.to_owned(), phx_ref.into());
        meta.insert(PHX_REF_PREV.to_owned(), prev);
        let counter = self.context.next_event(&self.replica);
        let entry = Entry { meta, ..old };
        diff.join(&self.replica, counter, &entry);
        self.insert_entry(owner.replica, counter, entry);
        Ok(diff.into_single(topic))
    }

    /// Stops tracking `(owner, topic, key)`. Returns the leave diff, or an
    /// empty diff if nothing was tracked.
    ///
    /// # Panics
    /// If `owner` belongs to another replica.
    pub fn untrack(&mut self, owner: OwnerId, topic: &str, key: &str) -> Diff {
        self.assert_local(&owner);
        let mut diff = DiffBuilder::default();
        if let Some(counter) = self.lookup(&owner, topic, key) {
            self.remove_local(counter, &mut diff);
        }
        diff.into_single(topic)
    }

    /// Stops tracking everything `owner` tracks (its channel is gone).
    /// Returns one leave diff per affected topic, in topic order.
    ///
    /// # Panics
    /// If `owner` belongs to another replica.
    pub fn untrack_owner(&mut self, owner: OwnerId) -> Vec<Diff> {
        self.assert_local(&owner);
        let counters: Vec<u64> = self
            .owners
            .get(&owner)
            .map(|topics| {
                topics
                    .values()
                    .flat_map(|keys| keys.values().copied())
                    .collect()
            })
            .unwrap_or_default();
        let mut diff = DiffBuilder::default();
        for counter in counters {
            self.remove_local(counter, &mut diff);
        }
        diff.into_diffs()
    }

    /// The presences on `topic`: key -> metas, as `Phoenix.Presence.list`.
    pub fn list(&self, topic: &str) -> PresenceList {
        let mut list = BTreeMap::new();
        for (key, slots) in self.topics.get(topic).into_iter().flatten() {
            let metas = slots
                .iter()
                .filter_map(|((origin, _), counter)| self.entry(origin, *counter))
                .map(|e| e.meta.clone())
                .collect();
            list.insert(key.clone(), metas);
        }
        PresenceList(list)
    }

    /// The presences on `topic` with the replica each lives on: `(key,
    /// origin replica, meta)` in [`Tracker::list`] order.
    pub fn presences(&self, topic: &str) -> Vec<(&str, &ReplicaId, &Meta)> {
        let mut found = Vec::new();
        for (key, slots) in self.topics.get(topic).into_iter().flatten() {
            for ((origin, _), counter) in slots {
                if let Some(entry) = self.entry(origin, *counter) {
                    found.push((key.as_str(), origin, &entry.meta));
                }
            }
        }
        found
    }

    /// The metas of one key on `topic`, in list order (empty if absent).
    pub fn metas(&self, topic: &str, key: &str) -> Vec<&Meta> {
        self.topics
            .get(topic)
            .and_then(|keys| keys.get(key))
            .into_iter()
            .flatten()
            .filter_map(|((origin, _), counter)| self.entry(origin, *counter))
            .map(|e| &e.meta)
            .collect()
    }

    /// The keys present on `topic`, sorted.
    pub fn keys(&self, topic: &str) -> Vec<&str> {
        self.topics
            .get(topic)
            .into_iter()
            .flat_map(|keys| keys.keys().map(String::as_str))
            .collect()
    }

    /// The meta `owner` tracks under `(topic, key)`, if any.
    pub fn get(&self, owner: OwnerId, topic: &str, key: &str) -> Option<&Meta> {
        let counter = self.lookup(&owner, topic, key)?;
        self.entry(&owner.replica, counter).map(|e| &e.meta)
    }

    /// The topics on which `owner` tracks at least one key, sorted.
    pub fn topics_of(&self, owner: OwnerId) -> Vec<String> {
        self.owners
            .get(&owner)
            .map(|topics| topics.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn assert_local(&self, owner: &OwnerId) {
        assert!(
            owner.replica == self.replica,
            "owner {}/{} is not local to tracker {}",
            owner.replica,
            owner.id,
            self.replica
        );
    }

    fn lookup(&self, owner: &OwnerId, topic: &str, key: &str) -> Option<u64> {
        self.owners.get(owner)?.get(topic)?.get(key).copied()
    }

    fn entry(&self, origin: &ReplicaId, counter: u64) -> Option<&Entry> {
        self.entries.get(origin)?.get(&counter)
    }

    /// Removes one of our own entries as a new event; records the leave.
    fn remove_local(&mut self, counter: u64, diff: &mut DiffBuilder) -> Entry {
        let origin = self.replica.clone();
        let entry = self
            .remove_entry(&origin, counter)
            .expect("indexed entry exists");
        self.context.next_event(&origin);
        diff.leave(&origin, counter, &entry);
        entry
    }

    /// Stores an entry and indexes it. The caller has checked uniqueness.
    fn insert_entry(&mut self, origin: ReplicaId, counter: u64, entry: Entry) {
        let owner = OwnerId::new(origin.clone(), entry.owner);
        self.owners
            .entry(owner)
            .or_default()
            .entry(entry.topic.clone())
            .or_default()
            .insert(entry.key.clone(), counter);
        self.topics
            .entry(entry.topic.clone())
            .or_default()
            .entry(entry.key.clone())
            .or_default()
            .insert((origin.clone(), entry.since), counter);
        self.entries
            .entry(origin)
            .or_default()
            .insert(counter, entry);
    }

    /// Removes an entry and its index rows, dropping emptied maps.
    fn remove_entry(&mut self, origin: &ReplicaId, counter: u64) -> Option<Entry> {
        let by_counter = self.entries.get_mut(origin)?;
        let entry = by_counter.remove(&counter)?;
        if by_counter.is_empty() {
            self.entries.remove(origin);
        }
        let owner = OwnerId::new(origin.clone(), entry.owner);
        if let Some(topics) = self.owners.get_mut(&owner) {
            remove_nested(topics, &entry.topic, &entry.key);
            if topics.is_empty() {
                self.owners.remove(&owner);
            }
        }
        if let Some(keys) = self.topics.get_mut(&entry.topic) {
            if let Some(slots) = keys.get_mut(&entry.key) {
                slots.remove(&(origin.clone(), entry.since));
                if slots.is_empty() {
                    keys.remove(&entry.key);
                }
            }
            if keys.is_empty() {
                self.topics.remove(&entry.topic);
            }
        }
        Some(entry)
    }
}

/// Removes `outer[a][b]`, dropping `outer[a]` when it becomes empty.
fn remove_nested<V>(outer: &mut BTreeMap<String, BTreeMap<String, V>>, a: &str, b: &str) {
    if let Some(inner) = outer.get_mut(a) {
        inner.remove(b);
        if inner.is_empty() {
            outer.remove(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(super) fn meta(v: serde_json::Value) -> Meta {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn track_list_and_get() {
        let mut t = Tracker::new(ReplicaId::new("a", 1));
        let (o1, o2) = (t.owner(1), t.owner(2));
        let d = t
            .track(
                o1.clone(),
                "room",
                "alice",
                meta(json!({"s": "on"})),
                "R1".into(),
            )
            .unwrap();
        assert_eq!(d.topic, "room");
        assert_eq!(
            d.to_json(),
            json!({"joins": {"alice": {"metas": [{"s": "on", "phx_ref": "R1"}]}}, "leaves": {}})
        );
        t.track(
            o2.clone(),
            "room",
            "alice",
            meta(json!({"s": "away"})),
            "R2".into(),
        )
        .unwrap();
        t.track(o2.clone(), "other", "bob", Meta::new(), "R3".into())
            .unwrap();
        assert_eq!(
            t.list("room").to_json(),
            json!({"alice": {"metas": [{"s": "on", "phx_ref": "R1"}, {"s": "away", "phx_ref": "R2"}]}})
        );
        assert_eq!(t.list("nothing").to_json(), json!({}));
        assert_eq!(
            t.get(o2.clone(), "other", "bob"),
            Some(&meta(json!({"phx_ref": "R3"})))
        );
        assert_eq!(t.get(o1.clone(), "other", "bob"), None);
        assert_eq!(t.topics_of(o2), vec!["other".to_owned(), "room".to_owned()]);
        assert_eq!(
            t.track(o1, "room", "alice", Meta::new(), "R4".into()),
            Err(TrackError::AlreadyTracked)
        );
    }

    #[test]
    fn presences_name_the_replica_of_each_meta() {
        let mut a = Tracker::new(ReplicaId::new("a", 1));
        let mut b = Tracker::new(ReplicaId::new("b", 1));
        a.track(
            a.owner(1),
            "room",
            "alice",
            meta(json!({"n": 1})),
            "A".into(),
        )
        .unwrap();
        b.track(
            b.owner(1),
            "room",
            "alice",
            meta(json!({"n": 2})),
            "B".into(),
        )
        .unwrap();
        b.track(b.owner(2), "room", "bob", Meta::new(), "C".into())
            .unwrap();
        a.merge(b.full_state());
        let seen: Vec<(&str, &str, Option<&serde_json::Value>)> = a
            .presences("room")
            .into_iter()
            .map(|(key, replica, meta)| (key, replica.node.as_str(), meta.get("phx_ref")))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("alice", "a", Some(&json!("A"))),
                ("alice", "b", Some(&json!("B"))),
                ("bob", "b", Some(&json!("C"))),
            ]
        );
        assert!(a.presences("elsewhere").is_empty());
    }

    #[test]
    fn update_keeps_place_and_links_refs() {
        let mut t = Tracker::new(ReplicaId::new("a", 1));
        let (o1, o2) = (t.owner(1), t.owner(2));
        t.track(o1.clone(), "room", "k", meta(json!({"n": 1})), "A".into())
            .unwrap();
        t.track(o2, "room", "k", meta(json!({"n": 2})), "B".into())
            .unwrap();
        let d = t
            .update(o1.clone(), "room", "k", meta(json!({"n": 3})), "C".into())
            .unwrap();
        assert_eq!(
            d.to_json(),
            json!({
                "joins": {"k": {"metas": [{"n": 3, "phx_ref": "C", "phx_ref_prev": "A"}]}},
                "leaves": {"k": {"metas": [{"n": 1, "phx_ref": "A"}]}}
            })
        );
        let refs: Vec<_> = t.list("room").0["k"]
            .iter()
            .map(|m| m[PHX_REF].clone())
            .collect();
        assert_eq!(refs, vec![json!("C"), json!("B")]);
        assert_eq!(
            t.update(o1, "room", "nokey", Meta::new(), "D".into()),
            Err(TrackError::NoPresence)
        );
    }

    #[test]
    fn untrack_and_untrack_owner() {
        let mut t = Tracker::new(ReplicaId::new("a", 1));
        let (o1, o2) = (t.owner(1), t.owner(2));
        for (topic, key, r) in [("t1", "x", "1"), ("t1", "y", "2"), ("t2", "x", "3")] {
            t.track(o1.clone(), topic, key, Meta::new(), r.into())
                .unwrap();
        }
        t.track(o2.clone(), "t1", "x", Meta::new(), "4".into())
            .unwrap();
        assert!(t.untrack(o2.clone(), "t1", "nope").is_empty());
        let d = t.untrack(o2.clone(), "t1", "x");
        assert_eq!(
            d.leaves.to_json(),
            json!({"x": {"metas": [{"phx_ref": "4"}]}})
        );
        assert!(t.topics_of(o2).is_empty());
        let diffs = t.untrack_owner(o1.clone());
        let shown: Vec<_> = diffs
            .iter()
            .map(|d| (d.topic.clone(), d.leaves.to_json()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "t1".to_owned(),
                    json!({"x": {"metas": [{"phx_ref": "1"}]}, "y": {"metas": [{"phx_ref": "2"}]}})
                ),
                ("t2".to_owned(), json!({"x": {"metas": [{"phx_ref": "3"}]}})),
            ]
        );
        assert!(diffs.iter().all(|d| d.joins.is_empty()));
        assert!(t.untrack_owner(o1).is_empty());
        assert!(t.list("t1").is_empty() && t.topics.is_empty() && t.owners.is_empty());
        assert!(t.entries.is_empty());
    }

    #[test]
    #[should_panic(expected = "not local")]
    fn foreign_owner_is_a_bug() {
        let mut t = Tracker::new(ReplicaId::new("a", 1));
        let foreign = OwnerId::new(ReplicaId::new("b", 1), 1);
        let _ = t.track(foreign, "t", "k", Meta::new(), "r".into());
    }

    #[test]
    fn ids_display_and_errors_describe_themselves() {
        assert_eq!(ReplicaId::new("n1", 7).to_string(), "n1#7");
        assert!(TrackError::NoPresence.to_string().contains("no presence"));
    }
}
