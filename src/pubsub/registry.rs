//! topic -> subscribers, behind one lock that is never held across an await.
//!
//! Most topics have one subscriber (a user's own topic, a socket id), so a
//! topic's subscribers are a vector until it grows past [`FEW`], then a
//! hash map: an idle joined connection pays for one small vector entry,
//! and leaving a topic with thousands of subscribers stays cheap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use super::Target;

/// Subscribers kept in a vector before a topic switches to a hash map.
const FEW: usize = 32;

/// Identifies one subscription (one joined channel, or one socket id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SubscriptionId(u64);

/// One subscriber of a topic.
pub(crate) struct Subscriber {
    pub(crate) target: Target,
}

/// The subscribers of one topic.
enum Subscribers {
    Few(Vec<(SubscriptionId, Subscriber)>),
    Many(HashMap<SubscriptionId, Subscriber>),
}

impl Subscribers {
    fn insert(&mut self, id: SubscriptionId, subscriber: Subscriber) {
        match self {
            Subscribers::Few(few) if few.len() < FEW => {
                few.reserve_exact(1);
                few.push((id, subscriber));
            }
            Subscribers::Few(few) => {
                let mut many: HashMap<_, _> = std::mem::take(few).into_iter().collect();
                many.insert(id, subscriber);
                *self = Subscribers::Many(many);
            }
            Subscribers::Many(many) => {
                many.insert(id, subscriber);
            }
        }
    }

    fn remove(&mut self, id: SubscriptionId) {
        match self {
            Subscribers::Few(few) => {
                if let Some(index) = few.iter().position(|(i, _)| *i == id) {
                    few.swap_remove(index);
                }
            }
            Subscribers::Many(many) => {
                many.remove(&id);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Subscribers::Few(few) => few.len(),
            Subscribers::Many(many) => many.len(),
        }
    }

    fn for_each(&self, mut f: impl FnMut(SubscriptionId, &Subscriber)) {
        match self {
            Subscribers::Few(few) => few.iter().for_each(|(id, s)| f(*id, s)),
            Subscribers::Many(many) => many.iter().for_each(|(id, s)| f(*id, s)),
        }
    }
}

#[derive(Default)]
pub(super) struct Registry {
    topics: RwLock<HashMap<Box<str>, Subscribers>>,
    next_id: AtomicU64,
}

impl Registry {
    pub(super) fn insert(&self, topic: &str, subscriber: Subscriber) -> SubscriptionId {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        match topics.get_mut(topic) {
            Some(subscribers) => subscribers.insert(id, subscriber),
            None => {
                topics.insert(topic.into(), Subscribers::Few(vec![(id, subscriber)]));
            }
        }
        id
    }

    pub(super) fn remove(&self, topic: &str, id: SubscriptionId) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(subscribers) = topics.get_mut(topic) {
            subscribers.remove(id);
            if subscribers.len() == 0 {
                topics.remove(topic);
            }
        }
    }

    pub(super) fn count(&self, topic: &str) -> usize {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map_or(0, Subscribers::len)
    }

    /// Every topic with its subscriber count, in no particular order.
    pub(super) fn topics(&self) -> Vec<(String, usize)> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .iter()
            .map(|(topic, subscribers)| (topic.to_string(), subscribers.len()))
            .collect()
    }

    pub(super) fn for_each(&self, topic: &str, f: impl FnMut(SubscriptionId, &Subscriber)) {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        if let Some(subscribers) = topics.get(topic) {
            subscribers.for_each(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fawkes_protocol::Broadcast;

    use super::{Registry, Subscriber, FEW};
    use crate::pubsub::{Deliver, Target, WireFrame};

    struct Nowhere;

    impl Deliver for Nowhere {
        fn deliver_frame(&self, _: WireFrame) {}
        fn deliver_intercepted(&self, _: u64, _: &Broadcast) {}
        fn deliver_disconnect(&self) {}
    }

    fn subscriber() -> Subscriber {
        Subscriber {
            target: Target::Socket {
                sink: Arc::new(Nowhere),
            },
        }
    }

    fn ids(registry: &Registry, topic: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        registry.for_each(topic, |id, _| ids.push(id.0));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn topics_grow_past_a_vector_and_shrink_away() {
        let registry = Registry::default();
        let n = FEW as u64 * 3;
        let subs: Vec<_> = (0..n)
            .map(|_| registry.insert("big", subscriber()))
            .collect();
        let lone = registry.insert("lone", subscriber());
        assert_eq!(registry.count("big"), n as usize);
        assert_eq!(ids(&registry, "big"), (0..n).collect::<Vec<_>>());
        assert_eq!(ids(&registry, "lone"), vec![lone.0]);
        for id in subs.iter().step_by(2) {
            registry.remove("big", *id);
        }
        let odd: Vec<u64> = (0..n).filter(|i| i % 2 == 1).collect();
        assert_eq!(ids(&registry, "big"), odd);
        registry.remove("big", subs[0]);
        assert_eq!(
            registry.count("big"),
            odd.len(),
            "removing twice is harmless"
        );
        for id in subs.iter().skip(1).step_by(2) {
            registry.remove("big", *id);
        }
        assert_eq!(registry.count("big"), 0);
        assert!(registry.topics.read().unwrap().get("big").is_none());
        assert_eq!(registry.topics(), vec![("lone".to_owned(), 1)]);
        registry.remove("lone", lone);
        assert!(registry.topics.read().unwrap().is_empty());
        assert!(registry.topics().is_empty());
    }
}
