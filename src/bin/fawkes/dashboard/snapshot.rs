//! What the dashboard shows, read from what the server already keeps: the
//! endpoint's [`Counters`] (the same atomics `/metrics` reads), the pubsub
//! registry's topics, the presence tracker and the Redis link's stats.
//! Nothing here is counted for the dashboard; it only reads, once per
//! second while someone watches.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

use fawkes::metrics::{Counters, JoinOutcome, Transport, REJECTED_FRAME_REASONS};
use fawkes::presence::replication::Replication;
use fawkes::presence::Presence;
use fawkes::pubsub::redis::ClusterStats;
use fawkes::PubSub;
use serde_json::{json, Value};

/// Topics listed per snapshot or search answer, the busiest first.
pub(crate) const TOPICS_SHOWN: usize = 50;
/// Presences listed for one topic.
pub(crate) const PRESENCES_SHOWN: usize = 500;
/// Seconds of rate history kept (one point per second).
pub(crate) const HISTORY_POINTS: usize = 300;

/// Where the dashboard reads from.
#[derive(Debug)]
pub(crate) struct Sources {
    /// The endpoint's pubsub (its counters and topic registry).
    pub(crate) pubsub: PubSub,
    /// The endpoint's presence service, set once the endpoint is built.
    pub(crate) presence: OnceLock<Presence>,
    /// Presence replication, set once started (clustered only).
    pub(crate) replication: OnceLock<Replication>,
    /// The Redis engine's stats, when clustered.
    pub(crate) redis: Option<Arc<ClusterStats>>,
    /// This node's name in the cluster, when clustered.
    pub(crate) node: Option<String>,
}

/// The counters rates are derived from, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Totals {
    messages_in: u64,
    messages_out: u64,
    broadcasts: u64,
    deliveries: u64,
}

impl Totals {
    /// The counters now.
    pub(crate) fn read(counters: &Counters) -> Self {
        Self {
            messages_in: counters.messages_in(),
            messages_out: counters.messages_out(),
            broadcasts: counters.broadcasts(),
            deliveries: counters.deliveries(),
        }
    }
}

/// Per-second rates over the last [`HISTORY_POINTS`] samples.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    last: Option<(Instant, Totals)>,
    points: VecDeque<Value>,
}

impl Rates {
    /// Adds the rates since the previous sample (none for the first) and
    /// returns the new point, if any.
    pub(crate) fn sample(&mut self, at: Instant, unix_ms: u64, totals: Totals) -> Option<Value> {
        let previous = self.last.replace((at, totals));
        let (then, before) = previous?;
        let seconds = at.duration_since(then).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let rate = |now: u64, before: u64| (now.saturating_sub(before) as f64 / seconds).round();
        let point = json!({
            "t": unix_ms,
            "messages_in": rate(totals.messages_in, before.messages_in),
            "messages_out": rate(totals.messages_out, before.messages_out),
            "broadcasts": rate(totals.broadcasts, before.broadcasts),
            "deliveries": rate(totals.deliveries, before.deliveries),
        });
        if self.points.len() == HISTORY_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(point.clone());
        Some(point)
    }

    /// Every kept point, oldest first.
    pub(crate) fn history(&self) -> Vec<Value> {
        self.points.iter().cloned().collect()
    }
}

impl Sources {
    /// The state of the node now (`rate`: the newest rate point, if any).
    pub(crate) fn snapshot(&self, unix_ms: u64, rate: Option<Value>) -> Value {
        let counters = self.pubsub.counters();
        let mut topics = self.pubsub.topics();
        let topic_count = topics.len();
        busiest_first(&mut topics);
        let mut refused: serde_json::Map<String, Value> = REJECTED_FRAME_REASONS
            .iter()
            .map(|reason| ((*reason).to_owned(), json!(counters.closed(reason))))
            .collect();
        refused.insert(
            "undeliverable_frames".into(),
            json!(counters.undeliverable_frames()),
        );
        refused.insert(
            "joins_refused".into(),
            json!(counters.joins(JoinOutcome::Refused)),
        );
        json!({
            "at": unix_ms,
            "connections": {
                "websocket": counters.connections(Transport::WebSocket),
                "longpoll": counters.connections(Transport::LongPoll),
            },
            "channels_joined": counters.channels_joined(),
            "presence_entries": self.presence.get().map(Presence::entry_count),
            "topics": {
                "total": topic_count,
                "top": topic_rows(topics.into_iter().take(TOPICS_SHOWN)),
            },
            "rate": rate,
            "evictions": {"slow_client": counters.closed("slow_client")},
            "refused": refused,
            "cluster": self.cluster(counters),
        })
    }

    /// The busiest topics whose name contains `query` (any case).
    pub(crate) fn search_topics(&self, query: &str) -> Value {
        let query = query.to_lowercase();
        let mut topics: Vec<(String, usize)> = self
            .pubsub
            .topics()
            .into_iter()
            .filter(|(topic, _)| topic.to_lowercase().contains(&query))
            .collect();
        let matching = topics.len();
        busiest_first(&mut topics);
        json!({
            "query": query,
            "total": matching,
            "top": topic_rows(topics.into_iter().take(TOPICS_SHOWN)),
        })
    }

    /// Who is present on `topic`, and on which node.
    pub(crate) fn presences(&self, topic: &str) -> Option<Value> {
        let presence = self.presence.get()?;
        let all = presence.presences(topic);
        let total = all.len();
        let rows: Vec<Value> = all
            .into_iter()
            .take(PRESENCES_SHOWN)
            .map(|(key, node, meta)| json!({"key": key, "node": node, "meta": meta}))
            .collect();
        Some(json!({"topic": topic, "total": total, "presences": rows}))
    }

    fn cluster(&self, counters: &Counters) -> Value {
        let Some(redis) = &self.redis else {
            return Value::Null;
        };
        let stats = redis.snapshot();
        let mut states = self
            .replication
            .get()
            .map(|r| r.peer_states())
            .unwrap_or_default();
        states.sort_unstable_by(|a, b| a.node.cmp(&b.node));
        let peers: Vec<&str> = states.iter().map(|p| p.node.as_str()).collect();
        let peer_states: Vec<Value> = states
            .iter()
            .map(|p| {
                let silent_ms = u64::try_from(p.silent_for.as_millis()).unwrap_or(u64::MAX);
                json!({"node": p.node, "up": p.up, "silent_ms": silent_ms})
            })
            .collect();
        json!({
            "peers": self.replication.get().map(|_| peers),
            "peer_states": self.replication.get().map(|_| peer_states),
            "node": self.node,
            "redis_connected": stats.connected,
            "published": stats.published,
            "publish_failed": stats.publish_failed,
            "received": stats.received,
            "receive_dropped": stats.receive_dropped,
            "peer_nodes_up": counters.cluster.peer_nodes_up(),
            "gossip_lag_ms": counters.cluster.gossip_lag_ms(),
        })
    }
}

fn busiest_first(topics: &mut [(String, usize)]) {
    topics.sort_unstable_by(|(a, an), (b, bn)| bn.cmp(an).then_with(|| a.cmp(b)));
}

fn topic_rows(topics: impl Iterator<Item = (String, usize)>) -> Vec<Value> {
    topics
        .map(|(topic, subscribers)| json!({"topic": topic, "subscribers": subscribers}))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_are_per_second_between_samples_and_bounded() {
        let mut rates = Rates::default();
        let start = Instant::now();
        let totals = |n: u64| Totals {
            messages_in: n,
            messages_out: 2 * n,
            broadcasts: n / 10,
            deliveries: 3 * n,
        };
        assert_eq!(rates.sample(start, 0, totals(0)), None);
        let point = rates
            .sample(start + Duration::from_secs(2), 2000, totals(100))
            .expect("a point");
        assert_eq!(
            point,
            json!({"t": 2000, "messages_in": 50.0, "messages_out": 100.0,
                   "broadcasts": 5.0, "deliveries": 150.0})
        );
        for i in 0..(HISTORY_POINTS as u64 + 10) {
            rates.sample(start + Duration::from_secs(3 + i), 3000 + i, totals(100));
        }
        let history = rates.history();
        assert_eq!(history.len(), HISTORY_POINTS);
        assert_eq!(history[0]["t"], json!(3000 + 10));
        assert_eq!(history[HISTORY_POINTS - 1]["messages_in"], json!(0.0));
    }

    #[test]
    fn topics_busiest_first_then_by_name() {
        let mut topics = vec![
            ("b".to_owned(), 1),
            ("a".to_owned(), 1),
            ("c".to_owned(), 5),
        ];
        busiest_first(&mut topics);
        let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
    }
}
