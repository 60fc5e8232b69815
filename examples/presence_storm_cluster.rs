//! Measures presence replication in one process: three presence services
//! ("nodes") joined by the in-process gossip hub with the default
//! replication settings. A storm of N presences tracked over the three
//! nodes (N/3 each, all at once): how long until every node lists N. Then
//! one node is killed without a word: how long until the others no longer
//! list its presences.
//!
//!     cargo run --release --example presence_storm_cluster -- 2000

use std::time::{Duration, Instant};

use fawkes::presence::replication::{GossipHub, Replication, ReplicationOptions};
use fawkes::presence::{Presence, PresenceOptions};
use fawkes::{Payload, PubSub};

fn count(presence: &Presence) -> usize {
    match presence.list("room:storm") {
        // One `"metas"` per key: cheaper than parsing the list.
        Payload::RawJson(text) => text.matches("\"metas\"").count(),
        _ => 0,
    }
}

async fn wait_until(nodes: &[Presence], want: usize) -> Duration {
    let start = Instant::now();
    while !nodes.iter().all(|p| count(p) == want) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(start.elapsed() < Duration::from_secs(60), "no convergence");
    }
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let hub = GossipHub::new();
    let mut nodes = Vec::new();
    let mut replications = Vec::new();
    for name in ["a", "b", "c"] {
        let presence = Presence::new(PubSub::new(), PresenceOptions::default());
        let replication =
            Replication::start(&presence, ReplicationOptions::new(name), hub.sink(name))
                .expect("start");
        hub.attach(name, replication.clone());
        nodes.push(presence);
        replications.push(replication);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;

    let start = Instant::now();
    for i in 0..n {
        let mut meta = serde_json::Map::new();
        meta.insert("i".into(), i.into());
        nodes[i % 3]
            .track(i as u64, "room:storm", &format!("user{i}"), meta)
            .expect("track");
    }
    let tracked = start.elapsed();
    let converged = wait_until(&nodes, n).await + tracked;
    println!("storm: {n} presences over 3 nodes, every node lists {n} after {converged:?} (tracking took {tracked:?})");

    hub.kill("c");
    let killed = Instant::now();
    let survivors = &nodes[..2];
    let left = n - (0..n).filter(|i| i % 3 == 2).count();
    let gone = {
        while !survivors.iter().all(|p| count(p) == left) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        killed.elapsed()
    };
    println!("kill: node c's presences gone from a and b {gone:?} after it went silent (down_period 3 s)");
}
