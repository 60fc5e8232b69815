//! A client-side presence list kept exactly like phoenix.js's `Presence`:
//! `presence_state` goes through `syncState`, `presence_diff` through
//! `syncDiff` (joins first, then leaves, metas keyed by `phx_ref`), and
//! diffs that arrive before the first state wait until it comes.
//!
//! Only the `phx_ref` of each meta is kept: that is all the sync algorithm
//! looks at, and the benchmark only counts keys. Keys and refs are kept as
//! 64-bit hashes of their text ([`Id`]): identity is all the algorithm
//! needs, and it spares a load generator millions of small allocations
//! (a collision among a few million values is vanishingly unlikely).

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
#[cfg(test)]
use serde_json::Value;

/// A key or a `phx_ref`, by the hash of its text.
pub(crate) type Id = u64;

/// The [`Id`] of a key or ref.
pub(crate) fn id(text: &str) -> Id {
    use std::hash::{Hash, Hasher};
    let mut hasher = rustc_hash::FxHasher::default();
    text.hash(&mut hasher);
    hasher.finish()
}

/// The `phx_ref`s of one key, oldest first (usually one: kept inline).
pub(crate) type Refs = smallvec::SmallVec<[Id; 2]>;

/// One key's presences as `(key, phx_refs)` pairs, in payload order.
pub(crate) type Presences = Vec<(Id, Refs)>;

/// The presence list of one client.
#[derive(Debug, Default)]
pub(crate) struct PresenceList {
    state: HashMap<Id, Refs>,
    pending: Vec<(Presences, Presences)>,
    synced: bool,
}

impl PresenceList {
    /// An empty list that has not seen a `presence_state` yet.
    pub(crate) fn new() -> PresenceList {
        PresenceList::default()
    }

    /// Number of keys (users) present.
    pub(crate) fn len(&self) -> usize {
        self.state.len()
    }

    /// Every `phx_ref` listed now but `key`'s (to tell later which metas
    /// are old).
    pub(crate) fn refs_except(&self, key: &str) -> rustc_hash::FxHashSet<Id> {
        let skip = id(key);
        self.state
            .iter()
            .filter(|(k, _)| **k != skip)
            .flat_map(|(_, refs)| refs.iter().copied())
            .collect()
    }

    /// Keys listed with more than one meta.
    pub(crate) fn multi_meta_keys(&self) -> usize {
        self.state.values().filter(|refs| refs.len() > 1).count()
    }

    /// Keys listed with at least one of the metas in `refs`.
    pub(crate) fn keys_with_any_of(&self, refs: &rustc_hash::FxHashSet<Id>) -> usize {
        self.state
            .values()
            .filter(|mine| mine.iter().any(|r| refs.contains(r)))
            .count()
    }

    /// The `phx_ref`s listed for `key`, oldest first.
    #[cfg(test)]
    pub(crate) fn refs(&self, key: &str) -> Option<&[Id]> {
        self.state.get(&id(key)).map(|refs| refs.as_slice())
    }

    /// Apply a `presence_state` payload (phoenix.js `syncState`), then any
    /// diffs that arrived before it.
    #[cfg(test)]
    pub(crate) fn apply_state(&mut self, new_state: &Value) {
        self.apply_state_list(presences(Some(new_state)));
    }

    /// Apply a parsed `presence_state` (phoenix.js `syncState`), then any
    /// diffs that arrived before it.
    pub(crate) fn apply_state_list(&mut self, new_state: Presences) {
        if self.state.is_empty() {
            // syncState into an empty list joins every entry as is: the
            // result is exactly the new state, so take it without copying.
            self.state.reserve(new_state.len());
            for (key, refs) in new_state {
                self.state.insert(key, refs);
            }
            self.synced = true;
            for (joins, leaves) in std::mem::take(&mut self.pending) {
                self.sync_diff(joins, leaves);
            }
            return;
        }
        let mut joins = Presences::new();
        let mut leaves = Presences::new();
        let mut listed: HashMap<Id, &[Id]> =
            HashMap::with_capacity_and_hasher(new_state.len(), Default::default());
        for (key, refs) in &new_state {
            listed.insert(*key, refs);
        }
        for (key, refs) in &self.state {
            if !listed.contains_key(key) {
                leaves.push((*key, refs.clone()));
            }
        }
        for (key, new_refs) in &new_state {
            match self.state.get(key) {
                Some(current) => {
                    let joined: Refs = new_refs
                        .iter()
                        .filter(|r| !current.contains(r))
                        .cloned()
                        .collect();
                    let left: Refs = current
                        .iter()
                        .filter(|r| !new_refs.contains(r))
                        .cloned()
                        .collect();
                    if !joined.is_empty() {
                        joins.push((*key, joined));
                    }
                    if !left.is_empty() {
                        leaves.push((*key, left));
                    }
                }
                None => joins.push((*key, new_refs.clone())),
            }
        }
        self.sync_diff(joins, leaves);
        self.synced = true;
        for (joins, leaves) in std::mem::take(&mut self.pending) {
            self.sync_diff(joins, leaves);
        }
    }

    /// Apply a `presence_diff` payload (phoenix.js `syncDiff`), or keep it
    /// for later when no state has arrived yet.
    #[cfg(test)]
    pub(crate) fn apply_diff(&mut self, diff: &Value) {
        self.apply_diff_lists(presences(diff.get("joins")), presences(diff.get("leaves")));
    }

    /// Apply a parsed `presence_diff` (phoenix.js `syncDiff`), or keep it
    /// for later when no state has arrived yet.
    pub(crate) fn apply_diff_lists(&mut self, joins: Presences, leaves: Presences) {
        if self.synced {
            self.sync_diff(joins, leaves);
        } else {
            self.pending.push((joins, leaves));
        }
    }

    fn sync_diff(&mut self, joins: Presences, leaves: Presences) {
        for (key, new_refs) in joins {
            let merged = match self.state.remove(&key) {
                // Current metas not re-joined come first (`unshift`).
                Some(current) => {
                    let mut merged: Refs = current
                        .into_iter()
                        .filter(|r| !new_refs.contains(r))
                        .collect();
                    merged.extend(new_refs);
                    merged
                }
                None => new_refs,
            };
            self.state.insert(key, merged);
        }
        for (key, left_refs) in leaves {
            let Some(current) = self.state.get_mut(&key) else {
                continue;
            };
            current.retain(|r| !left_refs.contains(r));
            if current.is_empty() {
                self.state.remove(&key);
            }
        }
    }
}

/// One meta as the sync algorithm sees it: only its `phx_ref`.
#[derive(Deserialize)]
struct WireMeta<'a> {
    #[serde(borrow, default)]
    phx_ref: Option<Cow<'a, str>>,
}

/// The metas array of one key, read straight into ref ids.
#[derive(Default)]
struct WireRefs(Refs);

impl<'de> Deserialize<'de> for WireRefs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Metas;
        impl<'de> serde::de::Visitor<'de> for Metas {
            type Value = WireRefs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a metas array")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Self::Value, S::Error> {
                let mut refs = Refs::new();
                while let Some(meta) = seq.next_element::<WireMeta<'de>>()? {
                    refs.push(id(meta.phx_ref.as_deref().unwrap_or_default()));
                }
                Ok(WireRefs(refs))
            }
        }
        deserializer.deserialize_seq(Metas)
    }
}

/// `{"metas": [...]}` of one key (other fields ignored).
#[derive(Deserialize)]
struct WireMetas {
    #[serde(default)]
    metas: WireRefs,
}

/// `{key: {"metas": [...]}, ..}`, collected in payload order without
/// hashing.
#[derive(Default)]
struct WireList<'a>(Vec<(Cow<'a, str>, WireMetas)>);

impl<'de: 'a, 'a> Deserialize<'de> for WireList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Pairs<'a> {
            type Value = WireList<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a presence map")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, metas)) = map.next_entry::<Cow<'a, str>, WireMetas>()? {
                    pairs.push((key, metas));
                }
                Ok(WireList(pairs))
            }
        }
        deserializer.deserialize_map(Pairs(std::marker::PhantomData))
    }
}

/// `{"joins": .., "leaves": ..}`.
#[derive(Deserialize)]
struct WireDiff<'a> {
    #[serde(borrow, default)]
    joins: WireList<'a>,
    #[serde(borrow, default)]
    leaves: WireList<'a>,
}

fn owned(list: WireList<'_>) -> Presences {
    list.0
        .into_iter()
        .map(|(key, metas)| (id(&key), metas.metas.0))
        .collect()
}

/// A presence frame read from a V2 text frame.
pub(crate) enum PresenceFrame {
    /// A `presence_state` push.
    State(Presences),
    /// A `presence_diff` broadcast: joins and leaves.
    Diff(Presences, Presences),
}

/// Parse a V2 text frame carrying `presence_state` or `presence_diff`,
/// keeping only keys and `phx_ref`s (borrowed parsing: no JSON tree is
/// built). `None` for other frames or undecodable ones.
pub(crate) fn parse_frame(text: &str, is_state: bool) -> Option<PresenceFrame> {
    // The scanner reads the usual shape quickly; serde reads the rest.
    if is_state {
        if let Some(read) = crate::presence_scan::state(text) {
            return read.map(PresenceFrame::State);
        }
    } else if let Some(read) = crate::presence_scan::diff(text) {
        return read.map(|(joins, leaves)| PresenceFrame::Diff(joins, leaves));
    }
    parse_frame_with_serde(text, is_state)
}

/// [`parse_frame`] with serde (borrowed: no JSON tree is built).
pub(crate) fn parse_frame_with_serde(text: &str, is_state: bool) -> Option<PresenceFrame> {
    if is_state {
        let (_, _, _, event, list): (
            IgnoredAny,
            IgnoredAny,
            IgnoredAny,
            Cow<'_, str>,
            WireList<'_>,
        ) = serde_json::from_str(text).ok()?;
        (event == "presence_state").then(|| PresenceFrame::State(owned(list)))
    } else {
        let (_, _, _, event, diff): (
            IgnoredAny,
            IgnoredAny,
            IgnoredAny,
            Cow<'_, str>,
            WireDiff<'_>,
        ) = serde_json::from_str(text).ok()?;
        (event == "presence_diff")
            .then(|| PresenceFrame::Diff(owned(diff.joins), owned(diff.leaves)))
    }
}

/// `{key: {"metas": [{"phx_ref": ..}, ..]}, ..}` as (key, refs) pairs.
#[cfg(test)]
fn presences(value: Option<&Value>) -> Presences {
    let Some(Value::Object(map)) = value else {
        return Presences::new();
    };
    map.iter()
        .map(|(key, presence)| {
            let refs = presence
                .get("metas")
                .and_then(Value::as_array)
                .map(|metas| {
                    metas
                        .iter()
                        .map(|m| match m.get("phx_ref") {
                            Some(Value::String(r)) => id(r),
                            Some(other) => id(&other.to_string()),
                            None => id(""),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (id(key), refs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(texts: &[&str]) -> Vec<Id> {
        texts.iter().map(|t| id(t)).collect()
    }

    fn metas(refs: &[&str]) -> Value {
        json!({"metas": refs.iter().map(|r| json!({"phx_ref": r, "name": "x"})).collect::<Vec<_>>()})
    }

    #[test]
    fn counts_multi_meta_keys_and_old_metas() {
        let mut list = PresenceList::new();
        list.apply_state(&serde_json::json!({
            "a": {"metas": [{"phx_ref": "a1"}]},
            "b": {"metas": [{"phx_ref": "b1"}]},
            "me": {"metas": [{"phx_ref": "m1"}]}
        }));
        let old = list.refs_except("me");
        assert_eq!(old.len(), 2);
        assert_eq!(list.keys_with_any_of(&old), 2);
        // a moves: its new meta joins before the old one leaves.
        list.apply_diff(
            &serde_json::json!({"joins": {"a": {"metas": [{"phx_ref": "a2"}]}}, "leaves": {}}),
        );
        assert_eq!(list.multi_meta_keys(), 1);
        list.apply_diff(
            &serde_json::json!({"joins": {}, "leaves": {"a": {"metas": [{"phx_ref": "a1"}]}}}),
        );
        assert_eq!(list.multi_meta_keys(), 0);
        assert_eq!(list.keys_with_any_of(&old), 1, "b still has its old meta");
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn state_then_diffs_joins_before_leaves() {
        let mut list = PresenceList::new();
        list.apply_state(&json!({"u1": metas(&["a"]), "u2": metas(&["b"])}));
        assert_eq!(list.len(), 2);
        // u3 joins; u1 opens a second tab; u2 leaves.
        list.apply_diff(&json!({"joins": {"u3": metas(&["c"]), "u1": metas(&["d"])}, "leaves": {"u2": metas(&["b"])}}));
        assert_eq!(list.len(), 2);
        assert_eq!(list.refs("u1"), Some(&ids(&["a", "d"])[..]));
        // An update: the same diff joins the new ref and leaves the old one.
        list.apply_diff(&json!({"joins": {"u1": metas(&["e"])}, "leaves": {"u1": metas(&["a"])}}));
        assert_eq!(list.refs("u1"), Some(&ids(&["d", "e"])[..]));
        // Leaving a key that is not there is ignored.
        list.apply_diff(&json!({"joins": {}, "leaves": {"zz": metas(&["q"])}}));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn diffs_before_the_first_state_wait_for_it() {
        let mut list = PresenceList::new();
        list.apply_diff(&json!({"joins": {"u2": metas(&["b"])}, "leaves": {}}));
        list.apply_diff(&json!({"joins": {}, "leaves": {"u1": metas(&["a"])}}));
        assert_eq!(list.len(), 0);
        list.apply_state(&json!({"u1": metas(&["a"])}));
        assert_eq!(list.len(), 1);
        assert_eq!(list.refs("u2"), Some(&ids(&["b"])[..]));
        assert_eq!(list.refs("u1"), None);
    }

    #[test]
    fn a_new_state_replaces_the_old_one() {
        let mut list = PresenceList::new();
        list.apply_state(&json!({"u1": metas(&["a", "b"]), "u2": metas(&["c"])}));
        list.apply_state(&json!({"u1": metas(&["b", "x"]), "u3": metas(&["d"])}));
        assert_eq!(list.refs("u1"), Some(&ids(&["b", "x"])[..]));
        assert_eq!(list.refs("u2"), None);
        assert_eq!(list.len(), 2);
    }
}

#[cfg(test)]
mod parse_tests {
    use super::{id, parse_frame, PresenceFrame, PresenceList};

    fn ids(texts: &[&str]) -> Vec<u64> {
        texts.iter().map(|t| id(t)).collect()
    }

    #[test]
    fn borrowed_parsing_feeds_the_same_sync() {
        let state = r#"["1",null,"room:r","presence_state",{"a":{"metas":[{"online_at":1,"phx_ref":"r1"}]}}]"#;
        let diff = r#"[null,null,"room:r","presence_diff",{"joins":{"b":{"metas":[{"phx_ref":"r2"}]}},"leaves":{"a":{"metas":[{"phx_ref":"r1"}]}}}]"#;
        let mut list = PresenceList::new();
        let Some(PresenceFrame::Diff(joins, leaves)) = parse_frame(diff, false) else {
            panic!("diff")
        };
        list.apply_diff_lists(joins, leaves);
        assert_eq!(list.len(), 0, "diffs wait for the state");
        let Some(PresenceFrame::State(s)) = parse_frame(state, true) else {
            panic!("state")
        };
        list.apply_state_list(s);
        assert_eq!(list.len(), 1);
        assert_eq!(list.refs("b"), Some(&ids(&["r2"])[..]));
        assert!(parse_frame(r#"["1",null,"t","other",{}]"#, true).is_none());
    }
}
