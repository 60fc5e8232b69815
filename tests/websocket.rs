//! End-to-end: the websocket transport, crash isolation, bad input and slow
//! clients, against an in-process endpoint.

mod support;

use std::time::Duration;

use fawkes::{Payload, SocketOptions};
use futures_util::SinkExt;
use serde_json::json;
use support::{Client, Server};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_panicking_channel_errors_its_topic_only() {
    let server = Server::start(SocketOptions::default()).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:a", "1").await;
    client.join("room:b", "2").await;

    client
        .send_json(json!(["1", "3", "room:a", "crash", {}]))
        .await;
    assert_eq!(
        client.recv_json().await,
        json!(["1", "1", "room:a", "phx_error", {"reason": "channel_crash"}])
    );

    client
        .send_json(json!(["2", "4", "room:b", "echo", {"still": "here"}]))
        .await;
    assert_eq!(
        client.recv_json().await,
        json!(["2", "4", "room:b", "phx_reply", {"status": "ok", "response": {"still": "here"}}])
    );
    // The crashed topic is gone: a push there is an unmatched topic.
    client
        .send_json(json!(["1", "5", "room:a", "echo", {}]))
        .await;
    assert_eq!(
        client.recv_json().await,
        json!([null, "5", "room:a", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
}

#[tokio::test]
async fn a_busy_channel_blocks_neither_its_socket_nor_its_other_channels() {
    let server = Server::start(SocketOptions::default()).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:slow", "1").await;
    client.join("room:fast", "2").await;

    client
        .send_json(json!(["1", "3", "room:slow", "sleep", {"ms": 1500}]))
        .await;
    client
        .send_json(json!(["2", "4", "room:fast", "echo", {"n": 1}]))
        .await;
    client
        .send_json(json!([null, "5", "phoenix", "heartbeat", {}]))
        .await;
    // Both answers come while room:slow is still sleeping, in either order.
    let mut early = vec![client.recv_json().await, client.recv_json().await];
    early.sort_by_key(|frame| frame[1].as_str().map(str::to_owned));
    assert_eq!(
        early,
        vec![
            json!(["2", "4", "room:fast", "phx_reply", {"status": "ok", "response": {"n": 1}}]),
            json!([null, "5", "phoenix", "phx_reply", {"status": "ok", "response": {}}]),
        ]
    );
    assert_eq!(
        client.recv_json().await,
        json!(["1", "3", "room:slow", "phx_reply", {"status": "ok", "response": {"ms": 1500}}])
    );
}

#[tokio::test]
async fn messages_for_a_busy_channel_are_handled_in_order_after_it() {
    let server = Server::start(SocketOptions::default()).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:a", "1").await;
    client
        .send_json(json!(["1", "2", "room:a", "sleep", {"ms": 300}]))
        .await;
    for n in 3..8 {
        client
            .send_json(json!(["1", n.to_string(), "room:a", "echo", {"n": n}]))
            .await;
    }
    let first = client.recv_json().await;
    assert_eq!(
        first[1],
        json!("2"),
        "the sleeping push replies first: {first}"
    );
    for n in 3..8 {
        assert_eq!(
            client.recv_json().await,
            json!(["1", n.to_string(), "room:a", "phx_reply", {"status": "ok", "response": {"n": n}}])
        );
    }
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let server = Server::start(SocketOptions::default()).await;
    let mut healthy = Client::connect(&server.url("vsn=2.0.0")).await;
    healthy.join("room:lobby", "1").await;

    let bad_frames: Vec<Message> = vec![
        Message::text("this is not json"),
        Message::text(r#"["1","1","room:lobby"]"#),
        Message::text(r#"{"topic":"room:lobby"}"#),
        Message::text(r#"["1","1",42,"phx_join",{}]"#),
        Message::binary(vec![7u8, 0, 0, 0, 0]),
        Message::binary(vec![0u8, 5]),
    ];
    for frame in bad_frames {
        let mut bad = Client::connect(&server.url("vsn=2.0.0")).await;
        bad.ws.send(frame.clone()).await.expect("send");
        assert_eq!(bad.recv_close().await, Some(1011), "frame {frame:?}");
    }
    // A binary frame on the V1 serializer is refused the same way.
    let mut v1 = Client::connect(&server.url("vsn=1.0.0")).await;
    v1.ws
        .send(Message::binary(vec![0u8, 0, 0, 0, 0]))
        .await
        .expect("send");
    assert_eq!(v1.recv_close().await, Some(1011));

    healthy
        .send_json(json!(["1", "2", "room:lobby", "echo", {"ok": 1}]))
        .await;
    assert_eq!(healthy.recv_json().await[4]["response"], json!({"ok": 1}));
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let options = SocketOptions {
        max_frame_size: 1024,
        ..SocketOptions::default()
    };
    let server = Server::start(options).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    let huge = format!(
        r#"["1","1","room:x","phx_join",{{"pad":"{}"}}]"#,
        "x".repeat(4096)
    );
    client.send_text(&huge).await;
    assert_eq!(client.recv_close().await, Some(1009));

    let mut other = Client::connect(&server.url("vsn=2.0.0")).await;
    other.join("room:x", "1").await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let server = Server::start(SocketOptions::default()).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:x", "1").await;
    let mut other = Client::connect(&server.url("vsn=2.0.0")).await;
    other.join("room:x", "1").await;
    // A text frame whose payload is not UTF-8 (0xff never occurs in UTF-8).
    let bytes = b"[\"2\",\"2\",\"room:x\",\"echo\",\"\xff\xfe\"]".to_vec();
    let frame = Frame::message(bytes, OpCode::Data(Data::Text), true);
    client.ws.send(Message::Frame(frame)).await.expect("send");
    assert_eq!(client.recv_close().await, Some(1007));

    other
        .send_json(json!(["1", "2", "room:x", "echo", {"still": "here"}]))
        .await;
    assert_eq!(other.recv_json().await[4]["response"]["still"], "here");
}

#[tokio::test]
async fn unknown_vsn_is_refused_with_403() {
    let server = Server::start(SocketOptions::default()).await;
    for query in ["vsn=3.0.0", "vsn=banana"] {
        let error = tokio_tungstenite::connect_async(server.url(query))
            .await
            .expect_err("refused");
        match error {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), 403)
            }
            other => panic!("expected HTTP 403, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_and_others_keep_receiving() {
    let options = SocketOptions {
        outbound_capacity: 64,
        ..SocketOptions::default()
    };
    let server = Server::start(options).await;
    let pubsub = server.endpoint.pubsub().clone();

    // This client joins and then never reads again.
    let mut stuck = Client::connect(&server.url("vsn=2.0.0")).await;
    stuck.join("room:flood", "1").await;
    let mut reader = Client::connect(&server.url("vsn=2.0.0")).await;
    reader.join("room:flood", "1").await;
    assert_eq!(pubsub.subscriber_count("room:flood"), 2);

    let received = tokio::spawn(async move {
        let mut count = 0usize;
        while count < 2000 {
            let frame = reader.recv_json().await;
            if frame[3] == "big" {
                count += 1;
            }
        }
        (reader, count)
    });
    let pad = "x".repeat(16 * 1024);
    for i in 0..2000 {
        pubsub.broadcast(
            "room:flood",
            "big",
            Payload::Json(json!({"i": i, "pad": pad})),
        );
        if i % 16 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let (mut reader, count) = tokio::time::timeout(Duration::from_secs(20), received)
        .await
        .expect("reader finished")
        .expect("reader task");
    assert_eq!(count, 2000, "the reading client got every broadcast");
    // 2000 × 16 KiB cannot fit in the stuck client's socket buffers and
    // 64-frame queue: the server dropped it instead of buffering.
    assert_eq!(
        pubsub.subscriber_count("room:flood"),
        1,
        "the stuck client was disconnected"
    );
    reader
        .send_json(json!([null, "9", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(reader.recv_json().await[1], "9");
    drop(stuck);
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1012() {
    let mut server = Server::start(SocketOptions::default()).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:lobby", "1").await;
    server.shutdown();
    assert_eq!(client.recv_close().await, Some(1012));
    tokio::time::timeout(Duration::from_secs(6), &mut server.task)
        .await
        .expect("server stopped")
        .expect("serve task")
        .expect("serve ok");
}

#[tokio::test]
async fn disconnect_broadcast_closes_every_socket_of_that_id_with_1001() {
    use fawkes::{ConnectInfo, Connected, Endpoint, Socket};
    let socket = Socket::new()
        .connect(|info: ConnectInfo| async move {
            Ok(Connected {
                id: info.param("user").map(|u| format!("user:{u}")),
                ..Connected::default()
            })
        })
        .channel("room:*", support::TestChannel::default);
    let server =
        Server::start_endpoint(Endpoint::builder().socket("/socket", socket).build()).await;
    let mut a1 = Client::connect(&server.url("vsn=2.0.0&user=a")).await;
    let mut a2 = Client::connect(&server.url("vsn=2.0.0&user=a")).await;
    let mut b = Client::connect(&server.url("vsn=2.0.0&user=b")).await;
    a1.join("room:x", "1").await;
    a2.join("room:x", "1").await;
    b.join("room:x", "1").await;
    server
        .endpoint
        .pubsub()
        .broadcast("user:a", "disconnect", Payload::empty());
    assert_eq!(a1.recv_close().await, Some(1001));
    assert_eq!(a2.recv_close().await, Some(1001));
    b.send_json(json!([null, "2", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(b.recv_json().await[4]["status"], "ok");
}

/// The text a test's tracing subscriber writes.
#[derive(Clone, Default)]
struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Lines at `level` that contain `text`.
    fn lines_at(&self, level: &str, text: &str) -> usize {
        let buf = self.0.lock().expect("log buffer");
        String::from_utf8_lossy(&buf)
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(level) && line.contains(text))
            .count()
    }
}

#[tokio::test]
async fn refused_joins_are_not_logged_as_server_errors() {
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .without_time()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime has one thread: every task logs through this default.
    let _guard = tracing::subscriber::set_default(subscriber);

    let options = SocketOptions {
        max_channels: 1,
        ..SocketOptions::default()
    };
    let server = Server::start(options).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:0", "0").await;
    for i in 1..=300 {
        let (topic, reason) = if i % 2 == 0 {
            (format!("room:{i}"), "too many channels joined")
        } else {
            (format!("nowhere:{i}"), "unmatched topic")
        };
        let r = i.to_string();
        client.send_json(json!([r, r, topic, "phx_join", {}])).await;
        let reply = client.recv_json().await;
        assert_eq!(reply[4]["status"], "error", "{reply}");
        assert_eq!(reply[4]["response"]["reason"], reason, "{reply}");
    }
    assert_eq!(capture.lines_at("ERROR", ""), 0);
    assert_eq!(capture.lines_at("WARN", ""), 0);
    assert_eq!(
        capture.lines_at("INFO", "join refused"),
        1,
        "one INFO line per socket"
    );
}
