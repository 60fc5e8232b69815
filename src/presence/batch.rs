//! Per-topic diff batching: within a window, changes to one topic are
//! merged into one `presence_diff`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fawkes_protocol::Payload;

use super::tracker::{Diff, DiffBatch};
use super::DIFF_EVENT;
use crate::pubsub::PubSub;

/// Pending diffs per topic, flushed `window` after the first one.
pub(super) struct Batches {
    window: Duration,
    pubsub: PubSub,
    pending: Arc<Mutex<HashMap<String, DiffBatch>>>,
}

impl Batches {
    pub(super) fn new(pubsub: PubSub, window: Duration) -> Self {
        Self {
            window,
            pubsub,
            pending: Arc::default(),
        }
    }

    /// Send `diff` now (no window) or add it to its topic's batch.
    pub(super) fn publish(&self, pubsub: &PubSub, diff: Diff) {
        if self.window.is_zero() {
            return broadcast(pubsub, diff);
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let topic = diff.topic.clone();
        match pending.get_mut(&topic) {
            Some(batch) => batch.push(diff),
            None => {
                let mut batch = DiffBatch::new(&topic);
                batch.push(diff);
                pending.insert(topic.clone(), batch);
                let pending = self.pending.clone();
                let pubsub = self.pubsub.clone();
                let window = self.window;
                tokio::spawn(async move {
                    tokio::time::sleep(window).await;
                    // Broadcast under the lock so a newer batch cannot overtake it.
                    let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(batch) = pending.remove(&topic) {
                        broadcast(&pubsub, batch.finish());
                    }
                });
            }
        }
    }
}

fn broadcast(pubsub: &PubSub, diff: Diff) {
    if diff.is_empty() {
        return;
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        joins: &'a super::tracker::PresenceList,
        leaves: &'a super::tracker::PresenceList,
    }
    let body = Body {
        joins: &diff.joins,
        leaves: &diff.leaves,
    };
    match serde_json::to_string(&body) {
        // Local only: every node derives its diffs from what it merged
        // (`replication`), so a diff sent to other nodes would be seen twice.
        Ok(text) => pubsub.local_broadcast(&diff.topic, DIFF_EVENT, Payload::RawJson(text.into())),
        Err(error) => tracing::error!(%error, "presence diff not encodable"),
    }
}
