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

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::binary::Fawkes;
use support::redis::RedisServer;
use support::Client;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for the cluster to reach a state (turns a hang into a failure).
const SETTLE: Duration = Duration::from_secs(30);

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

/// A websocket client of one node, joined to `room:lobby` as `user`, that
/// follows the topic's presence list.
struct Watcher {
    user: String,
    client: Client,
    present: BTreeSet<String>,
    /// user -> how many `presence_diff`s carried a join of that user.
    joins: BTreeMap<String, usize>,
    /// `new_msg` payloads received.
    messages: Vec<Value>,
}

impl Watcher {
    async fn join(node: &Fawkes, user: &str) -> Watcher {
        let mut client = Client::connect(&node.ws_url(&format!("vsn=2.0.0&user={user}"))).await;
        client.join("room:lobby", "1").await;
        Watcher {
            user: user.to_owned(),
            client,
            present: BTreeSet::new(),
            joins: BTreeMap::new(),
            messages: Vec::new(),
        }
    }

    fn apply(&mut self, frame: &Value) {
        let keys = |v: &Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        match frame[3].as_str() {
            Some("presence_state") => self.present = keys(&frame[4]).into_iter().collect(),
            Some("presence_diff") => {
                for user in keys(&frame[4]["leaves"]) {
                    self.present.remove(&user);
                }
                for user in keys(&frame[4]["joins"]) {
                    *self.joins.entry(user.clone()).or_default() += 1;
                    self.present.insert(user);
                }
            }
            Some("new_msg") => self.messages.push(frame[4].clone()),
            _ => {}
        }
    }

    /// Reads frames until `done` holds (at most `within`); `false` if it
    /// did not.
    async fn wait(&mut self, within: Duration, done: impl Fn(&Watcher) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            let next = tokio::time::timeout_at(deadline, self.client.ws.next()).await;
            let Ok(frame) = next else {
                return false;
            };
            match frame.expect("connection open").expect("a valid frame") {
                Message::Text(text) => {
                    let frame: Value = serde_json::from_str(&text).expect("json");
                    self.apply(&frame);
                }
                Message::Close(close) => panic!("{} closed: {close:?}", self.user),
                _ => {}
            }
        }
        true
    }

    /// Reads frames until the list is exactly `users`.
    async fn until_list(&mut self, users: &[&str]) {
        let want: BTreeSet<String> = users.iter().map(|u| (*u).to_owned()).collect();
        let reached = self.wait(SETTLE, |w| w.present == want).await;
        assert!(
            reached,
            "{} lists {:?}, not {:?}",
            self.user, self.present, want
        );
    }

    /// Reads whatever arrives within `quiet` (to catch late duplicates).
    async fn drain(&mut self, quiet: Duration) {
        self.wait(quiet, |_| false).await;
    }

    /// Each join was announced to this client at most once.
    fn no_duplicate_joins(&self) {
        for (user, n) in &self.joins {
            assert_eq!(*n, 1, "{} saw {user} join {n} times", self.user);
        }
    }
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
