//! Encoded presence lists, kept per topic and refreshed key by key, so that
//! pushing `presence_state` to the N-th joiner of a busy topic costs a copy
//! of the list, not a rebuild of N entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::tracker::{Diff, Meta, Tracker};

/// `{"metas": [...]}` for one key, serialized straight from the tracker.
#[derive(Serialize)]
struct Metas<'a> {
    metas: Vec<&'a Meta>,
}

/// The cached list of one topic.
#[derive(Default)]
struct TopicList {
    /// key -> `"key":{"metas":[...]}`.
    fragments: BTreeMap<String, String>,
    /// The whole list, once assembled; dropped on any change.
    encoded: Option<Arc<str>>,
}

/// Encoded lists for the topics someone asked to list.
#[derive(Default)]
pub(super) struct ListCache {
    topics: HashMap<String, TopicList>,
}

fn fragment(tracker: &Tracker, topic: &str, key: &str) -> Option<String> {
    let metas = tracker.metas(topic, key);
    if metas.is_empty() {
        return None;
    }
    let key = serde_json::to_string(key).ok()?;
    let metas = serde_json::to_string(&Metas { metas }).ok()?;
    Some(format!("{key}:{metas}"))
}

impl ListCache {
    /// The encoded list of `topic`: `{"key":{"metas":[...]}, ...}`.
    pub(super) fn list(&mut self, tracker: &Tracker, topic: &str) -> Arc<str> {
        let list = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| TopicList {
                fragments: tracker
                    .keys(topic)
                    .into_iter()
                    .filter_map(|key| Some((key.to_owned(), fragment(tracker, topic, key)?)))
                    .collect(),
                encoded: None,
            });
        let encoded = list.encoded.get_or_insert_with(|| {
            let mut text = String::with_capacity(
                2 + list.fragments.values().map(|f| f.len() + 1).sum::<usize>(),
            );
            text.push('{');
            for (i, fragment) in list.fragments.values().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(fragment);
            }
            text.push('}');
            Arc::from(text)
        });
        let encoded = encoded.clone();
        if list.fragments.is_empty() {
            self.topics.remove(topic);
        }
        encoded
    }

    /// Refresh the keys `diff` touched (call with the tracker already
    /// changed, under the same lock).
    pub(super) fn changed(&mut self, tracker: &Tracker, diff: &Diff) {
        let Some(list) = self.topics.get_mut(&diff.topic) else {
            return;
        };
        list.encoded = None;
        for key in diff.joins.0.keys().chain(diff.leaves.0.keys()) {
            match fragment(tracker, &diff.topic, key) {
                Some(fragment) => list.fragments.insert(key.clone(), fragment),
                None => list.fragments.remove(key),
            };
        }
        if list.fragments.is_empty() {
            self.topics.remove(&diff.topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ListCache;
    use crate::presence::tracker::{Meta, OwnerId, ReplicaId, Tracker};
    use serde_json::{json, Value};

    fn meta(v: i64) -> Meta {
        match json!({ "v": v }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    type Step<'a> = Box<
        dyn Fn(&mut Tracker, &mut dyn FnMut() -> String) -> Vec<crate::presence::tracker::Diff>
            + 'a,
    >;

    fn check(cache: &mut ListCache, tracker: &Tracker, topic: &str) {
        let cached: Value = serde_json::from_str(&cache.list(tracker, topic)).expect("valid json");
        assert_eq!(cached, tracker.list(topic).to_json());
    }

    #[test]
    fn cached_lists_follow_every_change() {
        let replica = ReplicaId::new("n", 1);
        let mut tracker = Tracker::new(replica.clone());
        let mut cache = ListCache::default();
        let owner = |id| OwnerId::new(replica.clone(), id);
        check(&mut cache, &tracker, "t");
        let mut n = 0;
        let mut next_ref = || {
            n += 1;
            format!("ref{n}")
        };
        let steps: Vec<Step<'_>> = vec![
            Box::new(|t, r| {
                vec![t
                    .track(owner(1), "t", "alice", meta(1), r())
                    .expect("track")]
            }),
            Box::new(|t, r| {
                vec![t
                    .track(owner(2), "t", "alice", meta(2), r())
                    .expect("track")]
            }),
            Box::new(|t, r| {
                vec![t
                    .track(owner(3), "t", "bob \"b\"", meta(3), r())
                    .expect("track")]
            }),
            Box::new(|t, r| vec![t.track(owner(3), "u", "bob", meta(3), r()).expect("track")]),
            Box::new(|t, r| {
                vec![t
                    .update(owner(1), "t", "alice", meta(9), r())
                    .expect("update")]
            }),
            Box::new(|t, _| vec![t.untrack(owner(2), "t", "alice")]),
            Box::new(|t, _| t.untrack_owner(owner(3))),
            Box::new(|t, _| vec![t.untrack(owner(1), "t", "alice")]),
        ];
        for step in steps {
            let diffs = step(&mut tracker, &mut next_ref);
            for diff in &diffs {
                cache.changed(&tracker, diff);
            }
            check(&mut cache, &tracker, "t");
            check(&mut cache, &tracker, "u");
        }
        assert_eq!(&*cache.list(&tracker, "t"), "{}");
    }
}
