//! Presence across separate `fawkes serve` processes joined over a real
//! `redis-server` (one per test, on a free port), with websocket clients on
//! different nodes:
//!
//! * three nodes: every client lists every user, each join reaches each
//!   client once; `kill -9` of a node: its user leaves every other
//!   client's list (by `down_period`, the node said nothing);
//! * SIGTERM of a node: its user leaves the others' lists at once, long
//!   before a `down_period` of a minute;
//! * Redis killed and restarted while users come and go: broadcasts resume,
//!   the nodes resync, and every list converges to the users still there.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::binary::Fawkes;
use support::redis::RedisServer;
use support::watcher::{Watcher, SETTLE};

/// A `fawkes serve` node named `name` on `redis`, with `extra` lines in its
/// `[cluster]` section.
async fn node(redis: &RedisServer, name: &str, extra: &str) -> Fawkes {
    let config = format!("[cluster]\n{extra}\n");
    let url = redis.url();
    Fawkes::start(
        Some(&config),
        &[
            ("FAWKES_REDIS_URL", url.as_str()),
            ("FAWKES_NODE_NAME", name),
            ("NO_COLOR", "1"),
        ],
    )
    .await
}

#[tokio::test]
async fn three_nodes_share_presence_and_a_killed_node_s_users_leave() {
    let redis = RedisServer::start();
    let a = node(&redis, "node_a", "").await;
    let b = node(&redis, "node_b", "").await;
    let mut c = node(&redis, "node_c", "").await;
    let mut alice = Watcher::join(&a, "alice").await;
    let mut bob = Watcher::join(&b, "bob").await;
    let mut carol = Watcher::join(&c, "carol").await;
    let everyone = ["alice", "bob", "carol"];
    for watcher in [&mut alice, &mut bob, &mut carol] {
        watcher.until_list(&everyone).await;
    }
    for watcher in [&mut alice, &mut bob, &mut carol] {
        watcher.drain(Duration::from_millis(500)).await;
        watcher.no_duplicate_joins();
        assert_eq!(watcher.present.len(), 3);
    }

    c.kill9().await;
    let killed = Instant::now();
    alice.until_list(&["alice", "bob"]).await;
    bob.until_list(&["alice", "bob"]).await;
    eprintln!(
        "kill -9 of node_c: carol gone on both other nodes after {:?} (down_period 4 s)",
        killed.elapsed()
    );
    // Marked down for its silence: a killed node cannot say goodbye.
    assert!(a.logged("presence replica down").await);
    assert!(b.logged("presence replica down").await);
}

#[tokio::test]
async fn a_node_stopped_with_sigterm_leaves_at_once() {
    let redis = RedisServer::start();
    // A minute of silence before a node counts as down: only the goodbye
    // can make bob leave within the wait below.
    let slow = "down_period_ms = 60000\npermdown_period_ms = 120000";
    let a = node(&redis, "node_a", slow).await;
    let mut b = node(&redis, "node_b", slow).await;
    let mut alice = Watcher::join(&a, "alice").await;
    let mut bob = Watcher::join(&b, "bob").await;
    alice.until_list(&["alice", "bob"]).await;
    bob.until_list(&["alice", "bob"]).await;

    b.terminate().await;
    let left = alice
        .wait(Duration::from_secs(20), |w| !w.present.contains("bob"))
        .await;
    assert!(left, "bob still listed on node_a after node_b's SIGTERM");
    assert!(a.logged("presence replica left").await);
}

#[tokio::test]
async fn presence_and_broadcasts_recover_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let a = node(&redis, "node_a", "").await;
    let b = node(&redis, "node_b", "").await;
    let c = node(&redis, "node_c", "").await;
    let mut wa = Watcher::join(&a, "wa").await;
    let mut wb = Watcher::join(&b, "wb").await;
    let wc = Watcher::join(&c, "wc").await;
    for watcher in [&mut wa, &mut wb] {
        watcher.until_list(&["wa", "wb", "wc"]).await;
    }

    redis.kill();
    // While Redis is away: wc leaves node_c, x joins node_a. Each node
    // keeps serving its own clients.
    drop(wc);
    let mut x = Watcher::join(&a, "x").await;
    x.wait(SETTLE, |w| w.present.contains("x")).await;
    // Long enough for the nodes to count each other down (4 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.restart();

    for watcher in [&mut wa, &mut wb, &mut x] {
        watcher.until_list(&["wa", "wb", "x"]).await;
    }
    for node in [&a, &b, &c] {
        assert!(node.logged("presence resync").await, "no resync logged");
    }

    // Broadcasts cross nodes again: wa's new_msg reaches wb.
    let sent = tokio::time::timeout(SETTLE, async {
        for n in 0.. {
            wa.client
                .send_json(json!(["1", n.to_string(), "room:lobby", "new_msg", {"n": n}]))
                .await;
            if wb
                .wait(Duration::from_millis(300), |w| !w.messages.is_empty())
                .await
            {
                return;
            }
        }
    })
    .await;
    assert!(sent.is_ok(), "broadcasts did not resume after the restart");
}
