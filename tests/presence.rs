//! End-to-end: presences leave when their channel crashes, leaves or its
//! connection closes, and the others see it as a `presence_diff` leave.

mod support;

use fawkes::presence::PresenceOptions;
use fawkes::{
    Channel, ChannelSocket, Endpoint, HandleResult, Info, JoinResult, Payload, Reply, Socket,
};
use serde_json::{json, Value};
use support::{Client, Server};

/// Tracks the connect param `user` after joining; `crash` panics.
#[derive(Default)]
struct Tracked;

struct AfterJoin;

impl Channel for Tracked {
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        socket: &mut ChannelSocket,
    ) -> JoinResult {
        socket.send_info(AfterJoin).expect("mailbox");
        JoinResult::Ok(Payload::empty())
    }

    async fn handle_info(&mut self, _info: Info, socket: &mut ChannelSocket) -> HandleResult {
        let user = socket.assign_str("user").unwrap_or("anon").to_owned();
        let presence = socket.presence().expect("presence enabled");
        let mut meta = serde_json::Map::new();
        meta.insert("user".into(), json!(user));
        presence.track(&user, meta).expect("track");
        let list = presence.list();
        socket.push("presence_state", list).expect("push");
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        _socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "crash" => panic!("crash requested"),
            _ => HandleResult::Reply(Reply::ok_empty()),
        }
    }
}

async fn server() -> Server {
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
        .presence(PresenceOptions::default())
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
