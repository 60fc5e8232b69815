//! The replication service on tokio's paused clock: three presence
//! services in one process joined by a [`GossipHub`], with timers driven
//! by the real timer task.

use std::time::Duration;

use serde_json::Value;

use super::{
    GossipHub, Replication, ReplicationOptions, DEFAULT_BROADCAST_PERIOD, DEFAULT_DOWN_PERIOD,
};
use crate::presence::{Presence, PresenceOptions};
use crate::pubsub::PubSub;

struct Node {
    presence: Presence,
    replication: Replication,
}

fn start(hub: &GossipHub, name: &str) -> Node {
    let presence = Presence::new(PubSub::new(), PresenceOptions::default());
    let replication =
        Replication::start(&presence, ReplicationOptions::new(name), hub.sink(name)).unwrap();
    hub.attach(name, replication.clone());
    Node {
        presence,
        replication,
    }
}

fn cluster(hub: &GossipHub) -> Vec<Node> {
    ["a", "b", "c"].iter().map(|n| start(hub, n)).collect()
}

impl Node {
    fn track(&self, owner: u64, key: &str) {
        self.presence
            .track(owner, "room", key, serde_json::Map::new())
            .unwrap();
    }

    fn keys(&self) -> Vec<String> {
        let text = match self.presence.list("room") {
            fawkes_protocol::Payload::RawJson(text) => text.to_string(),
            other => panic!("unexpected payload {other:?}"),
        };
        let list: Value = serde_json::from_str(&text).unwrap();
        list.as_object().unwrap().keys().cloned().collect()
    }
}

async fn advance(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn deltas_ship_on_the_broadcast_period() {
    let hub = GossipHub::new();
    let nodes = cluster(&hub);
    advance(1).await;
    nodes[0].track(1, "alice");
    advance(50).await;
    assert!(
        nodes[1].keys().is_empty(),
        "shipped before the period ended"
    );
    advance(100).await;
    for node in &nodes {
        assert_eq!(node.keys(), ["alice"]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_delta_lost_to_a_cut_link_is_transferred_after_the_heal() {
    let hub = GossipHub::new();
    let nodes = cluster(&hub);
    advance(1).await;
    hub.cut("a", "b");
    nodes[0].track(1, "alice");
    advance(300).await;
    assert_eq!(nodes[2].keys(), ["alice"]);
    assert!(nodes[1].keys().is_empty());
    hub.heal("a", "b");
    // No new change on a: only a heartbeat's clock can reveal the gap.
    advance(600).await;
    assert_eq!(nodes[1].keys(), ["alice"]);
}

#[tokio::test(start_paused = true)]
async fn a_dead_node_is_down_after_down_period_then_forgotten() {
    let hub = GossipHub::new();
    let nodes = cluster(&hub);
    advance(1).await;
    nodes[2].track(1, "carol");
    advance(700).await;
    assert_eq!(nodes[0].keys(), ["carol"]);
    hub.kill("c");
    // Last heard at most one heartbeat ago: still up until then.
    let heartbeat = ReplicationOptions::new("d").heartbeat_period();
    let early = DEFAULT_DOWN_PERIOD - heartbeat - Duration::from_millis(100);
    advance(early.as_millis() as u64).await;
    assert_eq!(nodes[0].keys(), ["carol"], "down too early");
    advance((heartbeat + DEFAULT_BROADCAST_PERIOD * 3).as_millis() as u64).await;
    assert!(nodes[0].keys().is_empty() && nodes[1].keys().is_empty());
    let c = nodes[2].replication.replica();
    assert!(nodes[0].replication.peers().contains(&c));
    advance(20 * 60 * 1000).await;
    assert!(!nodes[0].replication.peers().contains(&c), "not forgotten");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_replaces_its_old_replica_at_once() {
    let hub = GossipHub::new();
    let nodes = cluster(&hub);
    advance(1).await;
    nodes[2].track(1, "carol");
    advance(700).await;
    hub.kill("c");
    let old = nodes[2].replication.replica();
    let reborn = start(&hub, "c");
    assert!(reborn.replication.replica().incarnation > old.incarnation);
    reborn.track(1, "carol2");
    advance(150).await;
    for node in &nodes[..2] {
        assert_eq!(node.keys(), ["carol2"], "old replica still listed");
    }
    advance(600).await;
    assert_eq!(reborn.keys(), ["carol2"]);
    nodes[0].track(1, "alice");
    advance(700).await;
    assert_eq!(reborn.keys(), ["alice", "carol2"]);
}

#[tokio::test(start_paused = true)]
async fn a_graceful_leave_drops_the_node_at_once() {
    let hub = GossipHub::new();
    let nodes = cluster(&hub);
    advance(1).await;
    nodes[2].track(1, "carol");
    advance(700).await;
    assert_eq!(nodes[1].keys(), ["carol"]);
    nodes[2].replication.leave();
    advance(1).await;
    assert!(nodes[0].keys().is_empty() && nodes[1].keys().is_empty());
}

#[tokio::test(start_paused = true)]
async fn garbage_is_dropped_and_replication_starts_once() {
    let hub = GossipHub::new();
    let nodes = cluster(&hub);
    assert!(nodes[0].replication.receive(b"\x00garbage").is_err());
    assert!(nodes[0]
        .replication
        .receive(b"P\x01{\"type\":\"heartbeat\"}")
        .is_err());
    let again = Replication::start(
        &nodes[0].presence,
        ReplicationOptions::new("x"),
        hub.sink("x"),
    );
    assert!(again.is_err());
    let mut bad = ReplicationOptions::new("y");
    bad.down_period = Duration::from_millis(200);
    assert_eq!(
        ReplicationOptions::new("d").heartbeat_period(),
        DEFAULT_DOWN_PERIOD / 6
    );
    let fresh = Presence::new(PubSub::new(), PresenceOptions::default());
    assert!(Replication::start(&fresh, bad, hub.sink("y")).is_err());
    fresh.track(1, "room", "k", serde_json::Map::new()).unwrap();
    assert!(Replication::start(&fresh, ReplicationOptions::new("z"), hub.sink("z")).is_err());
}
