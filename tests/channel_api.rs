//! The channel author's API, driven in-process with `fawkes::testing` (no
//! socket opened): typed payloads and the error reply of one that does not
//! fit, the short results, typed `handle_info`, application state, the
//! socket id, broadcasting to another topic, `?` on a failed push, the
//! default callbacks (join accepts, an event without `handle_in` crashes
//! the channel), and ending the socket
//! politely or abruptly (the abrupt end is also checked over a real
//! websocket: no close frame).

mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fawkes::prelude::*;
use fawkes::presence::tracker::Meta;
use fawkes::presence::{Presence, PresenceOptions};
use fawkes::{testing, ConnectInfo, ConnectRefused, Connected, Endpoint, Socket};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Application state shared by every channel.
struct Motd(&'static str);

#[derive(Deserialize, Serialize)]
struct NewMsg {
    body: String,
}

/// What a room sends itself.
enum Tick {
    Say(String),
}

#[derive(Default)]
struct Room;

impl Channel<Tick> for Room {
    async fn join(
        &mut self,
        topic: &str,
        _: Payload,
        socket: &mut ChannelSocket<Tick>,
    ) -> JoinResult {
        if topic == "room:secret" {
            return Err(ChannelError::reason("unauthorized"));
        }
        let motd = socket.state::<Motd>().map(|m| m.0).unwrap_or("none");
        Ok(json!({"motd": motd, "id": socket.id()}).into())
    }

    async fn handle_info(&mut self, info: Tick, socket: &mut ChannelSocket<Tick>) -> HandleResult {
        let Tick::Say(text) = info;
        socket.push("said", json!({"text": text}))?;
        noreply()
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket<Tick>,
    ) -> HandleResult {
        match event {
            "new_msg" => {
                let msg: NewMsg = payload.deserialize()?;
                socket.broadcast("new_msg", Payload::json(&msg));
                reply_ok(Payload::json(&NewMsg {
                    body: msg.body.to_uppercase(),
                }))
            }
            "later" => {
                let text: String = payload.deserialize()?;
                socket.send_info(Tick::Say(text))?;
                reply_ok(Payload::empty())
            }
            "tell_user" => {
                let user: String = payload.deserialize()?;
                socket.broadcast_to(&format!("user:{user}"), "revoked", Payload::empty());
                noreply()
            }
            "disconnect_me" => {
                socket.disconnect();
                noreply()
            }
            "kill_me" => {
                socket.kill();
                noreply()
            }
            "push_long_event" => {
                // A binary frame's event is at most 255 bytes: the push
                // fails, and `?` makes it this message's error reply.
                let event = "e".repeat(300);
                socket.push(&event, Payload::Binary(bytes::Bytes::from_static(b"x")))?;
                reply_ok(Payload::empty())
            }
            "bye" => stop(),
            _ => Err(ChannelError::reason("unknown event")),
        }
    }
}

/// Greets from `join` itself: pushes and a presence track made there reach
/// the client after the join reply. `{"refuse": true}` refuses after
/// pushing; `{"bad_meta": true}` tracks a meta that is not an object.
#[derive(Default)]
struct Greeter;

impl Channel for Greeter {
    async fn join(
        &mut self,
        topic: &str,
        params: Payload,
        socket: &mut ChannelSocket,
    ) -> JoinResult {
        socket.push("welcome", json!({"topic": topic}))?;
        let user = socket.id().unwrap_or("nobody").to_owned();
        let presence = socket.presence().expect("presence is on");
        let meta = match params.get("bad_meta") {
            Some(_) => json!("not an object"),
            None => json!({"online": true}),
        };
        if let Err(error) = presence.track(&user, meta) {
            return Err(ChannelError::reason(error.to_string()));
        }
        socket.push_presence_state()?;
        match params.get("refuse") {
            Some(_) => Err(ChannelError::reason("refused")),
            None => Ok(Payload::empty()),
        }
    }
}

/// No callbacks at all: the default join accepts with `{}`, and any event
/// crashes the channel as a Phoenix channel without the clause does.
#[derive(Default)]
struct UserChannel;

impl Channel for UserChannel {}

#[derive(Deserialize)]
struct Params {
    user: String,
}

async fn connect(info: ConnectInfo) -> Result<Connected, ConnectRefused> {
    let params: Params = info.params_as().map_err(|_| ConnectRefused)?;
    if info.state::<Motd>().is_none() {
        return Err(ConnectRefused);
    }
    Ok(Connected::new().id(format!("user_socket:{}", params.user)))
}

/// Asks for `presence_state` in `join`, then makes a change that is
/// published at once, before the channel is subscribed (as another channel
/// or node may at that moment): the client must still learn of it.
struct Racer(Arc<OnceLock<Presence>>);

impl Channel for Racer {
    async fn join(&mut self, topic: &str, _: Payload, socket: &mut ChannelSocket) -> JoinResult {
        let presence = socket.presence().expect("presence is on");
        presence.track("me", json!({})).expect("tracks");
        socket.push_presence_state()?;
        let endpoint_presence = self.0.get().expect("set after build");
        let late = endpoint_presence.track(RACER_OWNER, topic, "late", Meta::new());
        late.expect("tracks");
        Ok(Payload::empty())
    }
}

/// The owner of the racer's change (no channel has this id).
const RACER_OWNER: u64 = u64::MAX - 7;

fn endpoint() -> Endpoint {
    let presence = Arc::new(OnceLock::new());
    let racer = presence.clone();
    let endpoint = Endpoint::builder()
        .state(Motd("be nice"))
        .socket(
            "/socket",
            Socket::new()
                .connect(connect)
                .channel("room:*", Room::default)
                .channel("user:*", UserChannel::default)
                .channel("greet:*", Greeter::default)
                .channel("race:*", move || Racer(racer.clone())),
        )
        .presence(PresenceOptions {
            batch_window: Duration::ZERO,
        })
        .build();
    let _ = presence.set(endpoint.presence().expect("presence is on").clone());
    endpoint
}

#[tokio::test(start_paused = true)]
async fn join_push_reply_broadcast_and_stop_without_a_socket() {
    let endpoint = endpoint();
    let mut alice = testing::connect(&endpoint, "/socket", &[("user", "alice")])
        .await
        .expect("alice connects");
    let mut bob = testing::connect(&endpoint, "/socket", &[("user", "bob")])
        .await
        .expect("bob connects");
    let joined = alice.join("room:lobby", json!({})).await.expect("join");
    assert_eq!(
        joined,
        json!({"motd": "be nice", "id": "user_socket:alice"}).into()
    );
    bob.join("room:lobby", json!({})).await.expect("join");

    let reply = alice
        .request("room:lobby", "new_msg", json!({"body": "hi"}))
        .await;
    assert_eq!(reply.status, "ok");
    assert_eq!(reply.response, json!({"body": "HI"}).into());
    for client in [&mut alice, &mut bob] {
        let broadcast = client.assert_broadcast("room:lobby", "new_msg").await;
        assert_eq!(broadcast, json!({"body": "hi"}).into());
    }

    // Typed handle_info: pushed after the reply.
    let reply = alice.request("room:lobby", "later", json!("soon")).await;
    assert_eq!(reply.status, "ok");
    assert_eq!(
        alice.assert_push("room:lobby", "said").await,
        json!({"text": "soon"}).into()
    );

    // Stop: phx_close for this client only.
    alice.push("room:lobby", "bye", json!({})).await;
    alice.assert_push("room:lobby", "phx_close").await;
    bob.refute_event("room:lobby", "phx_close", Duration::from_millis(200))
        .await;

    let refused = alice.join("room:secret", json!({})).await;
    assert_eq!(refused, Err(json!({"reason": "unauthorized"}).into()));
    alice.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_payload_that_does_not_fit_gets_an_error_reply_and_the_channel_goes_on() {
    let endpoint = endpoint();
    let mut client = testing::connect(&endpoint, "/socket", &[("user", "carol")])
        .await
        .expect("connect");
    client.join("room:lobby", json!({})).await.expect("join");
    let reply = client
        .request("room:lobby", "new_msg", json!({"text": "no body"}))
        .await;
    assert_eq!(reply.status, "error");
    assert_eq!(
        reply.response,
        json!({"reason": "invalid payload: missing field `body`"}).into()
    );
    client
        .refute_event("room:lobby", "phx_error", Duration::from_millis(100))
        .await;
    let reply = client
        .request("room:lobby", "new_msg", json!({"body": "ok"}))
        .await;
    assert_eq!(reply.status, "ok");
}

#[tokio::test(start_paused = true)]
async fn a_push_that_fails_is_an_error_reply_with_question_mark() {
    let endpoint = endpoint();
    let mut client = testing::connect(&endpoint, "/socket", &[("user", "dan")])
        .await
        .expect("connect");
    client.join("room:lobby", json!({})).await.expect("join");
    let reply = client
        .request("room:lobby", "push_long_event", json!({}))
        .await;
    assert_eq!(reply.status, "error");
    assert_eq!(
        reply.response,
        json!({"reason": "field `event` is 300 bytes long; binary frames allow at most 255"})
            .into()
    );
    client
        .refute_event("room:lobby", "phx_error", Duration::from_millis(100))
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_channel_without_handle_in_crashes_on_an_event_like_phoenix() {
    let endpoint = endpoint();
    let mut client = testing::connect(&endpoint, "/socket", &[("user", "erin")])
        .await
        .expect("connect");
    let joined = client.join("user:erin", json!({})).await.expect("join");
    assert_eq!(
        joined,
        json!({}).into(),
        "the default join accepts with {{}}"
    );
    client.push("user:erin", "anything", json!({})).await;
    client.assert_push("user:erin", "phx_error").await;
}

#[tokio::test(start_paused = true)]
async fn the_connect_callback_reads_typed_params_and_state() {
    let endpoint = endpoint();
    let refused = testing::connect(&endpoint, "/socket", &[("name", "no user")]).await;
    assert!(refused.is_err(), "params without `user` are refused");
    let no_state = Endpoint::builder()
        .socket("/socket", Socket::new().connect(connect))
        .build();
    let refused = testing::connect(&no_state, "/socket", &[("user", "dave")]).await;
    assert!(refused.is_err(), "no Motd in the state: refused");
}

#[tokio::test(start_paused = true)]
async fn a_channel_broadcasts_to_another_topic() {
    let endpoint = endpoint();
    let mut admin = testing::connect(&endpoint, "/socket", &[("user", "admin")])
        .await
        .expect("connect");
    let mut erin = testing::connect(&endpoint, "/socket", &[("user", "erin")])
        .await
        .expect("connect");
    admin.join("room:admin", json!({})).await.expect("join");
    assert_eq!(
        erin.join("user:erin", json!({})).await,
        Ok(Payload::empty())
    );
    admin.push("room:admin", "tell_user", json!("erin")).await;
    assert_eq!(
        erin.assert_broadcast("user:erin", "revoked").await,
        Payload::empty()
    );
}

#[tokio::test(start_paused = true)]
async fn disconnect_ends_every_socket_with_the_id_and_kill_ends_only_this_one() {
    let endpoint = endpoint();
    let mut first = testing::connect(&endpoint, "/socket", &[("user", "frank")])
        .await
        .expect("connect");
    let mut second = testing::connect(&endpoint, "/socket", &[("user", "frank")])
        .await
        .expect("connect");
    let mut other = testing::connect(&endpoint, "/socket", &[("user", "gina")])
        .await
        .expect("connect");
    first.join("room:a", json!({})).await.expect("join");
    first.push("room:a", "disconnect_me", json!({})).await;
    assert_eq!(first.assert_closed().await, "disconnected");
    assert_eq!(second.assert_closed().await, "disconnected");

    let mut third = testing::connect(&endpoint, "/socket", &[("user", "frank")])
        .await
        .expect("connect");
    third.join("room:a", json!({})).await.expect("join");
    third.push("room:a", "kill_me", json!({})).await;
    assert_eq!(third.assert_closed().await, "killed");
    // Gina, another id, is untouched.
    other.join("room:a", json!({})).await.expect("join");
    let reply = other
        .request("room:a", "new_msg", json!({"body": "still here"}))
        .await;
    assert_eq!(reply.status, "ok");
}

/// Over a real websocket: kill drops the connection with no close frame,
/// where a `disconnect` sends 1001.
#[tokio::test]
async fn kill_drops_the_websocket_with_no_close_frame() {
    let server = support::Server::start_endpoint(endpoint()).await;
    let mut client = support::Client::connect(&server.url("vsn=2.0.0&user=hal")).await;
    client.join("room:k", "1").await;
    client
        .send_json(json!(["1", "2", "room:k", "kill_me", {}]))
        .await;
    client.recv_drop_without_close().await;

    let mut client = support::Client::connect(&server.url("vsn=2.0.0&user=ivy")).await;
    client.join("room:k", "1").await;
    client
        .send_json(json!(["1", "2", "room:k", "disconnect_me", {}]))
        .await;
    assert_eq!(client.recv_close_strict().await, Some(1001));
}

/// An application that accepts connections itself (here wrapping each
/// stream in a buffer) hands them to the endpoint one by one.
#[tokio::test]
async fn an_already_accepted_stream_is_served() {
    let endpoint = endpoint();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serving = endpoint.clone();
    let accept = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            serving.serve_connection(tokio::io::BufStream::new(stream), peer);
        }
    });
    let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&user=jo");
    let mut client = support::Client::connect(&url).await;
    client.join("room:wrapped", "1").await;
    client
        .send_json(json!(["1", "2", "room:wrapped", "new_msg", {"body": "x"}]))
        .await;
    let mut saw_reply = false;
    for _ in 0..2 {
        let frame = client.recv_json().await;
        if frame[3] == "phx_reply" {
            assert_eq!(frame[4], json!({"status": "ok", "response": {"body": "X"}}));
            saw_reply = true;
        }
    }
    assert!(saw_reply, "the push was answered");
    accept.abort();
}

/// Over a real websocket, frame by frame: what `join` pushed comes right
/// after the `ok` join reply, then the diff of its presence track; a
/// refused join's pushes are never sent (Phoenix's after_join, without the
/// `handle_info`).
#[tokio::test]
async fn pushes_from_join_follow_the_join_reply_and_a_refused_join_sends_none() {
    let server = support::Server::start_endpoint(endpoint()).await;
    let mut client = support::Client::connect(&server.url("vsn=2.0.0&user=kim")).await;
    client
        .send_json(json!(["1", "1", "greet:hall", "phx_join", {}]))
        .await;
    let mut frames = Vec::new();
    for _ in 0..4 {
        frames.push(client.recv_json().await);
    }
    let names: Vec<&str> = frames.iter().filter_map(|f| f[3].as_str()).collect();
    assert_eq!(
        names,
        ["phx_reply", "welcome", "presence_state", "presence_diff"],
        "{frames:?}"
    );
    assert_eq!(frames[0][4]["status"], "ok");
    assert_eq!(frames[1][4], json!({"topic": "greet:hall"}));
    assert_eq!(
        frames[2][4]["user_socket:kim"]["metas"][0]["online"],
        json!(true)
    );
    assert!(frames[3][4]["joins"]["user_socket:kim"].is_object());

    for (join_ref, params, reason) in [
        ("2", json!({"refuse": true}), "refused"),
        (
            "3",
            json!({"bad_meta": true}),
            "presence meta must be a JSON object",
        ),
    ] {
        client
            .send_json(json!([
                join_ref,
                join_ref,
                "greet:refused",
                "phx_join",
                params
            ]))
            .await;
        let reply = client.recv_json().await;
        assert_eq!(reply[3], "phx_reply", "{reply}");
        assert_eq!(
            reply[4],
            json!({"status": "error", "response": {"reason": reason}})
        );
        // The next frame answers a heartbeat sent now: nothing was pushed.
        client
            .send_json(json!([null, "hb", "phoenix", "heartbeat", {}]))
            .await;
        let next = client.recv_json().await;
        assert_eq!(next[2], "phoenix", "a push from a refused join: {next}");
    }
}

/// `push_presence_state` in `join` takes the list after the join reply,
/// once the channel is subscribed: a change published between the `join`
/// call and the subscription is in it (a list taken in `join` would miss
/// it, and its diff went out before the channel could receive it).
#[tokio::test]
async fn presence_state_asked_in_join_lists_a_change_made_before_the_subscription() {
    let server = support::Server::start_endpoint(endpoint()).await;
    let mut client = support::Client::connect(&server.url("vsn=2.0.0&user=lee")).await;
    client.join("race:1", "1").await;
    let state = client.recv_json().await;
    assert_eq!(state[3], "presence_state", "{state}");
    let keys: Vec<&String> = state[4].as_object().expect("a list").keys().collect();
    assert_eq!(keys, ["late", "me"], "{state}");
}
