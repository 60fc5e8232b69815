//! `fanout`: S subscribers join one topic; a publisher broadcasts (a
//! channel push the server re-broadcasts, or `POST /api/broadcast`) at a
//! fixed rate or as fast as the subscribers keep up. Each payload carries
//! its send time (`t`, ns since an `Instant` shared by the publisher and
//! every subscriber of this process), so each delivery gives one latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::{add_errors, per_second, wait_until, Env, Progress};
use crate::cli::{FanoutArgs, Rate};
use crate::conn::{self, Ended, Errors, Ws};
use crate::histogram::Histogram;
use crate::http_pub::HttpPublisher;
use crate::report::Report;

/// Subscribers heartbeat like phoenix.js.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Pause between setup and publishing.
const SETTLE: Duration = Duration::from_secs(1);
/// Stop draining when no delivery arrived for this long.
const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// State shared by the publisher and every subscriber task.
struct Shared {
    start: Instant,
    /// The broadcast event, quoted: how a subscriber recognises a delivery.
    event_pattern: String,
    latency_ns: Histogram,
    delivered: AtomicU64,
    last_delivery_ns: AtomicU64,
    joined: AtomicU64,
    failed: AtomicU64,
    alive: AtomicU64,
    dropped: AtomicU64,
    /// `--rate max`: the delivery count that lets the publisher go on.
    wake_at: AtomicU64,
    window_open: Notify,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Count one received frame if it is a delivery of the broadcast.
    fn on_text(&self, text: &str) {
        if !text.contains(self.event_pattern.as_str()) {
            return;
        }
        let Some(sent) = send_timestamp(text) else {
            return;
        };
        let now = self.now_ns();
        self.latency_ns.record(now.saturating_sub(sent));
        self.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
        let delivered = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if delivered == self.wake_at.load(Ordering::Acquire) {
            self.window_open.notify_one();
        }
    }
}

/// The `"t":<digits>` send timestamp in a broadcast frame, found without
/// parsing the whole frame (the padding never contains `"t":`).
pub(crate) fn send_timestamp(text: &str) -> Option<u64> {
    let at = text.rfind("\"t\":")? + 4;
    let digits = text[at..].trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Where broadcasts are published.
enum Publisher {
    /// A joined channel connection pushing `event`; a reader task drains
    /// what comes back (replies, and its own copy of each broadcast).
    Ws {
        sink: SplitSink<Ws, Message>,
        replies_ok: Arc<AtomicU64>,
        replies_other: Arc<AtomicU64>,
        reader: tokio::task::JoinHandle<()>,
    },
    /// `POST /api/broadcast`, one request at a time.
    Http(HttpPublisher),
}

impl Publisher {
    async fn connect(env: &Env, args: &FanoutArgs, index: usize) -> Result<Publisher, String> {
        if args.via_http {
            return HttpPublisher::connect(&env.connector, index)
                .await
                .map(Publisher::Http);
        }
        let ws = conn::connect_and_join(&env.connector, index, "", &args.topic, json!({}))
            .await
            .map_err(|e| format!("publisher: {e}"))?;
        let (sink, mut stream) = ws.split();
        let replies_ok = Arc::new(AtomicU64::new(0));
        let replies_other = Arc::new(AtomicU64::new(0));
        let (ok, other) = (Arc::clone(&replies_ok), Arc::clone(&replies_other));
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    if text.as_str().contains("\"phx_reply\"") {
                        if text.as_str().contains("\"status\":\"ok\"") {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        Ok(Publisher::Ws {
            sink,
            replies_ok,
            replies_other,
            reader,
        })
    }

    async fn publish(&mut self, args: &FanoutArgs, seq: u64, payload: Value) -> Result<(), String> {
        match self {
            Publisher::Ws { sink, .. } => {
                let ref_ = (seq + 2).to_string();
                let frame =
                    conn::push_frame(Some("1"), Some(&ref_), &args.topic, &args.event, payload);
                sink.send(Message::text(frame))
                    .await
                    .map_err(|e| format!("publish: {e}"))
            }
            Publisher::Http(http) => http.broadcast(&args.topic, &args.event, payload).await,
        }
    }

    async fn finish(self, report: &mut Report) {
        match self {
            Publisher::Ws {
                mut sink,
                replies_ok,
                replies_other,
                reader,
            } => {
                report
                    .add("publisher_replies_ok", replies_ok.load(Ordering::Relaxed))
                    .add(
                        "publisher_replies_other",
                        replies_other.load(Ordering::Relaxed),
                    );
                let _ = tokio::time::timeout(Duration::from_millis(500), sink.close()).await;
                reader.abort();
            }
            Publisher::Http(_) => {}
        }
    }
}

/// Run the scenario.
pub(crate) async fn run(env: &Env, args: &FanoutArgs) -> Report {
    env.check_capacity(args.subs + 1);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        event_pattern: format!("\"{}\"", args.event),
        latency_ns: Histogram::new(),
        delivered: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
        joined: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        alive: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        wake_at: AtomicU64::new(u64::MAX),
        window_open: Notify::new(),
    });
    let errors = Arc::new(Errors::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let published = Arc::new(AtomicU64::new(0));
    let progress = {
        let (s, p) = (Arc::clone(&shared), Arc::clone(&published));
        Progress::start("fanout", move || {
            format!(
                "joined {} failed {} dropped {} published {} delivered {}",
                s.joined.load(Ordering::Relaxed),
                s.failed.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed),
                p.load(Ordering::Relaxed),
                s.delivered.load(Ordering::Relaxed)
            )
        })
    };

    // Subscribers.
    let setup_started = Instant::now();
    let tasks = spawn_subscribers(env, args, &shared, &errors, &stop_rx);
    let total = args.subs as u64;
    wait_until(env.setup_limit(args.subs), || {
        shared.joined.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) >= total
    })
    .await;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let joined = shared.joined.load(Ordering::Relaxed);

    let mut report = Report::new("fanout");
    report
        .add("subs", total)
        .add("joined", joined)
        .add("failed", shared.failed.load(Ordering::Relaxed))
        .add_f("setup_s", setup_s, 2)
        .add("publish_via", if args.via_http { "http" } else { "ws" })
        .add("rate", args.rate.to_string())
        .add("payload_bytes", args.payload_bytes as u64);

    let mut publisher =
        match Publisher::connect(env, args, env.connector.primary_index(args.subs)).await {
            Ok(publisher) => publisher,
            Err(e) => {
                errors.add(e);
                add_errors(&mut report, &errors);
                stop(stop_tx, tasks).await;
                return report;
            }
        };
    tokio::time::sleep(SETTLE).await;

    // Publish.
    let server_before = env.server_sample();
    let client_before = env.client_sample();
    let publish_started = Instant::now();
    let publish_started_ns = shared.now_ns();
    let count = publish(&mut publisher, args, &shared, &published, &errors).await;
    let publish_s = publish_started.elapsed().as_secs_f64();

    // Drain.
    let expected = count * joined;
    drain(&shared, expected, Duration::from_secs(args.drain)).await;
    let wall_s = publish_started.elapsed().as_secs_f64();
    let server = env.server_usage(server_before);
    let client = env.client_usage(client_before);
    drop(progress);

    let delivered = shared.delivered.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(delivered);
    let receive_s = shared
        .last_delivery_ns
        .load(Ordering::Relaxed)
        .saturating_sub(publish_started_ns) as f64
        / 1e9;
    let ms = |q: f64| shared.latency_ns.quantile(q) as f64 / 1e6;
    report
        .add_f("publish_s", publish_s, 2)
        .add("published", count)
        .add_f("publish_rate", per_second(count, publish_s), 1)
        .add("expected", expected)
        .add("delivered", delivered)
        .add("lost", lost)
        .add_f(
            "lost_pct",
            if expected > 0 {
                100.0 * lost as f64 / expected as f64
            } else {
                0.0
            },
            3,
        )
        .add("subs_dropped", shared.dropped.load(Ordering::Relaxed))
        .add_f("deliveries_per_s", per_second(delivered, receive_s), 0)
        .add_f("latency_p50_ms", ms(0.50), 2)
        .add_f("latency_p99_ms", ms(0.99), 2)
        .add_f("latency_p999_ms", ms(0.999), 2)
        .add_f("latency_max_ms", shared.latency_ns.max() as f64 / 1e6, 2)
        .add_usage("server", server, wall_s);
    if let Some(server) = server {
        if server.cpu_s > 0.0 {
            report.add_f(
                "deliveries_per_server_cpu_s",
                delivered as f64 / server.cpu_s,
                0,
            );
        }
    }
    if let Some(client) = client {
        report.add_f("client_cpu_s", client.cpu_s, 2);
        report.add_f("client_sys_s", client.sys_s, 2);
        report.add_f("client_cpu_pct", 100.0 * client.cpu_s / wall_s.max(1e-9), 1);
    }
    env.add_server_files(&mut report);
    publisher.finish(&mut report).await;
    add_errors(&mut report, &errors);
    stop(stop_tx, tasks).await;
    report
}

fn spawn_subscribers(
    env: &Env,
    args: &FanoutArgs,
    shared: &Arc<Shared>,
    errors: &Arc<Errors>,
    stop_rx: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let permits = Arc::new(Semaphore::new(env.concurrency));
    let mut tasks = JoinSet::new();
    for index in 0..args.subs {
        let connector = Arc::clone(&env.connector);
        let shared = Arc::clone(shared);
        let errors = Arc::clone(errors);
        let permits = Arc::clone(&permits);
        let mut stop = stop_rx.clone();
        let topic = args.topic.clone();
        tasks.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let mut ws =
                match conn::connect_and_join(&connector, index, "", &topic, json!({})).await {
                    Ok(ws) => ws,
                    Err(e) => {
                        errors.add(e);
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
            drop(permit);
            shared.joined.fetch_add(1, Ordering::Relaxed);
            shared.alive.fetch_add(1, Ordering::Relaxed);
            let ended =
                conn::hold(&mut ws, &mut stop, HEARTBEAT, |text| shared.on_text(text)).await;
            if ended != Ended::Stopped {
                shared.alive.fetch_sub(1, Ordering::Relaxed);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                errors.add(format!("subscriber: {ended:?}"));
            }
            conn::close(ws).await;
        });
    }
    tasks
}

/// Publish for `--duration`; returns how many broadcasts went out.
async fn publish(
    publisher: &mut Publisher,
    args: &FanoutArgs,
    shared: &Shared,
    published: &AtomicU64,
    errors: &Errors,
) -> u64 {
    let end = Instant::now() + Duration::from_secs(args.duration);
    let pad = "x".repeat(args.payload_bytes);
    let mut ticker = match args.rate {
        Rate::PerSecond(rate) => Some(tokio::time::interval(Duration::from_secs_f64(1.0 / rate))),
        Rate::Max => None,
    };
    let mut seq: u64 = 0;
    loop {
        match ticker.as_mut() {
            Some(ticker) => {
                tokio::time::timeout_at(end.into(), ticker.tick())
                    .await
                    .ok();
            }
            None => wait_for_window(shared, seq, args.window.max(1), end).await,
        }
        if Instant::now() >= end {
            break;
        }
        let payload = json!({"t": shared.now_ns(), "seq": seq, "pad": pad});
        if let Err(e) = publisher.publish(args, seq, payload).await {
            errors.add(e);
            break;
        }
        seq += 1;
        published.store(seq, Ordering::Relaxed);
    }
    seq
}

/// `--rate max`: wait until at most `window - 1` broadcasts are not yet
/// delivered to every live subscriber (or `end`).
async fn wait_for_window(shared: &Shared, published: u64, window: u64, end: Instant) {
    loop {
        let alive = shared.alive.load(Ordering::Relaxed);
        let wake_at = (published + 1).saturating_sub(window) * alive;
        shared.wake_at.store(wake_at, Ordering::Release);
        if shared.delivered.load(Ordering::Acquire) >= wake_at || Instant::now() >= end {
            return;
        }
        // A wake-up is only a hint: the loop re-checks (subscribers may
        // have dropped, changing the target).
        let _ =
            tokio::time::timeout(Duration::from_millis(50), shared.window_open.notified()).await;
    }
}

/// Wait until `expected` deliveries arrived, nothing arrived for a while,
/// or `limit` passed.
async fn drain(shared: &Shared, expected: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = shared.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while Instant::now() < deadline {
        let now = shared.delivered.load(Ordering::Relaxed);
        if now >= expected {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= DRAIN_QUIET {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop(stop_tx: watch::Sender<bool>, mut tasks: JoinSet<()>) {
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_send_timestamp() {
        let frame = r#"[null,null,"room:fanout","broadcast",{"pad":"xxxx","seq":3,"t":123456789}]"#;
        assert_eq!(send_timestamp(frame), Some(123_456_789));
        let frame = r#"["1","5","room:fanout","broadcast",{"t": 42,"seq":0,"pad":"x"}]"#;
        assert_eq!(send_timestamp(frame), Some(42));
        assert_eq!(
            send_timestamp(r#"[null,null,"room:fanout","welcome",{}]"#),
            None
        );
    }
}
