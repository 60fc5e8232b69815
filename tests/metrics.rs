//! End-to-end: `/metrics` of a library endpoint: served only when enabled,
//! behind its bearer secret when one is set, and the counters that the
//! phoenix.js test cannot provoke (slow clients evicted, rejected frames)
//! move as clients misbehave.

mod support;

use std::time::Duration;

use fawkes::endpoint::{BearerSecret, MetricsOptions};
use fawkes::{Endpoint, Payload, Socket, SocketOptions};
use futures_util::SinkExt;
use serde_json::json;
use support::{Client, Server, TestChannel};
use tokio_tungstenite::tungstenite::Message;

/// `GET /metrics` with an optional `Authorization` header: status and body.
async fn scrape(server: &Server, authorization: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = authorization
        .map(|v| ("authorization", v))
        .into_iter()
        .collect();
    let (status, _, body) =
        support::binary::get_with(server.addr.port(), "/metrics", &headers).await;
    (status, body)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

fn endpoint(options: SocketOptions, metrics: MetricsOptions) -> Endpoint {
    let socket = Socket::new()
        .channel("room:*", TestChannel::default)
        .options(options);
    Endpoint::builder()
        .socket("/socket", socket)
        .metrics(metrics)
        .build()
}

#[tokio::test]
async fn metrics_are_off_by_default_in_the_library_and_guarded_by_a_secret() {
    let off = Server::start(SocketOptions::default()).await;
    assert_eq!(scrape(&off, None).await.0, 404);

    let secret = BearerSecret::new("scrape-me").expect("secret");
    let metrics = MetricsOptions {
        enabled: true,
        secret: Some(secret),
    };
    let guarded = Server::start_endpoint(endpoint(SocketOptions::default(), metrics)).await;
    assert_eq!(scrape(&guarded, None).await.0, 401);
    assert_eq!(scrape(&guarded, Some("Bearer nope")).await.0, 401);
    let (status, text) = scrape(&guarded, Some("Bearer scrape-me")).await;
    assert_eq!(status, 200);
    assert_eq!(value(&text, "fawkes_draining"), Some(0.0), "{text}");
}

// One thread: the broadcasts below all land before the slow client's
// connection task can write any of them.
#[tokio::test(flavor = "current_thread")]
async fn slow_clients_and_rejected_frames_are_counted() {
    let options = SocketOptions {
        outbound_capacity: 4,
        ..SocketOptions::default()
    };
    let metrics = MetricsOptions {
        enabled: true,
        secret: None,
    };
    let server = Server::start_endpoint(endpoint(options, metrics)).await;
    let text = scrape(&server, None).await.1;
    assert_eq!(value(&text, "fawkes_slow_clients_evicted_total"), Some(0.0));

    let mut slow = Client::connect(&server.url("vsn=2.0.0")).await;
    slow.join("room:slow", "1").await;
    for i in 0..50 {
        let payload = Payload::Json(json!({ "i": i }));
        server
            .endpoint
            .pubsub()
            .broadcast("room:slow", "tick", payload);
    }
    // Frames may come first; the close says why.
    assert_eq!(slow.recv_close().await, Some(1008));

    let mut garbled = Client::connect(&server.url("vsn=2.0.0")).await;
    garbled.send_text("not json").await;
    assert_eq!(garbled.recv_close().await, Some(1011));

    let mut not_utf8 = Client::connect(&server.url("vsn=2.0.0")).await;
    {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        let frame = Frame::message(b"\xff".to_vec(), OpCode::Data(Data::Text), true);
        not_utf8.ws.send(Message::Frame(frame)).await.expect("send");
    }
    assert_eq!(not_utf8.recv_close().await, Some(1007));

    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&server, None).await.1;
        if value(
            &text,
            "fawkes_frames_rejected_total{reason=\"invalid_utf8\"}",
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        value(&text, "fawkes_slow_clients_evicted_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "fawkes_frames_rejected_total{reason=\"invalid_frame\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "fawkes_frames_rejected_total{reason=\"invalid_utf8\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "fawkes_connections{transport=\"websocket\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "fawkes_broadcasts_total"),
        Some(50.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_binary_broadcast_a_v1_client_cannot_read_is_counted_and_it_lives_on() {
    let server = Server::start(SocketOptions::default()).await;
    let mut v1 = Client::connect(&server.url("vsn=1.0.0")).await;
    v1.send_json(json!({"topic": "room:v1", "event": "phx_join", "payload": {}, "ref": "1"}))
        .await;
    assert_eq!(v1.recv_json().await["payload"]["status"], "ok");
    let mut v2 = Client::connect(&server.url("vsn=2.0.0")).await;
    v2.join("room:v1", "1").await;
    let pubsub = server.endpoint.pubsub();
    let bytes = bytes::Bytes::from_static(&[1, 2, 3]);
    pubsub.broadcast("room:v1", "bytes", Payload::Binary(bytes));
    pubsub.broadcast("room:v1", "text", Payload::Json(json!({"after": "binary"})));
    // V2 reads both; V1 only the text, and the binary one is counted.
    assert!(matches!(
        tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut v2.ws)
        )
        .await,
        Ok(Some(Ok(Message::Binary(_))))
    ));
    assert_eq!(v2.recv_json().await[3], "text");
    let text = v1.recv_json().await;
    assert_eq!(text["event"], "text", "{text}");
    assert_eq!(pubsub.counters().undeliverable_frames(), 1);
    assert_eq!(pubsub.counters().deliveries(), 3);
}
