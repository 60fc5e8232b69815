//! topic -> subscribers, behind one lock that is never held across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use super::Target;

/// Identifies one subscription (one joined channel, or one socket id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SubscriptionId(u64);

/// One subscriber of a topic.
pub(crate) struct Subscriber {
    pub(crate) target: Target,
}

#[derive(Default)]
pub(super) struct Registry {
    topics: RwLock<HashMap<String, HashMap<SubscriptionId, Subscriber>>>,
    next_id: AtomicU64,
}

impl Registry {
    pub(super) fn insert(&self, topic: &str, subscriber: Subscriber) -> SubscriptionId {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(topic.to_owned())
            .or_default()
            .insert(id, subscriber);
        id
    }

    pub(super) fn remove(&self, topic: &str, id: SubscriptionId) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(subscribers) = topics.get_mut(topic) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    pub(super) fn count(&self, topic: &str) -> usize {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map_or(0, HashMap::len)
    }

    pub(super) fn for_each(&self, topic: &str, mut f: impl FnMut(SubscriptionId, &Subscriber)) {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        if let Some(subscribers) = topics.get(topic) {
            for (id, subscriber) in subscribers {
                f(*id, subscriber);
            }
        }
    }
}
