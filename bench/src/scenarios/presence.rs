//! `presence`: N clients join one presence topic as fast as they can; each
//! keeps its presence list like phoenix.js (`presence_state` /
//! `presence_diff`). Reports the time until every client lists N users and
//! how many diffs that took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(test)]
use fawkes_protocol::client::decode_server_text;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{add_errors, wait_until, Env, Progress};
use crate::cli::{PresenceArgs, UserParam};
use crate::conn::{self, Ended, Errors};
use crate::histogram::Histogram;
use crate::presence_model::{parse_frame, PresenceFrame, PresenceList};
use crate::report::Report;

const HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Counters {
    joined: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    complete: AtomicU64,
    states: AtomicU64,
    diffs: AtomicU64,
    bytes: AtomicU64,
    undecodable: AtomicU64,
    /// Largest list size seen by any client.
    largest: AtomicU64,
    /// When the last client joined, ns since the start.
    last_join_ns: AtomicU64,
    /// With --kill-pid: when the node was killed (ns since the start; 0
    /// before), and the list size the other nodes' clients must reach.
    killed_at_ns: AtomicU64,
    want_after_kill: AtomicU64,
    /// Clients on the other nodes that saw the dead node's users leave.
    left_complete: AtomicU64,
}

/// Run the scenario.
pub(crate) async fn run(env: &Env, args: &PresenceArgs) -> Report {
    env.check_capacity(args.clients);
    let counters = Arc::new(Counters::default());
    let errors = Arc::new(Errors::default());
    let complete_at = Arc::new(Histogram::new());
    let left_at = Arc::new(Histogram::new());
    let permits = Arc::new(Semaphore::new(env.concurrency));
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients = args.clients as u64;
    let progress = {
        let c = Arc::clone(&counters);
        Progress::start("presence", move || {
            format!(
                "joined {} failed {} complete {} diffs {} largest list {}",
                c.joined.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
                c.complete.load(Ordering::Relaxed),
                c.diffs.load(Ordering::Relaxed),
                c.largest.load(Ordering::Relaxed)
            )
        })
    };

    let server_before = env.server_sample();
    let client_before = env.client_sample();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..args.clients {
        let connector = Arc::clone(&env.connector);
        let counters = Arc::clone(&counters);
        let errors = Arc::clone(&errors);
        let complete_at = Arc::clone(&complete_at);
        let left_at = Arc::clone(&left_at);
        let permits = Arc::clone(&permits);
        let mut stop = stop_rx.clone();
        let topic = args.topic.clone();
        let user = format!("u{index}");
        let (query, params) = match args.user_param {
            UserParam::Connect => (format!("user_id={user}"), json!({})),
            UserParam::Join => (String::new(), json!({ "user": user })),
        };
        tasks.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let mut ws =
                match conn::connect_and_join(&connector, index, &query, &topic, params).await {
                    Ok(ws) => ws,
                    Err(e) => {
                        errors.add(e);
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
            drop(permit);
            counters.joined.fetch_add(1, Ordering::Relaxed);
            counters
                .last_join_ns
                .fetch_max(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let mut list = PresenceList::new();
            let mut done = false;
            let mut left_done = false;
            let ended = conn::hold(&mut ws, &mut stop, HEARTBEAT, |text| {
                counters
                    .bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
                let is_state = text.contains("\"presence_state\"");
                if !is_state && !text.contains("\"presence_diff\"") {
                    return;
                }
                let Some(frame) = parse_frame(text, is_state) else {
                    counters.undecodable.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                match frame {
                    PresenceFrame::State(state) => {
                        counters.states.fetch_add(1, Ordering::Relaxed);
                        list.apply_state_list(state);
                    }
                    PresenceFrame::Diff(joins, leaves) => {
                        counters.diffs.fetch_add(1, Ordering::Relaxed);
                        list.apply_diff_lists(joins, leaves);
                    }
                }
                counters
                    .largest
                    .fetch_max(list.len() as u64, Ordering::Relaxed);
                if !done && list.len() as u64 >= clients {
                    done = true;
                    complete_at.record(started.elapsed().as_nanos() as u64);
                    counters.complete.fetch_add(1, Ordering::Relaxed);
                }
                let killed_at = counters.killed_at_ns.load(Ordering::Acquire);
                let want = counters.want_after_kill.load(Ordering::Acquire);
                if killed_at > 0 && !left_done && list.len() as u64 == want {
                    left_done = true;
                    let now = started.elapsed().as_nanos() as u64;
                    left_at.record(now.saturating_sub(killed_at));
                    counters.left_complete.fetch_add(1, Ordering::Relaxed);
                }
            })
            .await;
            if ended != Ended::Stopped {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                errors.add(format!("client: {ended:?}"));
            }
            conn::close(ws).await;
        });
    }

    let limit = Duration::from_secs(args.timeout.max(1));
    let converged = wait_until(limit, || {
        let joined = counters.joined.load(Ordering::Relaxed);
        let settled = joined + counters.failed.load(Ordering::Relaxed) >= clients;
        settled && counters.complete.load(Ordering::Relaxed) >= joined
    })
    .await;
    let wall_s = started.elapsed().as_secs_f64();
    let server = env.server_usage(server_before);
    let killed = match (args.kill_pid, args.kill_node) {
        (Some(pid), Some(node)) if converged => {
            Some(kill_node(env, args, &counters, started, limit, pid, node).await)
        }
        _ => None,
    };
    let client = env.client_usage(client_before);
    drop(progress);

    let joined = counters.joined.load(Ordering::Relaxed);
    let complete = counters.complete.load(Ordering::Relaxed);
    let diffs = counters.diffs.load(Ordering::Relaxed);
    let mut report = Report::new("presence");
    report
        .add("clients", clients)
        .add(
            "user_param",
            format!("{:?}", args.user_param).to_lowercase(),
        )
        .add("joined", joined)
        .add("failed", counters.failed.load(Ordering::Relaxed))
        .add("dropped", counters.dropped.load(Ordering::Relaxed))
        .add("converged", converged && joined == clients)
        .add("clients_complete", complete)
        .add("largest_list", counters.largest.load(Ordering::Relaxed))
        .add_f(
            "all_joined_s",
            counters.last_join_ns.load(Ordering::Relaxed) as f64 / 1e9,
            3,
        );
    if complete > 0 {
        report
            .add_f(
                "first_complete_s",
                complete_at.quantile(0.0) as f64 / 1e9,
                3,
            )
            .add_f(
                "median_complete_s",
                complete_at.quantile(0.5) as f64 / 1e9,
                3,
            )
            .add_f("all_complete_s", complete_at.max() as f64 / 1e9, 3);
    }
    report
        .add("presence_states", counters.states.load(Ordering::Relaxed))
        .add("presence_diffs", diffs)
        .add_f(
            "diffs_per_client",
            if joined > 0 {
                diffs as f64 / joined as f64
            } else {
                0.0
            },
            1,
        )
        .add("bytes_received", counters.bytes.load(Ordering::Relaxed))
        .add("undecodable", counters.undecodable.load(Ordering::Relaxed))
        .add_usage("server", server, wall_s);
    if let Some(client) = client {
        report.add_f("client_cpu_s", client.cpu_s, 2);
    }
    if let Some((victims, survivors, all_left)) = killed {
        let left = counters.left_complete.load(Ordering::Relaxed);
        report
            .add("killed_node_clients", victims)
            .add("surviving_clients", survivors)
            .add("surviving_clients_saw_leaves", left)
            .add("leaves_complete", all_left);
        if left > 0 {
            let s = |q: f64| left_at.quantile(q) as f64 / 1e9;
            report.add_f("kill_to_leaves_median_s", s(0.5), 3).add_f(
                "kill_to_leaves_all_s",
                left_at.max() as f64 / 1e9,
                3,
            );
        }
    }
    add_errors(&mut report, &errors);
    env.add_server_files(&mut report);

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    report
}

/// `kill -9` node `node` (process `pid`) and wait until every client on
/// the other nodes lists only the users of the other nodes. Returns the
/// killed node's client count, the survivors' count, and whether they all
/// saw the leaves within `limit`.
async fn kill_node(
    env: &Env,
    args: &PresenceArgs,
    counters: &Counters,
    started: Instant,
    limit: Duration,
    pid: u32,
    node: usize,
) -> (u64, u64, bool) {
    let victims = (0..args.clients)
        .filter(|&i| env.connector.node_of(i) == node)
        .count() as u64;
    let survivors = args.clients as u64 - victims;
    counters.want_after_kill.store(survivors, Ordering::Release);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    if !killed.is_ok_and(|s| s.success()) {
        eprintln!("presence: could not kill -9 {pid}");
        return (victims, survivors, false);
    }
    counters.killed_at_ns.store(
        started.elapsed().as_nanos().max(1) as u64,
        Ordering::Release,
    );
    let all = wait_until(limit, || {
        counters.left_complete.load(Ordering::Relaxed) >= survivors
    })
    .await;
    (victims, survivors, all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The event and JSON payload of a frame, as the client loop reads it.
    fn payload_of(text: &str) -> Option<(String, Value)> {
        let message = decode_server_text(text).ok()?.into_message();
        let payload = message.payload.as_json()?.clone();
        Some((message.event, payload))
    }

    #[test]
    fn decodes_pushed_and_broadcast_presence_frames() {
        let pushed =
            r#"["1",null,"presence:bench","presence_state",{"u1":{"metas":[{"phx_ref":"F1"}]}}]"#;
        let (event, payload) = payload_of(pushed).unwrap();
        assert_eq!(event, "presence_state");
        let mut list = PresenceList::new();
        list.apply_state(&payload);
        let broadcast = r#"[null,null,"presence:bench","presence_diff",{"joins":{"u2":{"metas":[{"phx_ref":"F2"}]}},"leaves":{}}]"#;
        let (event, payload) = payload_of(broadcast).unwrap();
        assert_eq!(event, "presence_diff");
        list.apply_diff(&payload);
        assert_eq!(list.len(), 2);
    }
}
