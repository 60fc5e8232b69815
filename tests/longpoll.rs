//! End-to-end tests of the LongPoll transport: a real endpoint on
//! 127.0.0.1, plain HTTP/1.1 requests, Phoenix's JSON status protocol.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fawkes::prelude::*;
use fawkes::socket::ConnectRefused;
use fawkes::{ConnectInfo, Connected, Endpoint, Socket, SocketOptions};
use http_body_util::{BodyExt as _, Full};
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What the test channels record: `"join <topic>"`, `"terminate <topic> <reason>"`.
type Log = Arc<Mutex<Vec<String>>>;

/// A tiny channel: joins with `{"topic": topic}`, replies to `echo`, records
/// joins and terminations.
struct TestChannel {
    log: Log,
    topic: String,
}

impl Channel for TestChannel {
    async fn join(
        &mut self,
        topic: &str,
        _params: Payload,
        _socket: &mut ChannelSocket,
    ) -> JoinResult {
        self.topic = topic.to_owned();
        self.log.lock().expect("log").push(format!("join {topic}"));
        Ok(Payload::Json(json!({"topic": topic})))
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        _socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "echo" => reply_ok(payload),
            _ => noreply(),
        }
    }

    async fn terminate(&mut self, reason: &TerminateReason, _socket: &mut ChannelSocket) {
        self.log
            .lock()
            .expect("log")
            .push(format!("terminate {} {reason:?}", self.topic));
    }
}

/// A running endpoint and what its channels logged; dropping it shuts the
/// server down.
struct Server {
    addr: SocketAddr,
    endpoint: Endpoint,
    log: Log,
    _running: support::Server,
}

/// Serve `/socket` (longpoll on, poll window `window`): `reject=1` and the
/// auth token `deny` are refused, the socket id is `user:<user_id>`.
async fn serve(window: Duration) -> Server {
    serve_with(SocketOptions {
        longpoll: true,
        longpoll_window: window,
        ..SocketOptions::default()
    })
    .await
}

/// [`serve`] with these socket options.
async fn serve_with(options: SocketOptions) -> Server {
    let log: Log = Arc::default();
    let factory_log = log.clone();
    let socket = Socket::new()
        .connect(|info: ConnectInfo| async move {
            if info.param("reject").is_some() || info.auth_token.as_deref() == Some("deny") {
                return Err(ConnectRefused);
            }
            let user = info.param("user_id").unwrap_or("anon").to_owned();
            let mut connected = Connected {
                id: Some(format!("user:{user}")),
                ..Connected::default()
            };
            connected
                .assigns
                .insert("user_id".into(), Value::String(user));
            Ok(connected)
        })
        .channel("room:*", move || TestChannel {
            log: factory_log.clone(),
            topic: String::new(),
        })
        .options(options);
    let running =
        support::Server::start_endpoint(Endpoint::builder().socket("/socket", socket).build())
            .await;
    Server {
        addr: running.addr,
        endpoint: running.endpoint.clone(),
        log,
        _running: running,
    }
}

/// One HTTP answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn lp_status(&self) -> u64 {
        self.json()["status"].as_u64().expect("status")
    }

    fn token(&self) -> String {
        self.json()["token"].as_str().expect("token").to_owned()
    }

    /// The `messages`, each parsed as a V2 JSON frame.
    fn messages(&self) -> Vec<Value> {
        self.json()["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                serde_json::from_str(m.as_str().expect("string message")).expect("JSON message")
            })
            .collect()
    }
}

/// Send one request on a fresh connection.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let stream = TcpStream::connect(addr).await.expect("connect");
    // Nagle off: nothing is held back waiting for an ACK (paused-time tests).
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let driver = tokio::spawn(connection);
    let response = sender.send_request(req).await.expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    driver.abort();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
    }
}

async fn get(addr: SocketAddr, query: &str) -> Answer {
    request(
        addr,
        "GET",
        &format!("/socket/longpoll?{query}"),
        &[("accept", "application/json")],
        "",
    )
    .await
}

async fn post(addr: SocketAddr, token: &str, body: &str) -> Answer {
    request(
        addr,
        "POST",
        &format!("/socket/longpoll?vsn=2.0.0&token={token}"),
        &[("content-type", "application/x-ndjson")],
        body,
    )
    .await
}

/// Open a session: its token.
async fn open(addr: SocketAddr) -> String {
    let answer = get(addr, "vsn=2.0.0&user_id=carol&").await;
    assert_eq!(answer.lp_status(), 410, "{}", answer.body);
    answer.token()
}

async fn poll(addr: SocketAddr, token: &str) -> Answer {
    get(addr, &format!("vsn=2.0.0&user_id=carol&token={token}")).await
}

/// Open a session and join `topic`, draining the join reply.
async fn joined(addr: SocketAddr, topic: &str) -> String {
    let token = open(addr).await;
    let join = format!(r#"["1","1","{topic}","phx_join",{{}}]"#);
    assert_eq!(
        post(addr, &token, &join).await.json(),
        json!({"status": 200})
    );
    let answer = poll(addr, &token).await;
    assert_eq!(answer.lp_status(), 200, "{}", answer.body);
    assert_eq!(answer.messages()[0][3], "phx_reply");
    token
}

/// Wait until `log` has an entry starting with `prefix` (a timeout turns a
/// missing entry into a failure).
async fn wait_for_log(log: &Log, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(entry) = log
            .lock()
            .expect("log")
            .iter()
            .find(|e| e.starts_with(prefix))
        {
            return entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} in {:?}",
            log.lock().expect("log")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_answers_410_with_a_token_and_phoenix_headers() {
    let server = serve(Duration::from_secs(10)).await;
    let answer = get(server.addr, "vsn=2.0.0&user_id=carol&").await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["status"], 410);
    assert_eq!(body["messages"], json!([]));
    assert!(!answer.token().is_empty());
    assert_eq!(
        answer.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    // Every new session gets its own token.
    assert_ne!(answer.token(), open(server.addr).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_then_poll_returns_the_reply() {
    let server = serve(Duration::from_secs(10)).await;
    let token = open(server.addr).await;
    let answer = post(
        server.addr,
        &token,
        r#"["1","1","room:lobby","phx_join",{}]"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({"status": 200}));
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    let answer = poll(server.addr, &token).await;
    assert_eq!(answer.lp_status(), 200);
    assert_eq!(answer.token(), token);
    assert_eq!(
        answer.messages(),
        vec![
            json!(["1", "1", "room:lobby", "phx_reply", {"status": "ok", "response": {"topic": "room:lobby"}}])
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_two_frames_is_answered_in_one_poll() {
    let server = serve(Duration::from_secs(10)).await;
    let token = joined(server.addr, "room:lobby").await;
    let batch = "[\"1\",\"2\",\"room:lobby\",\"echo\",{\"lp\":true}]\r\n[null,\"3\",\"phoenix\",\"heartbeat\",{}]";
    assert_eq!(
        post(server.addr, &token, batch).await.json(),
        json!({"status": 200})
    );
    // Paused time: this sleep ends only once every task is idle, i.e. both
    // replies are buffered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = poll(server.addr, &token).await;
    let mut messages = answer.messages();
    // The echo reply comes from the channel task, the heartbeat reply from
    // the session: Phoenix races them too (the recorded order, echo first,
    // is checked by the conformance replay); here only "one poll" matters.
    messages.sort_by_key(|m| m[1].as_str().map(str::to_owned));
    assert_eq!(
        messages,
        vec![
            json!(["1", "2", "room:lobby", "phx_reply", {"status": "ok", "response": {"lp": true}}]),
            json!([null, "3", "phoenix", "phx_reply", {"status": "ok", "response": {}}]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_poll_is_woken_by_a_broadcast() {
    let server = serve(Duration::from_secs(5)).await;
    let token = joined(server.addr, "room:news").await;
    let addr = server.addr;
    let waiting = tokio::spawn(async move { poll(addr, &token).await });
    // Paused time: this sleep ends once every task is idle, i.e. the poll
    // is waiting (its 5 s window has not passed: virtual time stands still
    // while anything runs).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let broadcast_at = Instant::now();
    server
        .endpoint
        .pubsub()
        .broadcast("room:news", "headline", Payload::Json(json!({"n": 1})));
    let answer = waiting.await.expect("poll");
    // A poll that was not woken would answer 204 at the end of its window.
    assert_eq!(broadcast_at.elapsed(), Duration::ZERO, "woken at once");
    assert_eq!(answer.lp_status(), 200);
    assert_eq!(
        answer.messages(),
        vec![json!([null, null, "room:news", "headline", {"n": 1}])]
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_poll_answers_204_after_the_window() {
    let window = Duration::from_millis(300);
    let server = serve(window).await;
    let token = open(server.addr).await;
    let started = Instant::now();
    let answer = poll(server.addr, &token).await;
    assert_eq!(
        answer.json(),
        json!({"status": 204, "token": token, "messages": []})
    );
    // Virtual (paused) time: exactly one window, whatever the machine's speed.
    assert_eq!(started.elapsed(), window);
}

#[tokio::test(start_paused = true)]
async fn a_newer_poll_supersedes_a_waiting_one() {
    let server = serve(Duration::from_secs(5)).await;
    let token = joined(server.addr, "room:lobby").await;
    let (addr, first_token) = (server.addr, token.clone());
    let first = tokio::spawn(async move { poll(addr, &first_token).await });
    // Paused time: ends once the first poll is waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second_at = Instant::now();
    let second = tokio::spawn(async move { poll(addr, &token).await });
    let first = first.await.expect("first poll");
    assert_eq!(first.lp_status(), 204);
    // Virtual time: answered when the second poll came, not after its window.
    assert_eq!(second_at.elapsed(), Duration::ZERO, "superseded at once");
    server
        .endpoint
        .pubsub()
        .broadcast("room:lobby", "hello", Payload::Json(json!({})));
    let second = second.await.expect("second poll");
    assert_eq!(
        second.messages(),
        vec![json!([null, null, "room:lobby", "hello", {}])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_tampered_tokens_are_gone() {
    let server = serve(Duration::from_millis(300)).await;
    let token = joined(server.addr, "room:lobby").await;
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() / 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for bad in [tampered.as_str(), "forged", "a.b", ""] {
        assert_eq!(
            post(server.addr, bad, r#"[null,"9","phoenix","heartbeat",{}]"#)
                .await
                .json(),
            json!({"status": 410})
        );
        let answer = poll(server.addr, bad).await;
        assert_eq!(answer.lp_status(), 410);
        assert_eq!(answer.json()["messages"], json!([]));
        assert_ne!(answer.token(), token);
    }
    // The real token still works.
    assert_eq!(
        post(
            server.addr,
            &token,
            r#"[null,"9","phoenix","heartbeat",{}]"#
        )
        .await
        .json(),
        json!({"status": 200})
    );
    assert_eq!(poll(server.addr, &token).await.messages()[0][1], "9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_header_wins_over_the_param() {
    let server = serve(Duration::from_millis(300)).await;
    let token = joined(server.addr, "room:lobby").await;
    let answer = request(
        server.addr,
        "POST",
        "/socket/longpoll?vsn=2.0.0&token=stale",
        &[
            ("content-type", "application/x-ndjson"),
            ("x-phoenix-longpoll-token", &token),
        ],
        r#"[null,"5","phoenix","heartbeat",{}]"#,
    )
    .await;
    assert_eq!(answer.json(), json!({"status": 200}));
    let answer = request(
        server.addr,
        "GET",
        "/socket/longpoll?vsn=2.0.0&token=stale",
        &[("x-phoenix-longpoll-token", &token)],
        "",
    )
    .await;
    assert_eq!(answer.lp_status(), 200);
    assert_eq!(answer.messages()[0][1], "5");
}

#[tokio::test(start_paused = true)]
async fn an_unpolled_session_expires_and_its_channels_terminate() {
    // Window 200 ms: a session nobody polls for 300 ms is closed.
    let server = serve(Duration::from_millis(200)).await;
    let token = joined(server.addr, "room:expiring").await;
    let entry = wait_for_log(&server.log, "terminate room:expiring").await;
    assert_eq!(entry, "terminate room:expiring Closed");
    assert_eq!(
        post(
            server.addr,
            &token,
            r#"[null,"1","phoenix","heartbeat",{}]"#
        )
        .await
        .json(),
        json!({"status": 410})
    );
    let answer = poll(server.addr, &token).await;
    assert_eq!(answer.lp_status(), 410);
    assert_ne!(answer.token(), token);
}

#[tokio::test(start_paused = true)]
async fn a_polled_session_stays_alive() {
    let server = serve(Duration::from_millis(200)).await;
    let token = joined(server.addr, "room:alive").await;
    // Six empty polls: 1.2 s of virtual time, four times the expiry.
    for _ in 0..6 {
        assert_eq!(poll(server.addr, &token).await.lp_status(), 204);
    }
    assert!(!server
        .log
        .lock()
        .expect("log")
        .iter()
        .any(|e| e.starts_with("terminate")));
    assert_eq!(
        post(
            server.addr,
            &token,
            r#"["1","2","room:alive","echo",{"x":1}]"#
        )
        .await
        .json(),
        json!({"status": 200})
    );
    assert_eq!(
        poll(server.addr, &token).await.messages()[0][4]["response"],
        json!({"x": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_broadcast_ends_the_session() {
    let server = serve(Duration::from_secs(5)).await;
    let token = joined(server.addr, "room:dc").await;
    server
        .endpoint
        .pubsub()
        .broadcast("user:carol", "disconnect", Payload::Json(json!({})));
    wait_for_log(&server.log, "terminate room:dc").await;
    let answer = poll(server.addr, &token).await;
    assert_eq!(answer.lp_status(), 410);
    assert_ne!(answer.token(), token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_answers_the_cors_preflight() {
    let server = serve(Duration::from_secs(10)).await;
    let answer = request(
        server.addr,
        "OPTIONS",
        "/socket/longpoll",
        &[(
            "access-control-request-headers",
            "content-type, x-phoenix-longpoll-token",
        )],
        "",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    assert_eq!(
        answer.headers["access-control-allow-headers"],
        "content-type, x-phoenix-longpoll-token"
    );
    assert_eq!(
        answer.headers["access-control-allow-methods"],
        "get, post, options"
    );
    assert_eq!(answer.headers["access-control-max-age"], "3600");
    let answer = request(server.addr, "DELETE", "/socket/longpoll", &[], "").await;
    assert_eq!(answer.status, 400);
}

/// Paused time: the 101 frames and the polls never outlast the session's
/// expiry (450 ms) on a loaded machine.
#[tokio::test(start_paused = true)]
async fn the_101st_ndjson_line_is_ignored() {
    let server = serve(Duration::from_millis(300)).await;
    let token = open(server.addr).await;
    let batch: Vec<String> = (1..=101)
        .map(|i| format!(r#"[null,"h{i}","phoenix","heartbeat",{{}}]"#))
        .collect();
    assert_eq!(
        post(server.addr, &token, &batch.join("\n")).await.json(),
        json!({"status": 200})
    );
    let mut refs = Vec::new();
    loop {
        let answer = poll(server.addr, &token).await;
        if answer.lp_status() == 204 {
            break;
        }
        refs.extend(
            answer
                .messages()
                .into_iter()
                .map(|m| m[1].as_str().expect("ref").to_owned()),
        );
    }
    let expected: Vec<String> = (1..=100).map(|i| format!("h{i}")).collect();
    assert_eq!(refs, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_ndjson_body_is_one_text_frame() {
    let server = serve(Duration::from_millis(300)).await;
    let token = open(server.addr).await;
    let answer = request(
        server.addr,
        "POST",
        &format!("/socket/longpoll?vsn=2.0.0&token={token}"),
        &[("content-type", "application/json")],
        "[null,\"j1\",\"phoenix\",\"heartbeat\",{}]",
    )
    .await;
    assert_eq!(answer.json(), json!({"status": 200}));
    assert_eq!(poll(server.addr, &token).await.messages()[0][1], "j1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connects_and_bad_versions_answer_403() {
    let server = serve(Duration::from_secs(10)).await;
    let answer = get(server.addr, "vsn=2.0.0&reject=1").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, r#"{"status":403}"#);
    assert_eq!(
        answer.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(
        get(server.addr, "vsn=123.1.1").await.json(),
        json!({"status": 403})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_token_header_reaches_connect() {
    let server = serve(Duration::from_secs(10)).await;
    let answer = request(
        server.addr,
        "GET",
        "/socket/longpoll?vsn=2.0.0",
        &[("x-phoenix-authtoken", "welcome")],
        "",
    )
    .await;
    assert_eq!(answer.lp_status(), 410);
    let answer = request(
        server.addr,
        "GET",
        "/socket/longpoll?vsn=2.0.0",
        &[("x-phoenix-authtoken", "deny")],
        "",
    )
    .await;
    assert_eq!(answer.json(), json!({"status": 403}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_a_bad_request() {
    let server = serve(Duration::from_secs(10)).await;
    let token = open(server.addr).await;
    let huge = "x".repeat(8_000_001);
    let answer = request(
        server.addr,
        "POST",
        &format!("/socket/longpoll?vsn=2.0.0&token={token}"),
        &[("content-type", "application/json")],
        &huge,
    )
    .await;
    assert_eq!(answer.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_with_403() {
    let server = serve_with(SocketOptions {
        longpoll: true,
        check_origin: fawkes::socket::CheckOrigin::List(vec!["https://chat.example".into()]),
        ..SocketOptions::default()
    })
    .await;
    let addr = server.addr;
    let open_from = |origin: &'static str| async move {
        request(
            addr,
            "GET",
            "/socket/longpoll?vsn=2.0.0",
            &[("origin", origin)],
            "",
        )
        .await
    };
    // Phoenix answers a refused longpoll as JSON: HTTP 200, {"status":403}.
    let refused = open_from("https://evil.example").await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.json(), json!({"status": 403}));
    let allowed = open_from("https://chat.example").await;
    assert_eq!(allowed.lp_status(), 410, "{}", allowed.body);
    // A valid session's token does not let a foreign origin publish.
    let token = allowed.token();
    let publish = request(
        server.addr,
        "POST",
        &format!("/socket/longpoll?vsn=2.0.0&token={token}"),
        &[
            ("content-type", "application/x-ndjson"),
            ("origin", "https://evil.example"),
        ],
        r#"[null,"1","phoenix","heartbeat",{}]"#,
    )
    .await;
    assert_eq!(publish.json(), json!({"status": 403}));
}

#[tokio::test(start_paused = true)]
async fn a_client_whose_buffer_fills_up_is_closed_as_a_slow_client() {
    let server = serve_with(SocketOptions {
        longpoll: true,
        outbound_capacity: 4,
        ..SocketOptions::default()
    })
    .await;
    let pubsub = server.endpoint.pubsub().clone();
    // Up to the buffer's capacity, frames wait for the next poll.
    let token = joined(server.addr, "room:full").await;
    for n in 0..4 {
        pubsub.broadcast("room:full", "news", Payload::Json(json!({"n": n})));
    }
    let answer = poll(server.addr, &token).await;
    let got: Vec<Value> = answer
        .messages()
        .iter()
        .map(|m| m[4]["n"].clone())
        .collect();
    assert_eq!(got, [0, 1, 2, 3].map(Value::from));
    // Nobody polls: the buffer (4) and then the session's queue (4) fill
    // up, and a frame more closes the session instead of growing memory.
    // Yielding lets the session move each frame into the buffer first.
    for n in 0..20 {
        pubsub.broadcast("room:full", "news", Payload::Json(json!({"n": n})));
        tokio::task::yield_now().await;
    }
    assert_eq!(
        wait_for_log(&server.log, "terminate room:full").await,
        "terminate room:full Closed"
    );
    assert_eq!(pubsub.subscriber_count("room:full"), 0);
    let answer = poll(server.addr, &token).await;
    assert_eq!(answer.lp_status(), 410, "the session is gone");
    assert_ne!(answer.token(), token);
}

#[tokio::test(start_paused = true)]
async fn binary_frames_are_dropped_for_a_longpoll_client_and_the_session_lives_on() {
    let server = serve(Duration::from_secs(5)).await;
    let pubsub = server.endpoint.pubsub().clone();
    let token = joined(server.addr, "room:bin").await;
    pubsub.broadcast(
        "room:bin",
        "bytes",
        Payload::Binary(Bytes::from_static(&[1, 2, 3])),
    );
    pubsub.broadcast(
        "room:bin",
        "text",
        Payload::Json(json!({"after": "binary"})),
    );
    // The documented outcome (src/transport/longpoll/session.rs): a
    // longpoll client cannot receive binary frames; they are not delivered,
    // but counted (and logged), never dropped silently.
    let answer = poll(server.addr, &token).await;
    assert_eq!(
        answer.messages(),
        vec![json!([null, null, "room:bin", "text", {"after": "binary"}])]
    );
    assert_eq!(pubsub.counters().undeliverable_frames(), 1);
    assert_eq!(
        post(
            server.addr,
            &token,
            r#"["1","2","room:bin","echo",{"x":1}]"#
        )
        .await
        .json(),
        json!({"status": 200})
    );
    assert_eq!(
        poll(server.addr, &token).await.messages()[0][4]["response"],
        json!({"x": 1})
    );
    assert!(!server
        .log
        .lock()
        .expect("log")
        .iter()
        .any(|e| e.starts_with("terminate")));
}
