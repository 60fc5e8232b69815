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

/// Paused time: the channel's sleep ends only when every other task is
/// idle, so the order below does not depend on the machine's speed.
#[tokio::test(start_paused = true)]
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

/// Paused time: the channel's sleep ends only when every other task is
/// idle, so the order below does not depend on the machine's speed.
#[tokio::test(start_paused = true)]
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

/// The HTTP status of a websocket handshake to `url` with `origin`, or 101
/// when the upgrade succeeded.
async fn handshake_status(url: &str, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", origin.parse().expect("header value"));
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403() {
    let options = SocketOptions {
        check_origin: fawkes::socket::CheckOrigin::List(vec!["https://chat.example".into()]),
        ..SocketOptions::default()
    };
    let server = Server::start(options).await;
    let url = server.url("vsn=2.0.0");
    assert_eq!(handshake_status(&url, "https://evil.example").await, 403);
    assert_eq!(handshake_status(&url, "http://chat.example").await, 403);
    assert_eq!(handshake_status(&url, "https://chat.example").await, 101);

    let same_host = SocketOptions {
        check_origin: fawkes::socket::CheckOrigin::SameHost,
        ..SocketOptions::default()
    };
    let server = Server::start(same_host).await;
    let url = server.url("vsn=2.0.0");
    let own = format!("http://{}", server.addr);
    assert_eq!(
        handshake_status(&url, "http://elsewhere.example").await,
        403
    );
    assert_eq!(handshake_status(&url, &own).await, 101);
}

#[tokio::test]
async fn joins_beyond_max_channels_are_refused_and_the_socket_lives_on() {
    let options = SocketOptions {
        max_channels: 2,
        ..SocketOptions::default()
    };
    let server = Server::start(options).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:1", "1").await;
    client.join("room:2", "2").await;
    client
        .send_json(json!(["3", "3", "room:3", "phx_join", {}]))
        .await;
    assert_eq!(
        client.recv_json().await,
        json!(["3", "3", "room:3", "phx_reply", {"status": "error", "response": {"reason": "too many channels joined"}}])
    );
    // A duplicate join replaces its channel: not refused at the limit.
    client
        .send_json(json!(["4", "4", "room:2", "phx_join", {}]))
        .await;
    let mut frames = vec![client.recv_json().await, client.recv_json().await];
    frames.sort_by_key(|f| f[3].as_str().map(str::to_owned));
    assert_eq!(frames[0][3], "phx_close", "{frames:?}");
    assert_eq!(frames[1][4]["status"], "ok", "{frames:?}");
    // The joined channels still work; a leave frees a slot.
    client
        .send_json(json!(["1", "5", "room:1", "echo", {"still": 1}]))
        .await;
    assert_eq!(client.recv_json().await[4]["response"], json!({"still": 1}));
    client
        .send_json(json!(["1", "6", "room:1", "phx_leave", {}]))
        .await;
    let mut frames = vec![client.recv_json().await, client.recv_json().await];
    frames.sort_by_key(|f| f[3].as_str().map(str::to_owned));
    assert_eq!(frames[1][3], "phx_reply", "{frames:?}");
    client.join("room:3", "7").await;
}

/// The next close code, waiting up to `wait` (virtual time when paused).
async fn close_within(client: &mut Client, wait: Duration) -> Option<u16> {
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(wait, client.ws.next())
            .await
            .expect("a close frame in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Paused time: the default 60 s idle timeout passes in virtual time.
#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_with_1002_after_the_idle_timeout() {
    let server = Server::start(SocketOptions::default()).await;
    let idle = SocketOptions::default().idle_timeout;
    let mut silent = Client::connect(&server.url("vsn=2.0.0")).await;
    let mut talking = Client::connect(&server.url("vsn=2.0.0")).await;
    silent.join("room:idle", "1").await;
    talking.join("room:idle", "1").await;
    let started = tokio::time::Instant::now();
    let closed = tokio::spawn(async move {
        let code = close_within(&mut silent, idle * 2).await;
        (code, started.elapsed())
    });
    // The other client sends a heartbeat every half timeout: it stays.
    for n in 0..4 {
        tokio::time::sleep(idle / 2).await;
        talking
            .send_json(json!([null, n.to_string(), "phoenix", "heartbeat", {}]))
            .await;
        assert_eq!(talking.recv_json().await[1], n.to_string());
    }
    let (code, after) = closed.await.expect("silent client task");
    assert_eq!(code, Some(1002));
    assert_eq!(after, idle, "closed when the idle timeout passed");
}

/// Paused time: the close frame's 2 s send limit only passes when every
/// task is idle, so the reading below is never too slow.
#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_with_1008() {
    let options = SocketOptions {
        outbound_capacity: 8,
        ..SocketOptions::default()
    };
    let server = Server::start(options).await;
    let pubsub = server.endpoint.pubsub().clone();
    let mut stuck = Client::connect(&server.url("vsn=2.0.0")).await;
    stuck.join("room:slow", "1").await;
    let pad = "x".repeat(64 * 1024);
    let mut sent = 0;
    while pubsub.subscriber_count("room:slow") == 1 {
        assert!(sent < 10_000, "never disconnected");
        pubsub.broadcast("room:slow", "big", Payload::Json(json!({"pad": pad})));
        sent += 1;
        tokio::task::yield_now().await;
    }
    // Read what the socket buffers held; the close frame comes last.
    assert_eq!(
        close_within(&mut stuck, Duration::from_secs(5)).await,
        Some(1008)
    );
}
