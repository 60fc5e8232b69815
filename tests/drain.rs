//! End-to-end: the `fawkes` binary drains on SIGTERM as `[drain]` says.
//! `/ready` answers 503 at once and new websockets are refused while the
//! open ones are closed with 1012 in batches one interval apart, and each
//! client closed later sees the earlier ones' presences leave.

#![cfg(unix)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Empty;
use serde_json::Value;
use support::binary::{ws_status, Fawkes};
use support::Client;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 15;
/// Long next to how fast one batch closes, so batches are told apart by
/// the gaps between them even on a busy machine.
const INTERVAL: Duration = Duration::from_millis(1500);

const CONFIG: &str = "[drain]\nbatch_size = 5\nbatch_interval_ms = 1500\nperiod_ms = 60000\n\
                      [presence]\nbatch_window_ms = 0\n";

/// `GET http://127.0.0.1:<port><path>` on a new connection: its status.
async fn get_status(port: u16, path: &str) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let uri = format!("http://127.0.0.1:{port}{path}");
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(uri.parse().expect("uri")),
    )
    .await
    .expect("an answer in time")
    .expect("an answer");
    response.status().as_u16()
}

/// What one client saw until its connection closed.
struct Seen {
    user: String,
    close: Option<u16>,
    at: Instant,
    /// Presence keys that left while it was connected.
    leaves: HashSet<String>,
}

async fn watch(mut client: Client, user: String) -> Seen {
    let mut leaves = HashSet::new();
    let close = loop {
        let next = tokio::time::timeout(Duration::from_secs(30), client.ws.next())
            .await
            .expect("the drain closes every client within its period");
        match next {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("json");
                if frame[3] == "presence_diff" {
                    if let Some(left) = frame[4]["leaves"].as_object() {
                        leaves.extend(left.keys().cloned());
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    Seen {
        user,
        close,
        at: Instant::now(),
        leaves,
    }
}

#[tokio::test]
async fn sigterm_drains_in_batches_while_ready_answers_503() {
    let fawkes = Fawkes::start(Some(CONFIG), &[]).await;
    assert_eq!(get_status(fawkes.port, "/ready").await, 200);
    let mut watchers = Vec::new();
    for i in 0..CLIENTS {
        let user = format!("u{i}");
        let mut client = Client::connect(&fawkes.ws_url(&format!("vsn=2.0.0&user={user}"))).await;
        client.join("room:drain", "1").await;
        watchers.push(tokio::spawn(watch(client, user)));
    }
    let started = Instant::now();
    let pid = fawkes.pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());

    // At once: not ready, and no new sessions, while clients are still open.
    let mut ready = 200;
    for _ in 0..100 {
        ready = get_status(fawkes.port, "/ready").await;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, 503, "/ready during the drain");
    assert_eq!(get_status(fawkes.port, "/health").await, 200);
    assert_eq!(ws_status(&fawkes.ws_url("vsn=2.0.0"), &[]).await, 503);
    let open = watchers.iter().filter(|w| !w.is_finished()).count();
    assert!(open > 0, "every client closed before /ready was asked");

    let mut seen = Vec::new();
    for watcher in watchers {
        seen.push(watcher.await.expect("watcher"));
    }
    let codes: Vec<Option<u16>> = seen.iter().map(|s| s.close).collect();
    assert!(
        codes.iter().all(|c| *c == Some(1012)),
        "close codes {codes:?}"
    );

    // Batches: closes within one batch are close together, batches are an
    // interval apart. Split where the gap exceeds half an interval.
    seen.sort_by_key(|s| s.at);
    let mut batches: Vec<Vec<&Seen>> = vec![vec![&seen[0]]];
    for pair in seen.windows(2) {
        if pair[1].at - pair[0].at > INTERVAL / 2 {
            batches.push(Vec::new());
        }
        batches.last_mut().expect("a batch").push(&pair[1]);
    }
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    let offsets: Vec<u128> = seen.iter().map(|s| (s.at - started).as_millis()).collect();
    assert_eq!(
        sizes.len(),
        3,
        "batch sizes {sizes:?}, close times (ms) {offsets:?}"
    );
    assert!(
        sizes.iter().all(|n| (4..=6).contains(n)),
        "batch sizes {sizes:?}"
    );

    // Presences leave cleanly: every client of the last batch saw each
    // client of the first batch leave before it was closed itself.
    let first: HashSet<String> = batches[0].iter().map(|s| s.user.clone()).collect();
    for late in &batches[2] {
        let missing: Vec<&String> = first.difference(&late.leaves).collect();
        assert!(
            missing.is_empty(),
            "{} did not see {missing:?} leave",
            late.user
        );
    }
    println!("drain batches {sizes:?}, close times after SIGTERM (ms) {offsets:?}");
}
