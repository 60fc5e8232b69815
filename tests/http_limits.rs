//! End-to-end: HTTP connections that send nothing, half a header or half a
//! body are closed after the read timeouts, and connections are capped per
//! remote address, without effect on other clients.

mod support;

use std::time::Duration;

use fawkes::endpoint::{handle_broadcast, HttpLimits, HttpRequest};
use fawkes::{Endpoint, Socket, SocketOptions};
use serde_json::json;
use support::{Client, Server, TestChannel, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short timeouts, so the tests do not wait for the production ones.
fn short_timeouts() -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    }
}

async fn start(limits: HttpLimits) -> Server {
    let socket = Socket::new()
        .channel("room:*", TestChannel::default)
        .options(SocketOptions::default());
    let builder = Endpoint::builder()
        .socket("/socket", socket)
        .http_limits(limits);
    let pubsub = builder.pubsub().clone();
    let endpoint = builder
        .handler(move |req: HttpRequest| {
            let pubsub = pubsub.clone();
            async move { handle_broadcast(&pubsub, req).await }
        })
        .build();
    Server::start_endpoint(endpoint).await
}

/// Send `bytes`, then read until the server closes; what it wrote. Fails if
/// the server keeps the connection open.
async fn send_and_read_to_close(server: &Server, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut read = Vec::new();
    let result = tokio::time::timeout(WAIT, stream.read_to_end(&mut read))
        .await
        .expect("the server closes the connection");
    // A reset is a close too.
    let _ = result;
    String::from_utf8_lossy(&read).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let server = start(short_timeouts()).await;
    send_and_read_to_close(&server, b"").await;
}

#[tokio::test]
async fn a_connection_that_sends_half_a_header_is_closed() {
    let server = start(short_timeouts()).await;
    send_and_read_to_close(
        &server,
        b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_connection_that_sends_half_a_body_gets_408_and_is_closed() {
    let server = start(short_timeouts()).await;
    let request = b"POST /api/broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"topic\":";
    let answer = send_and_read_to_close(&server, request).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn a_whole_request_is_still_answered() {
    let server = start(short_timeouts()).await;
    let body = r#"{"topic":"room:x","event":"e","payload":{}}"#;
    let request = format!(
        "POST /api/broadcast HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = send_and_read_to_close(&server, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_per_address_limit_are_closed_and_others_keep_working() {
    let limits = HttpLimits {
        max_connections_per_address: 3,
        ..HttpLimits::default()
    };
    let server = start(limits).await;
    let url = server.url("vsn=2.0.0");
    let mut first = Client::connect(&url).await;
    first.join("room:x", "1").await;
    let mut second = Client::connect(&url).await;
    second.join("room:x", "1").await;
    // A client that sends nothing holds the third place.
    let idle = TcpStream::connect(server.addr).await.expect("connect");
    wait_until(|| server.endpoint.open_connections() == 3).await;

    // The fourth is closed before anything is read.
    let answer = send_and_read_to_close(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(answer, "");
    assert!(tokio_tungstenite::connect_async(url.as_str())
        .await
        .is_err());
    assert!(server.endpoint.refused_connections() >= 2);

    // The websockets already open are unaffected.
    first
        .send_json(json!(["1", "2", "room:x", "echo", {"n": 1}]))
        .await;
    assert_eq!(first.recv_json().await[4]["response"]["n"], 1);

    // A freed place can be taken again.
    drop(idle);
    wait_until(|| server.endpoint.open_connections() == 2).await;
    let mut third = Client::connect(&url).await;
    third.join("room:x", "1").await;
    drop(second);
}

/// Poll `done` until it holds; fails after [`WAIT`].
async fn wait_until(done: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition in time");
}

#[tokio::test]
async fn health_and_ready_answer_200_by_default() {
    let server = start(HttpLimits::default()).await;
    for path in ["/health", "/ready"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = send_and_read_to_close(&server, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
}
