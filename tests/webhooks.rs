//! `fawkes serve` with webhooks to a real HTTP backend started by the test:
//! connect, join and handle_in decided by the backend, signed requests, and
//! clear client-visible errors when the backend is slow, down or answers
//! nonsense.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::backend::{Answer, Backend};
use support::binary::{ws_status, Fawkes};
use support::Client;

const SECRET: &str = "whsec-test";
/// The webhook timeout configured for these tests.
const TIMEOUT_MS: u64 = 2000;

fn answer(status: u16, body: Value) -> Answer {
    Box::pin(async move { (status, body.to_string()) })
}

/// The test backend: allows token `good` (user u1, "Ann"), allows
/// `room:allowed`, denies `room:denied`, never answers `room:slow`, answers
/// nonsense for `room:garbage` and a 500 for `room:500`; echoes `shout`.
async fn backend() -> Backend {
    Backend::start(SECRET, |path, body| match path.as_str() {
        "/connect" => {
            if body["params"]["token"] == "good" {
                answer(
                    200,
                    json!({"status": "ok", "assigns": {"user_id": "u1", "name": "Ann"}, "id": "users_socket:u1"}),
                )
            } else {
                answer(200, json!({"status": "error"}))
            }
        }
        "/join" => match body["topic"].as_str().unwrap_or_default() {
            "room:allowed" => answer(
                200,
                json!({"status": "ok", "response": {"welcome": body["assigns"]["name"]}}),
            ),
            "room:denied" => answer(
                200,
                json!({"status": "error", "response": {"reason": "not a member"}}),
            ),
            "room:slow" => Box::pin(std::future::pending()),
            "room:garbage" => Box::pin(async { (200, "<html>not json</html>".to_owned()) }),
            _ => answer(500, json!({})),
        },
        "/event" => answer(
            200,
            json!({
                "status": "ok",
                "response": {"heard": body["payload"]},
                "broadcast": {"event": "shouted", "payload": {"by": body["assigns"]["user_id"], "text": body["payload"]["text"]}}
            }),
        ),
        _ => answer(404, json!({})),
    })
    .await
}

fn config(backend: &Backend, dead: &str) -> String {
    format!(
        r#"
[[socket]]
path = "/socket"
[socket.webhook]
secret = "{SECRET}"
timeout_ms = {TIMEOUT_MS}
max_concurrency = 8
connect = "{connect}"

[[socket.topic]]
pattern = "room:*"
presence = true
presence_key = "user_id"
[socket.topic.webhook]
join = "{join}"
handle_in = "{event}"
events = ["shout"]

[[socket.topic]]
pattern = "dead:*"
[socket.topic.webhook]
join = "{dead}/join"

[[socket]]
path = "/down"
[socket.webhook]
secret = "{SECRET}"
connect = "{dead}/connect"
[[socket.topic]]
pattern = "room:*"
"#,
        connect = backend.url("/connect"),
        join = backend.url("/join"),
        event = backend.url("/event"),
    )
}

/// A URL nobody listens on.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

async fn start() -> (Backend, Fawkes) {
    let backend = backend().await;
    let fawkes = Fawkes::start(Some(&config(&backend, &dead_url().await)), &[]).await;
    (backend, fawkes)
}

/// Send a join and return its reply's `[status, response]`.
async fn join(client: &mut Client, topic: &str, join_ref: &str, params: Value) -> (String, Value) {
    client
        .send_json(json!([join_ref, join_ref, topic, "phx_join", params]))
        .await;
    reply_to(client, join_ref).await
}

/// The next reply with `ref_`, skipping other frames.
async fn reply_to(client: &mut Client, ref_: &str) -> (String, Value) {
    loop {
        let frame = client.recv_json().await;
        if frame[3] == "phx_reply" && frame[1] == ref_ {
            let status = frame[4]["status"].as_str().unwrap_or_default().to_owned();
            return (status, frame[4]["response"].clone());
        }
    }
}

/// The payload of the next `event` frame.
async fn next_event(client: &mut Client, event: &str) -> Value {
    loop {
        let frame = client.recv_json().await;
        if frame[3] == event {
            return frame[4].clone();
        }
    }
}

fn all_signed(backend: &Backend) {
    let received = backend.received();
    assert!(!received.is_empty());
    assert!(received.iter().all(|r| r.signed), "{received:?}");
}

#[tokio::test]
async fn the_connect_webhook_decides_and_sees_params_headers_and_address() {
    let (backend, fawkes) = start().await;
    assert_eq!(
        ws_status(&fawkes.ws_url("vsn=2.0.0&token=bad"), &[]).await,
        403
    );
    assert_eq!(
        ws_status(&fawkes.ws_url("vsn=2.0.0&token=good"), &[("x-app", "7")]).await,
        101
    );
    let connects: Vec<_> = backend
        .received()
        .into_iter()
        .filter(|r| r.path == "/connect")
        .collect();
    assert_eq!(connects.len(), 2, "{connects:?}");
    let good = &connects[1].body;
    assert_eq!(good["type"], "connect");
    assert_eq!(good["socket"], "/socket");
    assert_eq!(good["params"]["token"], "good");
    assert_eq!(good["headers"]["x-app"], "7");
    let remote = good["remote_addr"].as_str().unwrap_or_default();
    assert!(remote.starts_with("127.0.0.1:"), "{good}");
    all_signed(&backend);
    fawkes.stop().await;
}

#[tokio::test]
async fn the_join_webhook_allows_one_topic_and_denies_another_with_a_reason() {
    let (backend, fawkes) = start().await;
    let mut client = Client::connect(&fawkes.ws_url("vsn=2.0.0&token=good")).await;
    let (status, response) = join(&mut client, "room:denied", "1", json!({})).await;
    assert_eq!(
        (status.as_str(), response),
        ("error", json!({"reason": "not a member"}))
    );
    // the join param `user` cannot pick the presence key: it is the assign
    let (status, response) =
        join(&mut client, "room:allowed", "2", json!({"user": "mallory"})).await;
    assert_eq!(
        (status.as_str(), response),
        ("ok", json!({"welcome": "Ann"}))
    );
    let state = next_event(&mut client, "presence_state").await;
    let keys: Vec<_> = state
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["u1"], "{state}");
    let join = backend
        .received()
        .into_iter()
        .find(|r| r.path == "/join" && r.body["topic"] == "room:allowed")
        .expect("the allowed join was asked");
    assert_eq!(join.body["type"], "join");
    assert_eq!(join.body["params"], json!({"user": "mallory"}));
    assert_eq!(
        join.body["assigns"],
        json!({"user_id": "u1", "name": "Ann"})
    );
    all_signed(&backend);
    fawkes.stop().await;
}

#[tokio::test]
async fn a_slow_backend_is_a_join_error_after_the_timeout_and_others_go_on() {
    let (backend, fawkes) = start().await;
    let mut slow = Client::connect(&fawkes.ws_url("vsn=2.0.0&token=good")).await;
    let started = Instant::now();
    slow.send_json(json!(["1", "1", "room:slow", "phx_join", {}]))
        .await;
    // wait until the backend holds the slow request
    for _ in 0..200 {
        if backend
            .received()
            .iter()
            .any(|r| r.body["topic"] == "room:slow")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // another client connects and joins meanwhile
    let mut other = Client::connect(&fawkes.ws_url("vsn=2.0.0&token=good")).await;
    let (status, _) = join(&mut other, "room:allowed", "1", json!({})).await;
    assert_eq!(status, "ok");
    let (status, response) = reply_to(&mut slow, "1").await;
    assert_eq!(
        (status.as_str(), response),
        ("error", json!({"reason": "backend timeout"}))
    );
    assert!(
        started.elapsed() >= Duration::from_millis(TIMEOUT_MS),
        "the error came before the timeout: {:?}",
        started.elapsed()
    );
    assert!(fawkes.logged("join webhook failed").await);
    // the slow client's socket still works
    let (status, _) = join(&mut slow, "room:allowed", "2", json!({})).await;
    assert_eq!(status, "ok");
    fawkes.stop().await;
}

#[tokio::test]
async fn malformed_answers_and_http_errors_are_error_replies_and_log_lines() {
    let (_backend, fawkes) = start().await;
    let mut client = Client::connect(&fawkes.ws_url("vsn=2.0.0&token=good")).await;
    let (status, response) = join(&mut client, "room:garbage", "1", json!({})).await;
    assert_eq!(
        (status.as_str(), response),
        ("error", json!({"reason": "backend error"}))
    );
    assert!(
        fawkes.logged("malformed backend answer").await,
        "{:?}",
        fawkes.log()
    );
    let (status, response) = join(&mut client, "room:500", "2", json!({})).await;
    assert_eq!(
        (status.as_str(), response),
        ("error", json!({"reason": "backend error"}))
    );
    assert!(fawkes.logged("backend answered HTTP 500").await);
    let (status, _) = join(&mut client, "room:allowed", "3", json!({})).await;
    assert_eq!(status, "ok");
    fawkes.stop().await;
}

#[tokio::test]
async fn a_backend_that_is_down_refuses_connects_and_joins_clearly() {
    let (_backend, fawkes) = start().await;
    let down = format!("ws://127.0.0.1:{}/down/websocket?vsn=2.0.0", fawkes.port);
    assert_eq!(ws_status(&down, &[]).await, 403);
    assert!(fawkes.logged("connect webhook failed").await);
    let mut client = Client::connect(&fawkes.ws_url("vsn=2.0.0&token=good")).await;
    let (status, response) = join(&mut client, "dead:1", "1", json!({})).await;
    assert_eq!(
        (status.as_str(), response),
        ("error", json!({"reason": "backend unavailable"}))
    );
    fawkes.stop().await;
}

#[tokio::test]
async fn handle_in_replies_with_the_backend_answer_and_broadcasts_what_it_asks() {
    let (backend, fawkes) = start().await;
    let mut alice = Client::connect(&fawkes.ws_url("vsn=2.0.0&token=good")).await;
    let mut bob = Client::connect(&fawkes.ws_url("vsn=2.0.0&token=good")).await;
    assert_eq!(
        join(&mut alice, "room:allowed", "1", json!({})).await.0,
        "ok"
    );
    assert_eq!(join(&mut bob, "room:allowed", "1", json!({})).await.0, "ok");
    alice
        .send_json(json!(["1", "2", "room:allowed", "shout", {"text": "hi"}]))
        .await;
    // alice gets the reply and the broadcast (the broadcast may come first)
    let (mut reply, mut shouted) = (None, None);
    while reply.is_none() || shouted.is_none() {
        let frame = alice.recv_json().await;
        if frame[3] == "phx_reply" && frame[1] == "2" {
            reply = Some(frame[4].clone());
        } else if frame[3] == "shouted" {
            shouted = Some(frame[4].clone());
        }
    }
    assert_eq!(
        reply,
        Some(json!({"status": "ok", "response": {"heard": {"text": "hi"}}}))
    );
    assert_eq!(shouted, Some(json!({"by": "u1", "text": "hi"})));
    assert_eq!(
        next_event(&mut bob, "shouted").await,
        json!({"by": "u1", "text": "hi"})
    );
    let event = backend
        .received()
        .into_iter()
        .find(|r| r.path == "/event")
        .expect("the event was sent");
    assert_eq!(event.body["type"], "handle_in");
    assert_eq!(event.body["topic"], "room:allowed");
    assert_eq!(event.body["event"], "shout");
    // an event the topic neither relays nor sends to the backend
    alice
        .send_json(json!(["1", "3", "room:allowed", "other", {}]))
        .await;
    assert_eq!(reply_to(&mut alice, "3").await.0, "error");
    all_signed(&backend);
    fawkes.stop().await;
}

#[tokio::test]
async fn a_config_with_topic_webhooks_but_no_socket_backend_does_not_start() {
    let config = "[[socket]]\npath = \"/socket\"\n[[socket.topic]]\npattern = \"room:*\"\n[socket.topic.webhook]\njoin = \"http://127.0.0.1:9/join\"\n";
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fawkes"))
        .args(["serve", "--port", "0", "--config", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut child = output;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(config.as_bytes()).await.expect("write");
    }
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no [socket.webhook] section"), "{stderr}");
}
