//! A websocket client of a node running the binary's default chat app,
//! joined to `room:lobby`, that follows the topic's presence list and the
//! `new_msg`s it receives.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::binary::Fawkes;
use super::presence_sync::SyncGate;
use super::Client;

/// Longest wait for a cluster to reach a state (turns a hang into a failure).
pub const SETTLE: Duration = Duration::from_secs(30);

/// A websocket client of one node, joined to `room:lobby` as `user`, that
/// follows the topic's presence list.
pub struct Watcher {
    pub user: String,
    pub client: Client,
    pub present: BTreeSet<String>,
    /// user -> how many `presence_diff`s carried a join of that user.
    pub joins: BTreeMap<String, usize>,
    /// `new_msg` payloads received.
    pub messages: Vec<Value>,
    /// Diffs before the first state wait for it, as in phoenix.js.
    gate: SyncGate,
}

impl Watcher {
    pub async fn join(node: &Fawkes, user: &str) -> Watcher {
        let client = Client::connect(&node.ws_url(&format!("vsn=2.0.0&user={user}"))).await;
        Watcher::joined(client, user).await
    }

    /// Joins `room:lobby` with a connected `client` whose connect param
    /// `user` is `user`.
    pub async fn joined(mut client: Client, user: &str) -> Watcher {
        client.join("room:lobby", "1").await;
        Watcher {
            user: user.to_owned(),
            client,
            present: BTreeSet::new(),
            joins: BTreeMap::new(),
            messages: Vec::new(),
            gate: SyncGate::default(),
        }
    }

    fn apply(&mut self, frame: &Value) {
        if frame[3] == "new_msg" {
            self.messages.push(frame[4].clone());
        }
        for frame in self.gate.admit(frame) {
            self.sync(&frame);
        }
    }

    /// Apply one `presence_state` or `presence_diff`.
    fn sync(&mut self, frame: &Value) {
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
            _ => {}
        }
    }

    /// Reads frames until `done` holds (at most `within`); `false` if it
    /// did not.
    pub async fn wait(&mut self, within: Duration, done: impl Fn(&Watcher) -> bool) -> bool {
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
    pub async fn until_list(&mut self, users: &[&str]) {
        let want: BTreeSet<String> = users.iter().map(|u| (*u).to_owned()).collect();
        let reached = self.wait(SETTLE, |w| w.present == want).await;
        assert!(
            reached,
            "{} lists {:?}, not {:?}",
            self.user, self.present, want
        );
    }

    /// Reads whatever arrives within `quiet` (to catch late duplicates).
    pub async fn drain(&mut self, quiet: Duration) {
        self.wait(quiet, |_| false).await;
    }

    /// Each join was announced to this client at most once.
    pub fn no_duplicate_joins(&self) {
        for (user, n) in &self.joins {
            assert_eq!(*n, 1, "{} saw {user} join {n} times", self.user);
        }
    }
}
