//! End-to-end: a socket's rate limits. A client over its join rate gets a
//! join error reply with the reason; a client over its message rate is
//! closed with 1008; other clients are unaffected and a counter moves.

mod support;

use std::time::Duration;

use fawkes::socket::RateLimit;
use fawkes::{Endpoint, Socket, SocketOptions};
use futures_util::StreamExt;
use serde_json::json;
use support::{Client, Server, TestChannel};
use tokio_tungstenite::tungstenite::Message;

/// `burst` at once and, within a test, no more (one token an hour).
fn burst_only(burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        burst,
        refill_every: Duration::from_secs(3600),
    })
}

#[tokio::test]
async fn a_join_over_the_join_rate_gets_an_error_reply_and_others_join() {
    let socket = Socket::new()
        .channel("room:*", TestChannel::default)
        .options(SocketOptions {
            join_rate: burst_only(3),
            ..SocketOptions::default()
        });
    let counters = socket.limit_counters();
    let server =
        Server::start_endpoint(Endpoint::builder().socket("/socket", socket).build()).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    for i in 0..3 {
        client.join(&format!("room:{i}"), &i.to_string()).await;
    }
    client
        .send_json(json!(["9", "9", "room:9", "phx_join", {}]))
        .await;
    let reply = client.recv_json().await;
    assert_eq!(reply[4]["status"], "error", "{reply}");
    assert_eq!(reply[4]["response"]["reason"], "join rate limit exceeded");
    assert_eq!(counters.joins_rate_limited(), 1);

    // The refused client is still connected and its channels work.
    client
        .send_json(json!(["0", "10", "room:0", "echo", {"n": 1}]))
        .await;
    assert_eq!(client.recv_json().await[4]["response"]["n"], 1);
    // Another client has a bucket of its own.
    let mut other = Client::connect(&server.url("vsn=2.0.0")).await;
    other.join("room:9", "1").await;
}

#[tokio::test]
async fn a_client_over_the_message_rate_is_closed_with_1008_and_others_are_not() {
    let socket = Socket::new()
        .channel("room:*", TestChannel::default)
        .options(SocketOptions {
            message_rate: burst_only(10),
            ..SocketOptions::default()
        });
    let counters = socket.limit_counters();
    let server =
        Server::start_endpoint(Endpoint::builder().socket("/socket", socket).build()).await;
    let mut other = Client::connect(&server.url("vsn=2.0.0")).await;
    other.join("room:x", "1").await;
    let mut flood = Client::connect(&server.url("vsn=2.0.0")).await;
    flood.join("room:x", "1").await;
    // The join was the first of its 10 frames: 9 more pass, the 11th closes.
    for i in 0..11 {
        flood
            .send_json(json!(["1", i.to_string(), "room:x", "echo", {"i": i}]))
            .await;
    }
    // Replies still being handled when the connection closes are lost.
    let mut replies = 0;
    let code = loop {
        match tokio::time::timeout(support::WAIT, flood.ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(text))) => {
                let reply: serde_json::Value = serde_json::from_str(&text).expect("json");
                assert_eq!(reply[4]["response"]["i"], replies, "{reply}");
                replies += 1;
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, Some(1008));
    assert!(replies <= 9, "{replies} replies: the 11th frame passed");
    assert_eq!(counters.sessions_rate_limited(), 1);

    other
        .send_json(json!(["1", "2", "room:x", "echo", {"still": "here"}]))
        .await;
    assert_eq!(other.recv_json().await[4]["response"]["still"], "here");
}
