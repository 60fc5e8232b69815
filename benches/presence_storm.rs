//! Presence storm: N tracks on one topic, then N untracks, watched by one
//! websocket subscriber. Prints the time until the subscriber has seen every
//! change and how many `presence_diff` frames (and bytes) it took, with and
//! without a batching window.
//!
//! `cargo bench --bench presence_storm` (N = 10,000). Under `cargo test` it
//! runs once with N = 200 as a smoke test. Every frame is awaited with a
//! timeout ([`FRAME_WAIT`]), so a lost diff fails the run instead of hanging
//! it.

use std::time::{Duration, Instant};

use fawkes::prelude::*;
use fawkes::presence::PresenceOptions;
use fawkes::{Endpoint, Socket};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Joins without tracking anything: a pure observer of the topic.
#[derive(Default)]
struct Observer;

impl Channel for Observer {
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        _socket: &mut ChannelSocket,
    ) -> JoinResult {
        Ok(Payload::empty())
    }
    async fn handle_in(
        &mut self,
        _event: &str,
        _payload: Payload,
        _socket: &mut ChannelSocket,
    ) -> HandleResult {
        noreply()
    }
}

/// How long the subscriber waits for its next frame before the run fails:
/// a guard against a lost `presence_diff`, not a measurement.
const FRAME_WAIT: Duration = Duration::from_secs(30);

/// The subscriber's next frame, or a panic naming what was awaited.
async fn next_frame<S>(ws: &mut S, what: &str) -> Message
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match tokio::time::timeout(FRAME_WAIT, ws.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(other) => panic!("subscriber lost while waiting for {what}: {other:?}"),
        Err(_) => {
            panic!("no frame within {FRAME_WAIT:?} while waiting for {what}: a diff was lost")
        }
    }
}

struct Outcome {
    elapsed: Duration,
    frames: usize,
    bytes: usize,
}

async fn storm(n: usize, window: Duration) -> (Outcome, Outcome) {
    let endpoint = Endpoint::builder()
        .socket(
            "/socket",
            Socket::new().channel("room:*", Observer::default),
        )
        .presence(PresenceOptions {
            batch_window: window,
        })
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(endpoint.clone().serve(listener, async {
        let _ = stopped.await;
    }));

    let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(Message::text(r#"["1","1","room:storm","phx_join",{}]"#))
        .await
        .expect("join");
    let _reply = next_frame(&mut ws, "the join reply").await;

    let presence = endpoint.presence().expect("presence").clone();
    let topic = "room:storm";
    let mut results = Vec::new();
    for phase in ["track", "untrack"] {
        let started = Instant::now();
        let producer = {
            let presence = presence.clone();
            tokio::spawn(async move {
                for i in 0..n {
                    let key = format!("user{i}");
                    if phase == "track" {
                        let mut meta = serde_json::Map::new();
                        meta.insert("online_at".into(), json!(i));
                        presence
                            .track(i as u64 + 1_000_000, topic, &key, meta)
                            .expect("track");
                    } else {
                        presence.untrack(i as u64 + 1_000_000, topic, &key);
                    }
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let (mut seen, mut frames, mut bytes) = (0usize, 0usize, 0usize);
        while seen < n {
            let Message::Text(text) = next_frame(&mut ws, "presence_diff frames").await else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text).expect("json");
            if frame[3] == "presence_diff" {
                frames += 1;
                bytes += text.len();
                let part = if phase == "track" { "joins" } else { "leaves" };
                seen += frame[4][part].as_object().map_or(0, |m| m.len());
            }
        }
        producer.await.expect("producer");
        results.push(Outcome {
            elapsed: started.elapsed(),
            frames,
            bytes,
        });
    }
    let _ = stop.send(());
    let _ = server.await;
    let untrack = results.pop().expect("untrack");
    let track = results.pop().expect("track");
    (track, untrack)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 10_000 } else { 200 };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("presence storm: {n} tracks then {n} untracks on one topic, one websocket subscriber");
    println!(
        "{:<10} {:<8} {:>10} {:>8} {:>12}",
        "window", "phase", "time_ms", "diffs", "bytes"
    );
    for window_ms in [0u64, 25] {
        let (track, untrack) = runtime.block_on(storm(n, Duration::from_millis(window_ms)));
        for (phase, outcome) in [("track", track), ("untrack", untrack)] {
            println!(
                "{:<10} {:<8} {:>10.1} {:>8} {:>12}",
                format!("{window_ms} ms"),
                phase,
                outcome.elapsed.as_secs_f64() * 1000.0,
                outcome.frames,
                outcome.bytes
            );
        }
    }
}
