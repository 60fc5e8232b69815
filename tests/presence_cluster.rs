//! End-to-end: three fawkes endpoints in one process, joined by the
//! in-process pubsub cluster (broadcasts cross nodes) and whose presences
//! are replicated through the in-process gossip hub, with websocket clients
//! on different nodes. Every client sees each other user join exactly once,
//! `list` on any node is the cluster's list, a dead node's users leave
//! after `down_period`, and a node that leaves gracefully is dropped at once.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fawkes::prelude::*;
use fawkes::presence::replication::{GossipHub, Replication, ReplicationOptions};
use fawkes::presence::PresenceOptions;
use fawkes::pubsub::InProcessCluster;
use fawkes::{Endpoint, Socket};
use serde_json::{json, Value};
use support::{Client, Server};

/// Tracks the connect param `user` after joining, then pushes the list.
#[derive(Default)]
struct Tracked;

struct AfterJoin;

impl Channel<AfterJoin> for Tracked {
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        socket: &mut ChannelSocket<AfterJoin>,
    ) -> JoinResult {
        socket.send_info(AfterJoin).expect("mailbox");
        Ok(Payload::empty())
    }

    async fn handle_info(
        &mut self,
        _: AfterJoin,
        socket: &mut ChannelSocket<AfterJoin>,
    ) -> HandleResult {
        let user = socket.assign_str("user").unwrap_or("anon").to_owned();
        let presence = socket.presence().expect("presence enabled");
        let mut meta = serde_json::Map::new();
        meta.insert("user".into(), json!(user));
        presence.track(&user, meta).expect("track");
        socket
            .push("presence_state", presence.list())
            .expect("push");
        noreply()
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        _payload: Payload,
        _socket: &mut ChannelSocket<AfterJoin>,
    ) -> HandleResult {
        reply_ok(Payload::empty())
    }
}

const DOWN: Duration = Duration::from_millis(900);

async fn node(cluster: &InProcessCluster, hub: &GossipHub, name: &str) -> (Server, Replication) {
    let socket = Socket::new()
        .connect(|info: fawkes::ConnectInfo| async move {
            let mut connected = fawkes::Connected::default();
            if let Some(user) = info.param("user") {
                connected.assigns.insert("user".into(), json!(user));
            }
            Ok(connected)
        })
        .channel("room:*", Tracked::default);
    let endpoint = Endpoint::builder()
        .pubsub_instance(cluster.node())
        .socket("/socket", socket)
        .presence(PresenceOptions::default())
        .build();
    let mut options = ReplicationOptions::new(name);
    options.broadcast_period = Duration::from_millis(50);
    options.down_period = DOWN;
    let presence = endpoint.presence().expect("presence");
    let replication = Replication::start(presence, options, hub.sink(name)).expect("start");
    hub.attach(name, replication.clone());
    (Server::start_endpoint(endpoint).await, replication)
}

/// A client on the room that records every presence event it receives.
struct Watcher {
    client: Client,
    /// user -> how many `presence_diff`s carried a join of that user.
    joins: BTreeMap<String, usize>,
    present: BTreeMap<String, bool>,
}

impl Watcher {
    async fn join(server: &Server, user: &str) -> Watcher {
        let mut client = Client::connect(&server.url(&format!("vsn=2.0.0&user={user}"))).await;
        client.join("room:p", "1").await;
        Watcher {
            client,
            joins: BTreeMap::new(),
            present: BTreeMap::new(),
        }
    }

    fn apply(&mut self, joins: &Value, leaves: &Value, diff: bool) {
        for user in joins.as_object().into_iter().flat_map(|o| o.keys()) {
            if diff {
                *self.joins.entry(user.clone()).or_default() += 1;
            }
            self.present.insert(user.clone(), true);
        }
        for user in leaves.as_object().into_iter().flat_map(|o| o.keys()) {
            self.present.insert(user.clone(), false);
        }
    }

    /// Reads presence events until `done` holds.
    async fn until(&mut self, done: impl Fn(&Watcher) -> bool) {
        while !done(self) {
            let frame = self.client.recv_json().await;
            match frame[3].as_str() {
                Some("presence_state") => self.apply(&frame[4], &json!({}), false),
                Some("presence_diff") => self.apply(&frame[4]["joins"], &frame[4]["leaves"], true),
                _ => {}
            }
        }
    }

    fn sees(&self, users: &[&str]) -> bool {
        let shown: Vec<&str> = self
            .present
            .iter()
            .filter(|(_, here)| **here)
            .map(|(u, _)| u.as_str())
            .collect();
        shown == users
    }
}

fn listed(server: &Server) -> Vec<String> {
    let Payload::RawJson(text) = server.endpoint.presence().expect("presence").list("room:p")
    else {
        panic!("lists are pre-encoded");
    };
    let list: Value = serde_json::from_str(&text).expect("json");
    list.as_object().expect("object").keys().cloned().collect()
}

#[tokio::test]
async fn presences_cross_nodes_and_leave_when_a_node_dies_or_leaves() {
    let hub = GossipHub::new();
    let cluster = InProcessCluster::new();
    let (a, _ra) = node(&cluster, &hub, "a").await;
    let (b, rb) = node(&cluster, &hub, "b").await;
    let (c, _rc) = node(&cluster, &hub, "c").await;

    let mut alice = Watcher::join(&a, "alice").await;
    let mut bob = Watcher::join(&b, "bob").await;
    let mut carol = Watcher::join(&c, "carol").await;
    let everyone = ["alice", "bob", "carol"];
    for w in [&mut alice, &mut bob, &mut carol] {
        w.until(|w| w.sees(&everyone)).await;
    }
    for server in [&a, &b, &c] {
        assert_eq!(listed(server), everyone, "list is the cluster's list");
    }
    // Let any duplicate arrive, then check none did: the replicated joins
    // reach each client once, from its own node only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice
        .client
        .send_json(json!([null, "hb", "phoenix", "heartbeat", {}]))
        .await;
    loop {
        let frame = alice.client.recv_json().await;
        if frame[1] == "hb" {
            break;
        }
        if frame[3] == "presence_diff" {
            alice.apply(&frame[4]["joins"], &frame[4]["leaves"], true);
        }
    }
    for w in [&alice, &bob, &carol] {
        assert!(
            w.joins.values().all(|n| *n == 1),
            "a join was seen twice: {:?}",
            w.joins
        );
    }

    // c dies without a word: its user leaves everywhere after down_period.
    let killed = std::time::Instant::now();
    hub.kill("c");
    alice.until(|w| w.sees(&["alice", "bob"])).await;
    bob.until(|w| w.sees(&["alice", "bob"])).await;
    let took = killed.elapsed();
    assert!(
        took >= DOWN / 2,
        "carol left before c could be down: {took:?}"
    );
    assert_eq!(listed(&a), ["alice", "bob"]);

    // b shuts down gracefully: bob leaves at once, not after down_period.
    rb.leave();
    alice.until(|w| w.sees(&["alice"])).await;
    assert_eq!(listed(&a), ["alice"]);
    drop(carol);
}
