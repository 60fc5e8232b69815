//! Presence lists and diffs as clients see them, and [`DiffBatch`], which
//! folds the diffs of one batching window into one `presence_diff`.
//!
//! # How a batch combines diffs
//!
//! phoenix.js applies a diff by first applying every join (a joined meta
//! replaces any meta with the same `phx_ref` under that key and goes to the
//! end of the key's list) and then every leave (metas whose `phx_ref` is
//! listed are removed; an emptied key is deleted). A batch therefore tracks
//! each `(key, phx_ref)` it sees through the window:
//!
//! * present at the end of the window: one join with the last joined meta.
//!   Joins are ordered by when they happened, so the client ends with the
//!   same order as if it had applied every diff in turn. A leave followed by
//!   a join of the same ref needs no leave: the join alone replaces it.
//! * absent at the end: one leave with the first left meta, whether the
//!   client had it before the window or it joined inside the window. A join
//!   and leave inside one window are **not** cancelled: a client may have
//!   received a `presence_state` taken mid-window that already lists the
//!   entry, and only the leave removes it. Clients that never saw the ref
//!   ignore the leave (phoenix.js drops leaves for unknown refs).
//!
//! The tests check this against a model of phoenix.js `syncDiff`
//! (`tracker_syncdiff.rs`): applying the batched diff gives exactly the state
//! (order included) that applying the window's diffs one by one gives.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

use super::{Entry, Meta, Order, ReplicaId, PHX_REF};

/// Presences by key, each with its metas: what `Phoenix.Presence.list`
/// returns and what `presence_state` and the halves of `presence_diff` carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceList(pub BTreeMap<String, Vec<Meta>>);

impl PresenceList {
    /// The wire shape: `{"key": {"metas": [meta, ...]}, ...}`.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(key, metas)| (key.clone(), json!({ "metas": metas })))
                .collect(),
        )
    }

    /// Whether no key is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The metas listed under `key`.
    pub fn get(&self, key: &str) -> Option<&[Meta]> {
        self.0.get(key).map(Vec::as_slice)
    }
}

/// Serializes to the same shape as [`PresenceList::to_json`].
impl Serialize for PresenceList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Metas<'a>(&'a [Meta]);
        impl Serialize for Metas<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("metas", self.0)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, metas) in &self.0 {
            map.serialize_entry(key, &Metas(metas))?;
        }
        map.end()
    }
}

/// What changed on one topic: the payload of one `presence_diff`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// The topic the change happened on.
    pub topic: String,
    /// Metas that appeared.
    pub joins: PresenceList,
    /// Metas that went away.
    pub leaves: PresenceList,
}

impl Diff {
    /// A diff on `topic` with no joins and no leaves.
    pub fn empty(topic: impl Into<String>) -> Diff {
        Diff {
            topic: topic.into(),
            ..Diff::default()
        }
    }

    /// Whether there is nothing to broadcast.
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.leaves.is_empty()
    }

    /// The `presence_diff` payload: `{"joins": {...}, "leaves": {...}}`.
    pub fn to_json(&self) -> Value {
        json!({ "joins": self.joins.to_json(), "leaves": self.leaves.to_json() })
    }
}

/// One side (joins or leaves) of a diff under construction.
type Side = BTreeMap<String, BTreeMap<Order, Meta>>;

/// Collects joins and leaves per topic while the tracker changes.
#[derive(Default)]
pub(super) struct DiffBuilder {
    topics: BTreeMap<String, (Side, Side)>,
}

impl DiffBuilder {
    /// Records that `entry` (event `counter` of `origin`) appeared.
    pub(super) fn join(&mut self, origin: &ReplicaId, counter: u64, entry: &Entry) {
        let (joins, _) = self.topics.entry(entry.topic.clone()).or_default();
        record(joins, origin, counter, entry);
    }

    /// Records that `entry` (event `counter` of `origin`) went away.
    pub(super) fn leave(&mut self, origin: &ReplicaId, counter: u64, entry: &Entry) {
        let (_, leaves) = self.topics.entry(entry.topic.clone()).or_default();
        record(leaves, origin, counter, entry);
    }

    /// The diff for `topic` (empty if nothing happened there).
    pub(super) fn into_single(mut self, topic: &str) -> Diff {
        match self.topics.remove(topic) {
            Some(sides) => finish(topic.to_owned(), sides),
            None => Diff::empty(topic),
        }
    }

    /// One non-empty diff per topic, in topic order.
    pub(super) fn into_diffs(self) -> Vec<Diff> {
        self.topics
            .into_iter()
            .map(|(topic, sides)| finish(topic, sides))
            .collect()
    }
}

fn record(side: &mut Side, origin: &ReplicaId, counter: u64, entry: &Entry) {
    side.entry(entry.key.clone())
        .or_default()
        .insert((origin.clone(), entry.since, counter), entry.meta.clone());
}

fn finish(topic: String, (joins, leaves): (Side, Side)) -> Diff {
    let list = |side: Side| {
        PresenceList(
            side.into_iter()
                .map(|(key, metas)| (key, metas.into_values().collect()))
                .collect(),
        )
    };
    Diff {
        topic,
        joins: list(joins),
        leaves: list(leaves),
    }
}

/// What a batch knows about one `(key, phx_ref)` during a window.
#[derive(Debug)]
struct RefFate {
    /// Last join in the window: its position in the window and its meta.
    last_join: Option<(u64, Meta)>,
    /// First leave in the window: its position and the meta that left.
    first_leave: Option<(u64, Meta)>,
    /// Whether the ref is present after the events seen so far.
    present_now: bool,
}

/// Folds the diffs of one topic over a batching window into one diff with
/// the same effect on a phoenix.js client (see the module docs for how).
#[derive(Debug)]
pub struct DiffBatch {
    topic: String,
    /// Position of the next meta in the window.
    seq: u64,
    fates: BTreeMap<(String, String), RefFate>,
}

impl DiffBatch {
    /// An empty batch for `topic`.
    pub fn new(topic: impl Into<String>) -> DiffBatch {
        DiffBatch {
            topic: topic.into(),
            seq: 0,
            fates: BTreeMap::new(),
        }
    }

    /// The batch's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether nothing was pushed since the batch was created or last taken.
    pub fn is_empty(&self) -> bool {
        self.fates.is_empty()
    }

    /// Adds the next diff of the window. Its joins count as happening before
    /// its leaves, as phoenix.js applies them. `diff.topic` must be this
    /// batch's topic (checked in debug builds; ignored otherwise).
    pub fn push(&mut self, diff: Diff) {
        debug_assert_eq!(
            diff.topic, self.topic,
            "diff pushed to another topic's batch"
        );
        for (key, metas) in diff.joins.0 {
            for meta in metas {
                let seq = self.next_seq();
                let fate = self.fate(&key, &meta);
                fate.last_join = Some((seq, meta));
                fate.present_now = true;
            }
        }
        for (key, metas) in diff.leaves.0 {
            for meta in metas {
                let seq = self.next_seq();
                let fate = self.fate(&key, &meta);
                if fate.first_leave.is_none() {
                    fate.first_leave = Some((seq, meta));
                }
                fate.present_now = false;
            }
        }
    }

    /// The combined diff of the window so far; the batch starts a new window.
    /// The result may be empty when everything cancelled out.
    pub fn take(&mut self) -> Diff {
        let mut joins: BTreeMap<String, Vec<(u64, Meta)>> = BTreeMap::new();
        let mut leaves: BTreeMap<String, Vec<(u64, Meta)>> = BTreeMap::new();
        for ((key, _), fate) in std::mem::take(&mut self.fates) {
            if fate.present_now {
                if let Some(join) = fate.last_join {
                    joins.entry(key).or_default().push(join);
                }
            } else if let Some(leave) = fate.first_leave {
                leaves.entry(key).or_default().push(leave);
            }
        }
        self.seq = 0;
        let ordered = |side: BTreeMap<String, Vec<(u64, Meta)>>| {
            PresenceList(
                side.into_iter()
                    .map(|(key, mut metas)| {
                        metas.sort_by_key(|(seq, _)| *seq);
                        (key, metas.into_iter().map(|(_, m)| m).collect())
                    })
                    .collect(),
            )
        };
        Diff {
            topic: self.topic.clone(),
            joins: ordered(joins),
            leaves: ordered(leaves),
        }
    }

    /// The combined diff of the window, consuming the batch.
    pub fn finish(mut self) -> Diff {
        self.take()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn fate(&mut self, key: &str, meta: &Meta) -> &mut RefFate {
        self.fates
            .entry((key.to_owned(), ref_of(meta)))
            .or_insert(RefFate {
                last_join: None,
                first_leave: None,
                present_now: false,
            })
    }
}

/// The identity phoenix.js uses for a meta: its `phx_ref` (a meta without
/// one is identified by its whole JSON text).
fn ref_of(meta: &Meta) -> String {
    match meta.get(PHX_REF) {
        Some(Value::String(r)) => r.clone(),
        _ => Value::Object(meta.clone()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tracker_syncdiff::{sync_diff, ClientState};
    use super::*;

    fn m(r: &str, v: u64) -> Meta {
        json!({"phx_ref": r, "v": v}).as_object().cloned().unwrap()
    }

    fn diff(joins: &[(&str, Meta)], leaves: &[(&str, Meta)]) -> Diff {
        let side = |items: &[(&str, Meta)]| {
            let mut list: BTreeMap<String, Vec<Meta>> = BTreeMap::new();
            for (k, meta) in items {
                list.entry((*k).to_owned()).or_default().push(meta.clone());
            }
            PresenceList(list)
        };
        Diff {
            topic: "t".into(),
            joins: side(joins),
            leaves: side(leaves),
        }
    }

    /// Applies `diffs` one by one and batched from `start`; both must agree.
    fn check(start: &ClientState, diffs: &[Diff]) -> (ClientState, Diff) {
        let mut one_by_one = start.clone();
        let mut batch = DiffBatch::new("t");
        for d in diffs {
            sync_diff(&mut one_by_one, d);
            batch.push(d.clone());
        }
        let combined = batch.take();
        assert!(batch.is_empty());
        let mut batched = start.clone();
        sync_diff(&mut batched, &combined);
        assert_eq!(batched, one_by_one, "combined diff: {combined:?}");
        (batched, combined)
    }

    fn state(items: &[(&str, Vec<Meta>)]) -> ClientState {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn join_then_leave_in_one_window_is_sent_as_the_leave() {
        let start = state(&[("k", vec![m("a", 0)])]);
        let (end, combined) = check(
            &start,
            &[
                diff(&[("k", m("b", 1))], &[]),
                diff(&[], &[("k", m("b", 1))]),
            ],
        );
        assert_eq!(
            combined.to_json(),
            json!({"joins": {}, "leaves": {"k": {"metas": [m("b", 1)]}}})
        );
        assert_eq!(end, start);
    }

    #[test]
    fn a_client_whose_state_was_taken_mid_window_drops_the_ghost() {
        // The client's presence_state already lists "b", which joined and
        // left inside the window; the batched diff must remove it.
        let mid_window = state(&[("k", vec![m("a", 0), m("b", 1)])]);
        let diffs = [
            diff(&[("k", m("b", 1))], &[]),
            diff(&[], &[("k", m("b", 1))]),
        ];
        let mut batch = DiffBatch::new("t");
        for d in diffs {
            batch.push(d);
        }
        let mut client = mid_window;
        sync_diff(&mut client, &batch.finish());
        assert_eq!(client, state(&[("k", vec![m("a", 0)])]));
    }

    #[test]
    fn leave_then_join_of_the_same_ref_is_a_join() {
        let start = state(&[("k", vec![m("a", 0), m("b", 0)])]);
        let (end, combined) = check(
            &start,
            &[
                diff(&[], &[("k", m("a", 0))]),
                diff(&[("k", m("a", 5))], &[]),
            ],
        );
        assert_eq!(
            combined.to_json(),
            json!({"joins": {"k": {"metas": [m("a", 5)]}}, "leaves": {}})
        );
        assert_eq!(end, state(&[("k", vec![m("b", 0), m("a", 5)])]));
    }

    #[test]
    fn update_chain_becomes_one_update() {
        let start = state(&[("k", vec![m("r1", 1)])]);
        let diffs = [
            diff(&[("k", m("r2", 2))], &[("k", m("r1", 1))]),
            diff(&[("k", m("r3", 3))], &[("k", m("r2", 2))]),
        ];
        let (end, combined) = check(&start, &diffs);
        assert_eq!(
            combined.to_json(),
            json!({"joins": {"k": {"metas": [m("r3", 3)]}}, "leaves": {"k": {"metas": [m("r1", 1), m("r2", 2)]}}})
        );
        assert_eq!(end, state(&[("k", vec![m("r3", 3)])]));
    }

    #[test]
    fn key_emptied_and_refilled_keeps_join_order() {
        let start = state(&[("k", vec![m("a", 0)]), ("z", vec![m("z", 0)])]);
        let diffs = [
            diff(&[("k", m("b", 1))], &[]),
            diff(&[], &[("k", m("a", 0)), ("k", m("b", 1)), ("z", m("z", 0))]),
            diff(&[("k", m("c", 2)), ("k", m("d", 3))], &[]),
            diff(&[("k", m("e", 4))], &[("k", m("c", 2))]),
            diff(&[("k", m("c", 5))], &[]),
        ];
        let (end, _) = check(&start, &diffs);
        assert_eq!(end, state(&[("k", vec![m("d", 3), m("e", 4), m("c", 5)])]));
    }

    #[test]
    fn lists_and_diffs_serialize_like_phoenix() {
        let list = PresenceList(BTreeMap::from([("u".to_owned(), vec![m("a", 1)])]));
        let expected = json!({"u": {"metas": [{"phx_ref": "a", "v": 1}]}});
        assert_eq!(list.to_json(), expected);
        assert_eq!(serde_json::to_value(&list).unwrap(), expected);
        assert_eq!(list.get("u").map(<[Meta]>::len), Some(1));
        let empty = Diff::empty("t");
        assert!(empty.is_empty());
        assert_eq!(empty.to_json(), json!({"joins": {}, "leaves": {}}));
    }

    #[test]
    fn metas_without_ref_are_kept_apart() {
        let plain = json!({"x": 1}).as_object().cloned().unwrap();
        let mut batch = DiffBatch::new("t");
        assert_eq!(batch.topic(), "t");
        batch.push(diff(&[("k", plain.clone())], &[]));
        assert_eq!(batch.finish().joins.get("k"), Some(&[plain][..]));
    }
}
