//! `roundtrip`: C connections each send a heartbeat and wait for its reply,
//! over and over, for a duration; reports round trips/s and the round-trip
//! latency. Run it against a server directly and through `fawkes record`
//! in front of it to measure what the proxy adds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::{add_errors, per_second, Env};
use crate::cli::RoundtripArgs;
use crate::conn::{push_frame, Errors};
use crate::histogram::Histogram;
use crate::report::Report;

/// Run the scenario.
pub(crate) async fn run(env: &Env, args: &RoundtripArgs) -> Report {
    let errors = Arc::new(Errors::default());
    let rtt = Arc::new(Histogram::new());
    let duration = Duration::from_secs(args.duration);
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for index in 0..args.conns.max(1) {
        let connector = Arc::clone(&env.connector);
        let errors = Arc::clone(&errors);
        let rtt = Arc::clone(&rtt);
        tasks.spawn(async move {
            let mut ws = match connector.connect(index, "").await {
                Ok(ws) => ws,
                Err(e) => return errors.add(e),
            };
            let timeout = connector.timeout();
            let end = Instant::now() + duration;
            let mut n: u64 = 0;
            while Instant::now() < end {
                n += 1;
                let ref_ = n.to_string();
                let frame = push_frame(None, Some(&ref_), "phoenix", "heartbeat", json!({}));
                let sent = Instant::now();
                if let Err(e) = ws.send(Message::text(frame)).await {
                    return errors.add(e);
                }
                let reply = tokio::time::timeout(timeout, async {
                    while let Some(msg) = ws.next().await {
                        if let Ok(Message::Text(t)) = msg {
                            if t.contains(&format!("\"{ref_}\"")) {
                                return true;
                            }
                        }
                    }
                    false
                })
                .await;
                match reply {
                    Ok(true) => rtt.record(sent.elapsed().as_micros() as u64),
                    Ok(false) => return errors.add("connection closed"),
                    Err(_) => return errors.add("reply timeout"),
                }
            }
            let _ = ws.close(None).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let mut report = Report::new("roundtrip");
    report
        .add("conns", args.conns as u64)
        .add("round_trips", rtt.count())
        .add_f("round_trips_per_s", per_second(rtt.count(), seconds), 0)
        .add("rtt_p50_us", rtt.quantile(0.50))
        .add("rtt_p99_us", rtt.quantile(0.99))
        .add("rtt_p999_us", rtt.quantile(0.999))
        .add("rtt_max_us", rtt.max());
    add_errors(&mut report, &errors);
    report
}
