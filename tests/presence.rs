//! End-to-end: presences leave when their channel crashes, leaves or its
//! connection closes, and the others see it as a `presence_diff` leave; and
//! with the binary's default batching window, changes within one window reach
//! subscribers as one `presence_diff` and every client's list converges.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fawkes::prelude::*;
use fawkes::presence::PresenceOptions;
use fawkes::{Endpoint, Socket};
use serde_json::{json, Value};
use support::presence_sync::SyncGate;
use support::{Client, Server};

/// Tracks the connect param `user` after joining; `crash` panics.
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
        let list = presence.list();
        socket.push("presence_state", list).expect("push");
        noreply()
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        _socket: &mut ChannelSocket<AfterJoin>,
    ) -> HandleResult {
        match event {
            "crash" => panic!("crash requested"),
            _ => reply_ok(Payload::empty()),
        }
    }
}

async fn server() -> Server {
    server_with(PresenceOptions::default()).await
}

async fn server_with(options: PresenceOptions) -> Server {
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
        .socket("/socket", socket)
        .presence(options)
        .build();
    Server::start_endpoint(endpoint).await
}

/// Read frames until a `presence_diff` arrives; return its payload.
async fn next_diff(client: &mut Client) -> Value {
    loop {
        let frame = client.recv_json().await;
        if frame[3] == "presence_diff" {
            return frame[4].clone();
        }
    }
}

/// Join and wait until this client's own presence was announced.
async fn join_tracked(client: &mut Client, user: &str) {
    client.join("room:p", "1").await;
    loop {
        let diff = next_diff(client).await;
        if diff["joins"].get(user).is_some() {
            return;
        }
    }
}

#[tokio::test]
async fn a_crashed_channels_presence_leaves_and_its_socket_lives_on() {
    let server = server().await;
    let mut alice = Client::connect(&server.url("vsn=2.0.0&user=alice")).await;
    let mut bob = Client::connect(&server.url("vsn=2.0.0&user=bob")).await;
    join_tracked(&mut alice, "alice").await;
    join_tracked(&mut bob, "bob").await;

    alice
        .send_json(json!(["1", "5", "room:p", "crash", {}]))
        .await;
    let diff = next_diff(&mut bob).await;
    assert_eq!(diff["joins"], json!({}));
    assert_eq!(
        diff["leaves"]["alice"]["metas"][0]["user"], "alice",
        "{diff}"
    );

    // alice's socket survived the crash: heartbeat still answered.
    loop {
        let frame = alice.recv_json().await;
        if frame[3] == "phx_error" {
            break;
        }
    }
    alice
        .send_json(json!([null, "6", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(alice.recv_json().await[1], "6");
}

/// Read diffs until one carries a leave of `user`.
async fn wait_for_leave(client: &mut Client, user: &str) -> Value {
    loop {
        let diff = next_diff(client).await;
        if diff["leaves"].get(user).is_some() {
            return diff;
        }
    }
}

#[tokio::test]
async fn leave_and_close_both_remove_presences() {
    let server = server().await;
    let mut alice = Client::connect(&server.url("vsn=2.0.0&user=alice")).await;
    let mut bob = Client::connect(&server.url("vsn=2.0.0&user=bob")).await;
    let mut carol = Client::connect(&server.url("vsn=2.0.0&user=carol")).await;
    join_tracked(&mut alice, "alice").await;
    join_tracked(&mut bob, "bob").await;
    join_tracked(&mut carol, "carol").await;

    bob.send_json(json!(["1", "7", "room:p", "phx_leave", {}]))
        .await;
    wait_for_leave(&mut alice, "bob").await;
    drop(carol);
    wait_for_leave(&mut alice, "carol").await;

    let Payload::RawJson(text) = server.endpoint.presence().expect("presence").list("room:p")
    else {
        panic!("lists are pre-encoded");
    };
    let list: Value = serde_json::from_str(&text).expect("json list");
    let keys: Vec<&String> = list.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["alice"]);
}

/// The window `fawkes serve` ships (`batch_window_ms = 100` in
/// `src/bin/fawkes/default.toml`).
const SHIPPED_WINDOW: Duration = Duration::from_millis(100);

/// A client's presence list as phoenix.js keeps it: key -> metas.
type ClientList = BTreeMap<String, Vec<Value>>;

/// The list a `presence_state` (or `Presence.list`) payload describes.
fn from_state(state: &Value) -> ClientList {
    state
        .as_object()
        .expect("presence state object")
        .iter()
        .map(|(key, entry)| {
            let metas = entry["metas"].as_array().expect("metas").clone();
            (key.clone(), metas)
        })
        .collect()
}

/// Apply a `presence_diff` as phoenix.js `Presence.syncDiff` does: joins
/// replace metas with the same `phx_ref`, leaves remove metas by `phx_ref`.
fn sync_diff(list: &mut ClientList, diff: &Value) {
    for (key, joined) in from_state(&diff["joins"]) {
        let metas = list.entry(key).or_default();
        metas.retain(|m| !joined.iter().any(|j| j["phx_ref"] == m["phx_ref"]));
        metas.extend(joined);
    }
    for (key, left) in from_state(&diff["leaves"]) {
        if let Some(metas) = list.get_mut(&key) {
            metas.retain(|m| !left.iter().any(|l| l["phx_ref"] == m["phx_ref"]));
            if metas.is_empty() {
                list.remove(&key);
            }
        }
    }
}

/// `list` with every key's metas in `phx_ref` order (arrival order differs
/// between clients and the server).
fn sorted(mut list: ClientList) -> ClientList {
    for metas in list.values_mut() {
        metas.sort_by_key(|m| m["phx_ref"].to_string());
    }
    list
}

/// A websocket client with the presence list it built from what it received.
struct Member {
    client: Client,
    list: ClientList,
    diffs: usize,
    /// Diffs before the first state wait for it, as in phoenix.js.
    gate: SyncGate,
}

impl Member {
    fn new(client: Client) -> Member {
        Member {
            client,
            list: ClientList::new(),
            diffs: 0,
            gate: SyncGate::default(),
        }
    }

    /// Read one frame and apply it if it is presence; returns its event.
    async fn step(&mut self) -> String {
        let frame = self.client.recv_json().await;
        if frame[3] == "presence_diff" {
            self.diffs += 1;
        }
        for now in self.gate.admit(&frame) {
            match now[3].as_str() {
                Some("presence_state") => self.list = from_state(&now[4]),
                _ => sync_diff(&mut self.list, &now[4]),
            }
        }
        frame[3].as_str().unwrap_or_default().to_owned()
    }

    /// Read frames until `n` diffs arrived in all.
    async fn until_diffs(&mut self, n: usize) {
        while self.diffs < n {
            self.step().await;
        }
    }

    /// Read frames until the list's keys are `keys`.
    async fn until_keys(&mut self, keys: &[String]) {
        while self.list.keys().ne(keys.iter()) {
            self.step().await;
        }
    }
}

fn server_list(server: &Server, topic: &str) -> ClientList {
    let Payload::RawJson(text) = server.endpoint.presence().expect("presence").list(topic) else {
        panic!("lists are pre-encoded");
    };
    from_state(&serde_json::from_str(&text).expect("json list"))
}

/// Paused time: the batching window only elapses when every task is idle,
/// so "within one window" does not depend on the machine's speed; a lost
/// diff makes `recv_json`'s timeout fire (in virtual time) instead of
/// hanging.
#[tokio::test(start_paused = true)]
async fn the_shipped_window_merges_a_burst_of_joins_and_leaves_into_one_diff_each() {
    const N: usize = 8;
    let server = server_with(PresenceOptions {
        batch_window: SHIPPED_WINDOW,
    })
    .await;
    let mut watcher = Member::new(Client::connect(&server.url("vsn=2.0.0&user=watcher")).await);
    watcher.client.join("room:w", "1").await;
    // Its presence_state (listing itself), then the diff of its own join.
    watcher.until_diffs(1).await;
    assert_eq!(sorted(watcher.list.clone()), server_list(&server, "room:w"));

    let users: Vec<String> = (0..N).map(|i| format!("u{i}")).collect();
    let mut members = Vec::new();
    for user in &users {
        members.push(Member::new(
            Client::connect(&server.url(&format!("vsn=2.0.0&user={user}"))).await,
        ));
    }
    // Every join leaves before any reply is awaited: one burst.
    for member in &mut members {
        member
            .client
            .send_json(json!(["1", "1", "room:w", "phx_join", {}]))
            .await;
    }
    for member in &mut members {
        while member.step().await != "phx_reply" {}
    }
    let mut everyone: Vec<String> = users.clone();
    everyone.push("watcher".to_owned());
    everyone.sort();
    watcher.until_keys(&everyone).await;
    assert_eq!(
        watcher.diffs, 2,
        "{N} joins within one window reach the watcher as one presence_diff"
    );
    // Every member's list (its presence_state plus the merged diff)
    // converges on what the server lists.
    let listed = sorted(server_list(&server, "room:w"));
    assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), everyone);
    for member in &mut members {
        member.until_keys(&everyone).await;
        assert_eq!(sorted(member.list.clone()), listed);
    }
    assert_eq!(sorted(watcher.list.clone()), listed);

    // Half of them leave and the other half disconnect, all in one burst.
    let (leaving, closing) = members.split_at_mut(N / 2);
    for member in leaving.iter_mut() {
        member
            .client
            .send_json(json!(["1", "2", "room:w", "phx_leave", {}]))
            .await;
    }
    for member in closing.iter_mut() {
        member.client.ws.close(None).await.expect("close");
    }
    watcher.until_keys(&["watcher".to_owned()]).await;
    assert_eq!(
        watcher.diffs, 3,
        "{N} leaves within one window reach the watcher as one presence_diff"
    );
    assert_eq!(
        sorted(watcher.list.clone()),
        sorted(server_list(&server, "room:w"))
    );
}

/// Changes in different windows are not merged: each window's diff is sent
/// when that window ends.
#[tokio::test(start_paused = true)]
async fn changes_in_separate_windows_are_separate_diffs() {
    let server = server_with(PresenceOptions {
        batch_window: SHIPPED_WINDOW,
    })
    .await;
    let mut watcher = Member::new(Client::connect(&server.url("vsn=2.0.0&user=watcher")).await);
    watcher.client.join("room:s", "1").await;
    watcher.until_diffs(1).await;
    let mut expected = vec!["watcher".to_owned()];
    let mut others = Vec::new();
    for user in ["a", "b", "c"] {
        let mut client = Client::connect(&server.url(&format!("vsn=2.0.0&user={user}"))).await;
        client.join("room:s", "1").await;
        expected.push(user.to_owned());
        expected.sort();
        watcher.until_keys(&expected).await;
        // Outwait the window (virtual time) before the next change.
        tokio::time::sleep(SHIPPED_WINDOW * 2).await;
        others.push(client);
    }
    assert_eq!(watcher.diffs, 4, "one diff per window");
}
