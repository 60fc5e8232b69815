//! `joins`: N connections connect (phase 1, `--concurrency` at a time),
//! then every connection joins once (phase 2, `--join-concurrency` joins in
//! flight); reports connects/s, joins/s and join latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{add_errors, per_second, wait_until, Env, Progress};
use crate::cli::JoinsArgs;
use crate::conn::{self, Errors};
use crate::histogram::Histogram;
use crate::report::Report;

const HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    connect_failed: AtomicU64,
    joined: AtomicU64,
    join_failed: AtomicU64,
}

/// Run the scenario.
pub(crate) async fn run(env: &Env, args: &JoinsArgs) -> Report {
    env.check_capacity(args.conns);
    let counters = Arc::new(Counters::default());
    let errors = Arc::new(Errors::default());
    let join_latency = Arc::new(Histogram::new());
    let connect_permits = Arc::new(Semaphore::new(env.concurrency));
    let join_permits = Arc::new(Semaphore::new(args.join_concurrency.max(1)));
    let (go_tx, go_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let progress = {
        let c = Arc::clone(&counters);
        Progress::start("joins", move || {
            format!(
                "connected {} (failed {}) joined {} (failed {})",
                c.connected.load(Ordering::Relaxed),
                c.connect_failed.load(Ordering::Relaxed),
                c.joined.load(Ordering::Relaxed),
                c.join_failed.load(Ordering::Relaxed)
            )
        })
    };

    let server_start = env.server_sample();
    let connect_started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..args.conns {
        let connector = Arc::clone(&env.connector);
        let counters = Arc::clone(&counters);
        let errors = Arc::clone(&errors);
        let join_latency = Arc::clone(&join_latency);
        let connect_permits = Arc::clone(&connect_permits);
        let join_permits = Arc::clone(&join_permits);
        let mut go = go_rx.clone();
        let mut stop = stop_rx.clone();
        let topic = if args.same_topic {
            args.topic.clone()
        } else {
            format!("{}:{index}", args.topic)
        };
        tasks.spawn(async move {
            let Ok(permit) = connect_permits.acquire_owned().await else {
                return;
            };
            let connected = connector.connect(index, "").await;
            drop(permit);
            let mut ws = match connected {
                Ok(ws) => ws,
                Err(e) => {
                    errors.add(e);
                    counters.connect_failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            counters.connected.fetch_add(1, Ordering::Relaxed);
            if go.wait_for(|go| *go).await.is_err() {
                return;
            }
            let Ok(permit) = join_permits.acquire_owned().await else {
                return;
            };
            let started = Instant::now();
            let joined = conn::join(&mut ws, &topic, "1", json!({}), connector.timeout()).await;
            drop(permit);
            match joined {
                Ok(_) => {
                    join_latency.record(started.elapsed().as_nanos() as u64);
                    counters.joined.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    errors.add(e);
                    counters.join_failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            conn::hold(&mut ws, &mut stop, HEARTBEAT, |_| {}).await;
            conn::close(ws).await;
        });
    }
    let total = args.conns as u64;
    wait_until(env.setup_limit(args.conns), || {
        counters.connected.load(Ordering::Relaxed) + counters.connect_failed.load(Ordering::Relaxed)
            >= total
    })
    .await;
    let connect_s = connect_started.elapsed().as_secs_f64();
    let connected = counters.connected.load(Ordering::Relaxed);
    let server_connect = env.server_usage(server_start);

    let server_before_joins = env.server_sample();
    let join_started = Instant::now();
    let _ = go_tx.send(true);
    wait_until(env.setup_limit(args.conns), || {
        counters.joined.load(Ordering::Relaxed) + counters.join_failed.load(Ordering::Relaxed)
            >= connected
    })
    .await;
    let join_s = join_started.elapsed().as_secs_f64();
    let server_joins = env.server_usage(server_before_joins);
    drop(progress);
    let joined = counters.joined.load(Ordering::Relaxed);

    let mut report = Report::new("joins");
    report
        .add("conns", total)
        .add("connected", connected)
        .add(
            "connect_failed",
            counters.connect_failed.load(Ordering::Relaxed),
        )
        .add("joined", joined)
        .add("join_failed", counters.join_failed.load(Ordering::Relaxed));
    add_errors(&mut report, &errors);
    report
        .add_f("connect_s", connect_s, 3)
        .add_f("connects_per_s", per_second(connected, connect_s), 0)
        .add_f("join_s", join_s, 3)
        .add_f("joins_per_s", per_second(joined, join_s), 0)
        .add_f(
            "connect_and_join_per_s",
            per_second(joined, connect_s + join_s),
            0,
        )
        .add_f(
            "join_latency_p50_ms",
            join_latency.quantile(0.5) as f64 / 1e6,
            2,
        )
        .add_f(
            "join_latency_p99_ms",
            join_latency.quantile(0.99) as f64 / 1e6,
            2,
        )
        .add_f("join_latency_max_ms", join_latency.max() as f64 / 1e6, 2);
    if let Some(usage) = server_connect {
        report.add_f("server_cpu_connect_s", usage.cpu_s, 2);
    }
    if let Some(usage) = server_joins {
        report.add_f("server_cpu_join_s", usage.cpu_s, 2);
        report.add_f("server_sys_join_s", usage.sys_s, 2);
        if usage.cpu_s > 0.0 {
            report.add_f("joins_per_server_cpu_s", joined as f64 / usage.cpu_s, 0);
        }
        report.add("server_rss_after_kib", usage.rss_after_kib);
    }
    env.add_server_files(&mut report);

    let _ = stop_tx.send(true);
    drop(go_tx);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    report
}
