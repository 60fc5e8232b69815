//! `drain`: what a deploy looks like to the clients. N clients join a topic
//! on the server under test; the bench sends that server SIGTERM; each
//! client, once its connection closes, reconnects the way phoenix.js does
//! (back-off 10, 50, 100, 150, 200, 250, 500, 1000, 2000, then 5000 ms) to
//! another node (`--reconnect-url`) and rejoins. Reported: when the closes
//! and the rejoins happened after the SIGTERM, as quantiles and as
//! histograms with one row per bucket, so a drain in batches shows as
//! steps and a drain at once as one spike. With `--check-presence` an
//! observer on the other node keeps the topic's presence list and the
//! report says whether every client is listed there once, with a meta of
//! the surviving node, after the rejoins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{add_errors, wait_until, Env, Progress};
use crate::cli::{Common, DrainArgs, Target};
use crate::conn::{self, Connector, Ended, Errors};
use crate::presence_model::{parse_frame, PresenceFrame, PresenceList};
use crate::report::Report;

const HEARTBEAT: Duration = Duration::from_secs(30);
/// phoenix.js's default `reconnectAfterMs`.
const BACKOFF_MS: [u64; 9] = [10, 50, 100, 150, 200, 250, 500, 1000, 2000];

fn backoff(tries: usize) -> Duration {
    Duration::from_millis(BACKOFF_MS.get(tries).copied().unwrap_or(5000))
}

#[derive(Default)]
struct Counters {
    joined: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    rejoined: AtomicU64,
}

/// Milliseconds after the SIGTERM, one entry per client.
#[derive(Default)]
struct Times {
    closed: Mutex<Vec<u64>>,
    rejoined: Mutex<Vec<u64>>,
    close_codes: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Run the scenario.
pub(crate) async fn run(env: &Env, common: &Common, args: &DrainArgs) -> Result<Report, String> {
    let Some(server) = env.servers.first() else {
        return Err("--server-pid is required: the bench sends that process SIGTERM".into());
    };
    let pid = server.pid();
    let other = Target::parse(&args.reconnect_url, &common.socket_path)?;
    if other.addr == env.connector.target().addr {
        return Err("--reconnect-url must be another node than --url".into());
    }
    let other = Arc::new(Connector::new(
        vec![other],
        common.sources,
        common.op_timeout(),
    ));
    env.check_capacity(args.conns * 2);
    let counters = Arc::new(Counters::default());
    let times = Arc::new(Times::default());
    let errors = Arc::new(Errors::default());
    let permits = Arc::new(Semaphore::new(env.concurrency));
    let (term_tx, term_rx) = watch::channel(None::<Instant>);
    let (stop_tx, stop_rx) = watch::channel(false);
    let progress = {
        let c = Arc::clone(&counters);
        Progress::start("drain", move || {
            format!(
                "joined {} (failed {}) closed {} rejoined {}",
                c.joined.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
                c.closed.load(Ordering::Relaxed),
                c.rejoined.load(Ordering::Relaxed),
            )
        })
    };

    let mut tasks = JoinSet::new();
    for index in 0..args.conns {
        let first = Arc::clone(&env.connector);
        let other = Arc::clone(&other);
        let counters = Arc::clone(&counters);
        let times = Arc::clone(&times);
        let errors = Arc::clone(&errors);
        let permits = Arc::clone(&permits);
        let term = term_rx.clone();
        let mut stop = stop_rx.clone();
        let topic = args.topic.clone();
        tasks.spawn(async move {
            let query = format!("user=u{index}");
            let permit = permits.acquire_owned().await;
            let joined = conn::connect_and_join(&first, index, &query, &topic, json!({})).await;
            drop(permit);
            let mut ws = match joined {
                Ok(ws) => ws,
                Err(e) => {
                    errors.add(e);
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            counters.joined.fetch_add(1, Ordering::Relaxed);
            let ended = conn::hold(&mut ws, &mut stop, HEARTBEAT, |_| {}).await;
            let code = match ended {
                Ended::Stopped => return conn::close(ws).await,
                Ended::ServerClosed(code) => code.map_or("none".to_owned(), |c| c.to_string()),
                Ended::Failed(_) => "failed".to_owned(),
            };
            let Some(sigterm) = *term.borrow() else {
                errors.add("closed before the SIGTERM");
                return;
            };
            times.closed.lock().expect("times").push(since(sigterm));
            *times
                .close_codes
                .lock()
                .expect("codes")
                .entry(code)
                .or_default() += 1;
            counters.closed.fetch_add(1, Ordering::Relaxed);
            // Like phoenix.js: wait, try, wait longer, try again.
            for tries in 0.. {
                tokio::time::sleep(backoff(tries)).await;
                if *stop.borrow() {
                    return;
                }
                match conn::connect_and_join(&other, index, &query, &topic, json!({})).await {
                    Ok(mut ws) => {
                        times.rejoined.lock().expect("times").push(since(sigterm));
                        counters.rejoined.fetch_add(1, Ordering::Relaxed);
                        conn::hold(&mut ws, &mut stop, HEARTBEAT, |_| {}).await;
                        return conn::close(ws).await;
                    }
                    Err(e) => errors.add(e),
                }
            }
        });
    }
    let total = args.conns as u64;
    wait_until(env.setup_limit(args.conns), || {
        counters.joined.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed) >= total
    })
    .await;
    let joined = counters.joined.load(Ordering::Relaxed);
    let observer = match args.check_presence {
        true => {
            let observer = Observer::start(&other, args.conns, &args.topic, stop_rx.clone())
                .await
                .map_err(|e| format!("presence observer: {e}"))?;
            // Everyone (and the observer) listed on the surviving node.
            let want = joined as usize + 1;
            let listed = wait_until(Duration::from_secs(args.limit), || {
                observer.list().len() == want
            })
            .await;
            if !listed {
                return Err(format!(
                    "the observer lists {} users before the SIGTERM, not {want}",
                    observer.list().len()
                ));
            }
            let old_refs = observer.list().refs_except(OBSERVER);
            Some((observer, old_refs))
        }
        false => None,
    };

    let sigterm = Instant::now();
    let _ = term_tx.send(Some(sigterm));
    // SAFETY: kill(2) with a pid given on the command line and SIGTERM; it
    // touches no memory of this process.
    let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    if sent != 0 {
        return Err(format!(
            "cannot send SIGTERM to {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    wait_until(Duration::from_secs(args.limit), || {
        counters.rejoined.load(Ordering::Relaxed) >= joined
    })
    .await;
    let presence = match &observer {
        Some((observer, old_refs)) => {
            // Every client listed once, none with a meta of the old node.
            let want = joined as usize + 1;
            let settled = |list: &PresenceList| {
                list.len() == want
                    && list.multi_meta_keys() == 0
                    && list.keys_with_any_of(old_refs) == 0
            };
            let converged = wait_until(Duration::from_secs(args.limit), || {
                settled(&observer.list())
            })
            .await;
            let converged_ms = since(sigterm);
            // Nothing late from the old node's shutdown changes it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let list = observer.list();
            Some(vec![
                ("presence_expected", want as u64),
                ("presence_listed", list.len() as u64),
                ("presence_multi_meta_keys", list.multi_meta_keys() as u64),
                (
                    "presence_old_node_metas",
                    list.keys_with_any_of(old_refs) as u64,
                ),
                ("presence_converged", u64::from(converged)),
                ("presence_converged_ms", converged_ms),
                ("presence_still_settled_2s_later", u64::from(settled(&list))),
            ])
        }
        None => None,
    };
    drop(progress);

    let closed = std::mem::take(&mut *times.closed.lock().expect("times"));
    let rejoined = std::mem::take(&mut *times.rejoined.lock().expect("times"));
    let mut report = Report::new("drain");
    report
        .add("conns", total)
        .add("joined", joined)
        .add("closed", closed.len() as u64)
        .add("rejoined", rejoined.len() as u64);
    let codes: Vec<String> = {
        let codes = times.close_codes.lock().expect("codes");
        codes.iter().map(|(c, n)| format!("{c}:{n}")).collect()
    };
    report.add("close_codes", codes.join(" "));
    add_errors(&mut report, &errors);
    add_quantiles(&mut report, "close_ms", &closed);
    add_quantiles(&mut report, "rejoin_ms", &rejoined);
    report.add("close_histogram", histogram(&closed, args.bucket_ms));
    report.add("rejoin_histogram", histogram(&rejoined, args.bucket_ms));
    for (key, value) in presence.into_iter().flatten() {
        report.add(key, value);
    }

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(report)
}

/// The observer's presence key (connect param `user`).
const OBSERVER: &str = "observer";

/// A client of the surviving node that keeps the topic's presence list
/// like phoenix.js.
struct Observer {
    list: Arc<Mutex<PresenceList>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Connect (as connection number `index`) and join `topic`; the list
    /// follows the topic until `stop`.
    async fn start(
        connector: &Connector,
        index: usize,
        topic: &str,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Observer, conn::ConnError> {
        let mut ws = connector
            .connect(index, &format!("user={OBSERVER}"))
            .await?;
        conn::join(&mut ws, topic, "1", json!({}), connector.timeout()).await?;
        let list = Arc::new(Mutex::new(PresenceList::new()));
        let mine = Arc::clone(&list);
        let task = tokio::spawn(async move {
            conn::hold(&mut ws, &mut stop, HEARTBEAT, |text| {
                let is_state = text.contains("\"presence_state\"");
                if !is_state && !text.contains("\"presence_diff\"") {
                    return;
                }
                let mut list = mine.lock().unwrap_or_else(|p| p.into_inner());
                match parse_frame(text, is_state) {
                    Some(PresenceFrame::State(state)) => list.apply_state_list(state),
                    Some(PresenceFrame::Diff(joins, leaves)) => {
                        list.apply_diff_lists(joins, leaves)
                    }
                    None => {}
                }
            })
            .await;
            conn::close(ws).await;
        });
        Ok(Observer { list, _task: task })
    }

    fn list(&self) -> std::sync::MutexGuard<'_, PresenceList> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn add_quantiles(report: &mut Report, name: &str, values: &[u64]) {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    };
    report
        .add(&format!("{name}_min"), at(0.0))
        .add(&format!("{name}_p50"), at(0.5))
        .add(&format!("{name}_p90"), at(0.9))
        .add(&format!("{name}_max"), at(1.0));
}

/// Counts per bucket of `bucket_ms`, as `"0-500:412 500-1000:0 ..."` from
/// the first bucket to the last non-empty one.
fn histogram(values: &[u64], bucket_ms: u64) -> String {
    let bucket_ms = bucket_ms.max(1);
    let Some(last) = values.iter().max().map(|max| max / bucket_ms) else {
        return String::new();
    };
    let mut counts = vec![0u64; last as usize + 1];
    for value in values {
        counts[(value / bucket_ms) as usize] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let from = i as u64 * bucket_ms;
            format!("{from}-{}:{n}", from + bucket_ms)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_rows_cover_every_bucket_up_to_the_last_value() {
        assert_eq!(
            histogram(&[0, 10, 499, 500, 1700], 500),
            "0-500:3 500-1000:1 1000-1500:0 1500-2000:1"
        );
        assert_eq!(histogram(&[], 500), "");
        assert_eq!(backoff(0), Duration::from_millis(10));
        assert_eq!(backoff(20), Duration::from_millis(5000));
    }
}
