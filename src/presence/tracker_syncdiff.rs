//! Test-only model of what phoenix.js `Presence.syncDiff` does to a client's
//! presence state, used to check the diffs the tracker and [`DiffBatch`]
//! produce.
//!
//! [`DiffBatch`]: super::DiffBatch

use std::collections::BTreeMap;

use super::{Diff, Meta, PresenceList, PHX_REF};

/// A client's presence state: key -> metas, in the client's order.
pub(crate) type ClientState = BTreeMap<String, Vec<Meta>>;

fn phx_ref(meta: &Meta) -> Option<&serde_json::Value> {
    meta.get(PHX_REF)
}

/// Applies one diff the way phoenix.js does: every join first (the joined
/// metas go last, after the key's other metas minus those with a joined
/// ref), then every leave (drop metas by ref; drop the key when emptied).
pub(crate) fn sync_diff(state: &mut ClientState, diff: &Diff) {
    for (key, joined) in &diff.joins.0 {
        let mut metas: Vec<Meta> = state
            .remove(key)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| !joined.iter().any(|j| phx_ref(j) == phx_ref(m)))
            .collect();
        metas.extend(joined.iter().cloned());
        state.insert(key.clone(), metas);
    }
    for (key, left) in &diff.leaves.0 {
        let Some(metas) = state.get_mut(key) else {
            continue;
        };
        metas.retain(|m| !left.iter().any(|l| phx_ref(l) == phx_ref(m)));
        if metas.is_empty() {
            state.remove(key);
        }
    }
}

/// The client state a full `presence_state` of `list` produces on an empty
/// client (the same metas in the same order).
pub(crate) fn from_list(list: &PresenceList) -> ClientState {
    list.0.clone()
}

/// `state` with each key's metas sorted by ref: client order follows
/// arrival, the server lists in tracking order, so compare as sets.
pub(crate) fn as_sets(state: &ClientState) -> ClientState {
    state
        .iter()
        .map(|(k, metas)| {
            let mut metas = metas.clone();
            metas.sort_by_key(|m| phx_ref(m).map(ToString::to_string));
            (k.clone(), metas)
        })
        .collect()
}
