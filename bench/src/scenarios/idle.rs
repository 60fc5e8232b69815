//! `idle`: N connections each join a topic and stay idle (heartbeating);
//! reports the server's resident memory per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{add_errors, per_second, wait_until, Env, Progress};
use crate::cli::IdleArgs;
use crate::conn::{self, Ended, Errors};
use crate::histogram::Histogram;
use crate::report::Report;
use crate::scenarios::fanout::send_timestamp;

/// How long to let the server settle before reading its RSS.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Counters {
    joined: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Connections that received the awaited broadcast.
    received: AtomicU64,
    /// Its latency to each of them, in nanoseconds.
    latency_ns: Histogram,
}

/// Now, in nanoseconds since the Unix epoch.
fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Run the scenario.
pub(crate) async fn run(env: &Env, args: &IdleArgs) -> Report {
    env.check_capacity(args.conns);
    let server_start = env.server_sample();
    let client_start = env.client_sample();
    let counters = Arc::new(Counters::default());
    let errors = Arc::new(Errors::default());
    let permits = Arc::new(Semaphore::new(env.concurrency));
    let (stop_tx, stop_rx) = watch::channel(false);
    let heartbeat = Duration::from_secs(args.heartbeat.max(1));

    let progress = {
        let c = Arc::clone(&counters);
        Progress::start("idle", move || {
            format!(
                "joined {} failed {} dropped {}",
                c.joined.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed)
            )
        })
    };
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..args.conns {
        let connector = Arc::clone(&env.connector);
        let counters = Arc::clone(&counters);
        let errors = Arc::clone(&errors);
        let permits = Arc::clone(&permits);
        let mut stop = stop_rx.clone();
        let no_join = args.no_join;
        let awaited = args.await_event.as_ref().map(|e| format!("\"{e}\""));
        let topic = if args.same_topic {
            args.topic.clone()
        } else {
            format!("{}:{index}", args.topic)
        };
        tasks.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let opened = if no_join {
                connector.connect(index, "").await
            } else {
                conn::connect_and_join(&connector, index, "", &topic, json!({})).await
            };
            let mut ws = match opened {
                Ok(ws) => ws,
                Err(e) => {
                    errors.add(e);
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            drop(permit);
            counters.joined.fetch_add(1, Ordering::Relaxed);
            let mut got_it = false;
            let ended = conn::hold(&mut ws, &mut stop, heartbeat, |text| {
                let Some(pattern) = &awaited else {
                    return;
                };
                if got_it || !text.contains(pattern.as_str()) {
                    return;
                }
                if let Some(sent) = send_timestamp(text) {
                    got_it = true;
                    counters
                        .latency_ns
                        .record(unix_now_ns().saturating_sub(sent));
                    counters.received.fetch_add(1, Ordering::Relaxed);
                }
            })
            .await;
            if ended != Ended::Stopped {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                errors.add(format!("while idle: {ended:?}"));
            }
            conn::close(ws).await;
        });
    }
    let total = args.conns as u64;
    wait_until(env.setup_limit(args.conns), || {
        counters.joined.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed) >= total
    })
    .await;
    let setup_s = started.elapsed().as_secs_f64();
    let joined = counters.joined.load(Ordering::Relaxed);
    let server_setup = env.server_usage(server_start);
    tokio::time::sleep(SETTLE).await;
    let server_joined = env.server_sample();
    let client_joined = env.client_sample();
    if args.await_event.is_some() {
        eprintln!("idle: {joined} joined, waiting for the broadcast");
        wait_until(Duration::from_secs(args.hold), || {
            counters.received.load(Ordering::Relaxed)
                >= joined.saturating_sub(counters.dropped.load(Ordering::Relaxed))
        })
        .await;
    } else {
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    let server_end = env.server_sample();
    let dropped = counters.dropped.load(Ordering::Relaxed);

    let mut report = Report::new("idle");
    report
        .add("conns", total)
        .add("join", !args.no_join)
        .add("joined", joined)
        .add("failed", counters.failed.load(Ordering::Relaxed))
        .add("dropped_while_idle", dropped)
        .add("alive_at_end", joined.saturating_sub(dropped));
    add_errors(&mut report, &errors);
    if args.await_event.is_some() {
        let ms = |q: f64| counters.latency_ns.quantile(q) as f64 / 1e6;
        report
            .add(
                "broadcast_received",
                counters.received.load(Ordering::Relaxed),
            )
            .add_f("broadcast_latency_p50_ms", ms(0.5), 2)
            .add_f("broadcast_latency_p99_ms", ms(0.99), 2)
            .add_f(
                "broadcast_latency_max_ms",
                counters.latency_ns.max() as f64 / 1e6,
                2,
            );
    }
    report
        .add_f("setup_s", setup_s, 2)
        .add_f("connect_join_per_s", per_second(joined, setup_s), 0)
        .add("hold_s", args.hold);
    if let (Some(start), Some(after)) = (server_start, server_joined) {
        report
            .add("server_rss_before_kib", start.rss_kib)
            .add("server_rss_joined_kib", after.rss_kib);
        if let Some(end) = server_end {
            report.add("server_rss_end_kib", end.rss_kib);
        }
        if joined > 0 {
            let per_conn =
                |rss: u64| (rss.saturating_sub(start.rss_kib) * 1024) as f64 / joined as f64;
            report.add_f("server_bytes_per_conn", per_conn(after.rss_kib), 0);
            if let Some(end) = server_end {
                report.add_f("server_bytes_per_conn_end", per_conn(end.rss_kib), 0);
            }
        }
    }
    if let Some(usage) = server_setup {
        report.add_f("server_cpu_setup_s", usage.cpu_s, 2);
        if usage.cpu_s > 0.0 {
            let key = if args.no_join {
                "connects_per_server_cpu_s"
            } else {
                "joins_per_server_cpu_s"
            };
            report.add_f(key, joined as f64 / usage.cpu_s, 0);
        }
    }
    if let (Some(start), Some(after)) = (client_start, client_joined) {
        report.add("client_rss_joined_kib", after.rss_kib);
        report.add_f("client_cpu_setup_s", after.cpu_s - start.cpu_s, 2);
    }
    env.add_server_files(&mut report);

    drop(progress);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    report
}
