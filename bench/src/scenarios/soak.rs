//! `soak`: a long steady mix of everything a production node sees, with
//! the server's resources sampled into a CSV.
//!
//! Websocket clients connect, join a presence topic (`room:soak:<k>`) and a
//! relay topic (`bench:soak:<k>`), push `new_msg` (relayed to the others),
//! leave and rejoin the relay topic, then after a random lifetime either
//! close or vanish (drop the TCP connection without a close frame), pause
//! and start over. LongPoll clients do the same over `GET`/`POST
//! /socket/longpoll` and vanish by no longer polling (the server ends the
//! session). A publisher pushes `broadcast`s on `bench:soak:0`; slow
//! clients join it with a tiny receive buffer and never read. Time is cut
//! into cycles of `--cycle` seconds whose last `--quiet` seconds have no
//! clients at all (the run ends with such a window), so the samples taken
//! there show whether memory, open files and tasks go back down.
//!
//! Every `--sample-secs` the server's RSS, open files and threads (from
//! `/proc`) and its connections, channels, presences and tasks (from
//! `/metrics`) go to one CSV row. At the end it prints the baseline, the
//! peak, each quiet window's values and verdicts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::{add_errors, Env};
use crate::cli::{Common, SoakArgs};
use crate::conn::{self, Connector, Errors};
use crate::http_client::{metric, HttpConn};
use crate::proc_stats::ProcWatch;
use crate::report::Report;

/// What clients may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Clients connect and work.
    Active,
    /// No clients: every session ends and none starts.
    Quiet,
    /// The run is over.
    Stop,
}

/// Whether second `t` of a run of `duration` seconds is in a quiet window.
fn quiet_at(t: f64, duration: f64, cycle: f64, quiet: f64) -> bool {
    t >= duration - quiet || (cycle > 0.0 && t % cycle >= cycle - quiet)
}

/// A small deterministic random source (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A duration uniformly in `[low, high]` milliseconds.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high.saturating_sub(low) + 1))
    }
}

/// What the clients did, for the CSV and the report.
#[derive(Default)]
struct Stats {
    sessions: AtomicU64,
    ws_sessions: AtomicU64,
    lp_sessions: AtomicU64,
    slow_sessions: AtomicU64,
    joins: AtomicU64,
    leaves: AtomicU64,
    pushes: AtomicU64,
    received: AtomicU64,
    vanished: AtomicU64,
    server_closed: AtomicU64,
    broadcasts: AtomicU64,
}

/// What every client task shares.
struct Ctx {
    connector: Arc<Connector>,
    args: SoakArgs,
    longpoll_path: String,
    stats: Stats,
    errors: Errors,
    phase: watch::Receiver<Phase>,
    timeout: Duration,
}

impl Ctx {
    /// Wait until clients may work; false once the run is over.
    async fn wait_active(&self) -> bool {
        let mut phase = self.phase.clone();
        let active = match phase.wait_for(|p| *p != Phase::Quiet).await {
            Ok(p) => *p == Phase::Active,
            Err(_) => false,
        };
        active
    }

    fn room(&self, i: usize) -> String {
        format!("room:soak:{}", i % self.args.topics.max(1))
    }

    fn relay(&self, i: usize) -> String {
        format!("bench:soak:{}", i % self.args.topics.max(1))
    }
}

/// Resolves when the phase is no longer `Active`.
async fn until_inactive(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Active).await;
}

/// One CSV row.
#[derive(Clone, Debug, Default)]
struct Row {
    t_s: f64,
    quiet: bool,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    ws_conns: f64,
    lp_conns: f64,
    http_conns: f64,
    channels: f64,
    presences: f64,
    tasks: f64,
    messages_in: f64,
    messages_out: f64,
    evicted: f64,
    bench_sessions: u64,
    bench_errors: u64,
}

const CSV_HEADER: &str = "t_s,phase,rss_kib,open_fds,threads,ws_connections,longpoll_connections,http_connections,channels_joined,presence_entries,tasks_alive,messages_in_total,messages_out_total,slow_clients_evicted_total,bench_sessions,bench_errors";

impl Row {
    fn csv(&self) -> String {
        format!(
            "{:.1},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.t_s,
            if self.quiet { "quiet" } else { "active" },
            self.rss_kib,
            self.fds,
            self.threads,
            self.ws_conns,
            self.lp_conns,
            self.http_conns,
            self.channels,
            self.presences,
            self.tasks,
            self.messages_in,
            self.messages_out,
            self.evicted,
            self.bench_sessions,
            self.bench_errors,
        )
    }
}

/// Run the scenario.
pub(crate) async fn run(env: &Env, common: &Common, args: &SoakArgs) -> Result<Report, String> {
    let Some(server) = env.servers.first().copied() else {
        return Err("--server-pid is required: the soak samples that process".into());
    };
    if args.quiet >= args.cycle && args.cycle > 0 {
        return Err("--quiet must be shorter than --cycle".into());
    }
    let mut csv = std::fs::File::create(&args.csv)
        .map_err(|e| format!("cannot create {}: {e}", args.csv.display()))?;
    writeln!(csv, "{CSV_HEADER}").map_err(|e| e.to_string())?;
    env.check_capacity(args.ws_clients + args.lp_clients * 2 + args.slow_clients + 16);

    let target = env.connector.target();
    let longpoll_path = format!(
        "{}/{}/longpoll",
        target.base_path,
        common.socket_path.trim_matches('/')
    );
    let (phase_tx, phase_rx) = watch::channel(Phase::Active);
    let ctx = Arc::new(Ctx {
        connector: Arc::clone(&env.connector),
        args: args.clone(),
        longpoll_path,
        stats: Stats::default(),
        errors: Errors::default(),
        phase: phase_rx,
        timeout: common.op_timeout(),
    });

    let started = Instant::now();
    let mut rows = Vec::new();
    let baseline = sample(&ctx, &server, 0.0, false).await;
    writeln!(csv, "{}", baseline.csv()).map_err(|e| e.to_string())?;
    rows.push(baseline.clone());

    let mut tasks = JoinSet::new();
    let mut index = 0usize;
    let mut next = || {
        index += 1;
        index
    };
    for _ in 0..args.ws_clients {
        tasks.spawn(ws_client(Arc::clone(&ctx), next()));
    }
    for _ in 0..args.lp_clients {
        tasks.spawn(lp_client(Arc::clone(&ctx), next()));
    }
    for _ in 0..args.slow_clients {
        tasks.spawn(slow_client(Arc::clone(&ctx), next()));
    }
    if args.hot_rate > 0.0 {
        tasks.spawn(publisher(Arc::clone(&ctx), next()));
    }

    let duration = args.duration as f64;
    let sample_every = Duration::from_secs(args.sample_secs.max(1));
    let mut next_sample = Instant::now() + sample_every;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = started.elapsed().as_secs_f64();
        if t >= duration {
            break;
        }
        let quiet = quiet_at(t, duration, args.cycle as f64, args.quiet as f64);
        let want = if quiet { Phase::Quiet } else { Phase::Active };
        if *phase_tx.borrow() != want {
            let _ = phase_tx.send(want);
        }
        if Instant::now() >= next_sample {
            next_sample += sample_every;
            let row = sample(&ctx, &server, t, quiet).await;
            writeln!(csv, "{}", row.csv()).map_err(|e| e.to_string())?;
            let _ = csv.flush();
            eprintln!(
                "[soak {t:>7.1}s] {} rss {} KiB fds {} ws {} lp {} presences {} tasks {} sessions {} errors {}",
                if quiet { "quiet " } else { "active" },
                row.rss_kib,
                row.fds,
                row.ws_conns,
                row.lp_conns,
                row.presences,
                row.tasks,
                row.bench_sessions,
                row.bench_errors
            );
            rows.push(row);
        }
    }
    let end = sample(&ctx, &server, started.elapsed().as_secs_f64(), true).await;
    writeln!(csv, "{}", end.csv()).map_err(|e| e.to_string())?;
    rows.push(end);
    let _ = phase_tx.send(Phase::Stop);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    Ok(summarize(&ctx, &rows, args))
}

/// One sample of the server: `/proc` and `/metrics`.
async fn sample(ctx: &Ctx, server: &ProcWatch, t_s: f64, quiet: bool) -> Row {
    let mut row = Row {
        t_s,
        quiet,
        bench_sessions: ctx.stats.sessions.load(Ordering::Relaxed),
        bench_errors: ctx.errors.total(),
        ..Row::default()
    };
    if let Ok(s) = server.sample() {
        row.rss_kib = s.rss_kib;
    }
    row.fds = server.open_files().unwrap_or(0) as u64;
    row.threads = server.threads().unwrap_or(0);
    match scrape(ctx).await {
        Ok(text) => {
            let m = |series: &str| metric(&text, series).unwrap_or(f64::NAN);
            row.ws_conns = m("fawkes_connections{transport=\"websocket\"}");
            row.lp_conns = m("fawkes_connections{transport=\"longpoll\"}");
            row.http_conns = m("fawkes_http_connections");
            row.channels = m("fawkes_channels_joined");
            row.presences = m("fawkes_presence_entries");
            row.tasks = m("fawkes_tasks_alive");
            row.messages_in = m("fawkes_messages_in_total");
            row.messages_out = m("fawkes_messages_out_total");
            row.evicted = m("fawkes_slow_clients_evicted_total");
        }
        Err(e) => ctx.errors.add(format!("metrics: {e}")),
    }
    row
}

async fn scrape(ctx: &Ctx) -> Result<String, String> {
    let mut http = HttpConn::connect(&ctx.connector, 0, ctx.timeout).await?;
    let path = format!("{}/metrics", ctx.connector.target().base_path);
    let (status, body) = http.get(&path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}"));
    }
    Ok(body)
}

/// A websocket client: sessions one after the other until the run ends.
async fn ws_client(ctx: Arc<Ctx>, index: usize) {
    let mut rng = Rng::new(index as u64);
    // Spread the first connects over two seconds.
    tokio::time::sleep(rng.millis(0, 2000)).await;
    while ctx.wait_active().await {
        if let Err(e) = ws_session(&ctx, index, &mut rng).await {
            ctx.errors.add(e);
        }
        tokio::time::sleep(rng.millis(200, 2000)).await;
    }
}

async fn ws_session(ctx: &Ctx, index: usize, rng: &mut Rng) -> Result<(), String> {
    let lifetime = rng.millis(ctx.args.min_life * 1000, ctx.args.max_life * 1000);
    let user = format!("s{index}");
    let room = ctx.room(index);
    let relay = ctx.relay(index);
    let mut ws = ctx
        .connector
        .connect(index, &format!("user={user}"))
        .await
        .map_err(|e| e.to_string())?;
    ctx.stats.sessions.fetch_add(1, Ordering::Relaxed);
    ctx.stats.ws_sessions.fetch_add(1, Ordering::Relaxed);
    conn::join(&mut ws, &room, "1", json!({"user": user}), ctx.timeout)
        .await
        .map_err(|e| e.to_string())?;
    conn::join(&mut ws, &relay, "2", json!({}), ctx.timeout)
        .await
        .map_err(|e| e.to_string())?;
    ctx.stats.joins.fetch_add(2, Ordering::Relaxed);
    let mut phase = ctx.phase.clone();
    let end = tokio::time::sleep(lifetime);
    tokio::pin!(end);
    let push_every = Duration::from_millis(ctx.args.push_ms.max(50));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + push_every, push_every);
    let mut refs: u64 = 10;
    let mut relay_join = 2u64;
    let mut ended_by_server = false;
    loop {
        tokio::select! {
            _ = until_inactive(&mut phase) => break,
            _ = &mut end => break,
            _ = ticker.tick() => {
                refs += 1;
                let r = refs.to_string();
                let frame = conn::push_frame(Some("1"), Some(&r), &room, "new_msg", json!({"body": "soak", "n": refs}));
                if ws.send(Message::text(frame)).await.is_err() {
                    ended_by_server = true;
                    break;
                }
                ctx.stats.pushes.fetch_add(1, Ordering::Relaxed);
                if refs.is_multiple_of(5) {
                    // Leave the relay topic and join it again.
                    let old = relay_join.to_string();
                    refs += 1;
                    relay_join = refs;
                    let new = relay_join.to_string();
                    let leave = conn::push_frame(Some(&old), Some(&old), &relay, "phx_leave", json!({}));
                    let join = conn::push_frame(Some(&new), Some(&new), &relay, "phx_join", json!({}));
                    let sent = ws.send(Message::text(leave)).await.is_ok() && ws.send(Message::text(join)).await.is_ok();
                    if !sent {
                        ended_by_server = true;
                        break;
                    }
                    ctx.stats.leaves.fetch_add(1, Ordering::Relaxed);
                    ctx.stats.joins.fetch_add(1, Ordering::Relaxed);
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(_))) => { ctx.stats.received.fetch_add(1, Ordering::Relaxed); }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { ended_by_server = true; break; }
                Some(Ok(_)) => {}
            },
        }
    }
    if ended_by_server {
        ctx.stats.server_closed.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    if rng.next().is_multiple_of(4) {
        // Vanish: no close frame, the TCP connection just goes away.
        ctx.stats.vanished.fetch_add(1, Ordering::Relaxed);
        drop(ws);
    } else {
        conn::close(ws).await;
    }
    Ok(())
}

/// A LongPoll client: sessions one after the other until the run ends.
async fn lp_client(ctx: Arc<Ctx>, index: usize) {
    let mut rng = Rng::new(index as u64);
    tokio::time::sleep(rng.millis(0, 2000)).await;
    while ctx.wait_active().await {
        if let Err(e) = lp_session(&ctx, index, &mut rng).await {
            ctx.errors.add(e);
        }
        tokio::time::sleep(rng.millis(200, 2000)).await;
    }
}

/// The `status` and `token` of a LongPoll response body.
fn lp_status(body: &str) -> Result<(u64, Option<String>, usize), String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("longpoll body not JSON: {e}"))?;
    let status = value["status"]
        .as_u64()
        .ok_or("longpoll body without status")?;
    let token = value["token"].as_str().map(str::to_owned);
    let messages = value["messages"].as_array().map_or(0, Vec::len);
    Ok((status, token, messages))
}

async fn lp_session(ctx: &Arc<Ctx>, index: usize, rng: &mut Rng) -> Result<(), String> {
    let lifetime = rng.millis(ctx.args.min_life * 1000, ctx.args.max_life * 1000);
    let user = format!("l{index}");
    let base = format!("{}?vsn=2.0.0&user={user}", ctx.longpoll_path);
    // Longer than the server's poll window (10 s).
    let poll_timeout = ctx.timeout.max(Duration::from_secs(20));
    let mut poll = HttpConn::connect(&ctx.connector, index, poll_timeout).await?;
    let (status, token, _) = lp_status(&poll.get(&format!("{base}&token=")).await?.1)?;
    let token = match (status, token) {
        (410, Some(token)) => token,
        other => return Err(format!("longpoll open answered {other:?}")),
    };
    ctx.stats.sessions.fetch_add(1, Ordering::Relaxed);
    ctx.stats.lp_sessions.fetch_add(1, Ordering::Relaxed);
    let mut post = HttpConn::connect(&ctx.connector, index, ctx.timeout).await?;
    let url = format!("{base}&token={token}");
    let room = ctx.room(index);
    let join = conn::push_frame(
        Some("1"),
        Some("1"),
        &room,
        "phx_join",
        json!({"user": user}),
    );
    let (status, body) = post.post(&url, "application/x-ndjson", join).await?;
    if status != 200 || lp_status(&body)?.0 != 200 {
        return Err(format!("longpoll join post answered {status} {body}"));
    }
    ctx.stats.joins.fetch_add(1, Ordering::Relaxed);

    // Poll until told to stop; the session then ends on the server when
    // no poll comes (the client vanished, as a closed browser tab does).
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let poller = {
        let ctx = Arc::clone(ctx);
        let mut url = url.clone();
        tokio::spawn(async move {
            loop {
                let polled = tokio::select! {
                    _ = stop_rx.wait_for(|s| *s) => return,
                    polled = poll.get(&url) => polled,
                };
                match polled.and_then(|(_, body)| lp_status(&body)) {
                    Ok((200, token, n)) | Ok((204, token, n)) => {
                        ctx.stats.received.fetch_add(n as u64, Ordering::Relaxed);
                        if let Some(token) = token {
                            url = format!(
                                "{}&token={token}",
                                url.rsplit_once("&token=").map_or(url.as_str(), |(b, _)| b)
                            );
                        }
                    }
                    Ok((status, _, _)) => {
                        ctx.errors
                            .add(format!("longpoll poll answered status {status}"));
                        return;
                    }
                    Err(e) => {
                        ctx.errors.add(e);
                        return;
                    }
                }
            }
        })
    };
    let mut phase = ctx.phase.clone();
    let end = tokio::time::sleep(lifetime);
    tokio::pin!(end);
    let push_every = Duration::from_millis(ctx.args.push_ms.max(50));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + push_every, push_every);
    let mut refs: u64 = 1;
    loop {
        tokio::select! {
            _ = until_inactive(&mut phase) => break,
            _ = &mut end => break,
            _ = ticker.tick() => {
                refs += 1;
                let r = refs.to_string();
                let frame = conn::push_frame(Some("1"), Some(&r), &room, "new_msg", json!({"body": "soak", "n": refs}));
                match post.post(&url, "application/x-ndjson", frame).await {
                    Ok((200, _)) => { ctx.stats.pushes.fetch_add(1, Ordering::Relaxed); }
                    Ok((status, body)) => {
                        ctx.errors.add(format!("longpoll push answered {status} {body}"));
                        break;
                    }
                    Err(e) => { ctx.errors.add(e); break; }
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = poller.await;
    ctx.stats.vanished.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A slow client: joins the hot relay topic with a tiny receive buffer and
/// never reads, then vanishes.
async fn slow_client(ctx: Arc<Ctx>, index: usize) {
    let mut rng = Rng::new(index as u64);
    tokio::time::sleep(rng.millis(0, 2000)).await;
    while ctx.wait_active().await {
        let joined = async {
            let mut ws = ctx
                .connector
                .connect_with(index, &format!("user=slow{index}"), Some(4096))
                .await?;
            conn::join(&mut ws, "bench:soak:0", "1", json!({}), ctx.timeout).await?;
            Ok::<_, conn::ConnError>(ws)
        }
        .await;
        match joined {
            Ok(ws) => {
                ctx.stats.sessions.fetch_add(1, Ordering::Relaxed);
                ctx.stats.slow_sessions.fetch_add(1, Ordering::Relaxed);
                ctx.stats.joins.fetch_add(1, Ordering::Relaxed);
                let mut phase = ctx.phase.clone();
                // Long enough for the server's queue for it to fill up.
                let life = rng.millis(ctx.args.max_life * 3000, ctx.args.max_life * 6000);
                tokio::select! {
                    _ = until_inactive(&mut phase) => {}
                    _ = tokio::time::sleep(life) => {}
                }
                ctx.stats.vanished.fetch_add(1, Ordering::Relaxed);
                drop(ws);
            }
            Err(e) => ctx.errors.add(e),
        }
        tokio::time::sleep(rng.millis(200, 2000)).await;
    }
}

/// Pushes `broadcast`s with padding on `bench:soak:0` at `--hot-rate`.
async fn publisher(ctx: Arc<Ctx>, index: usize) {
    let pad = "x".repeat(ctx.args.payload_bytes);
    while ctx.wait_active().await {
        let mut ws = match conn::connect_and_join(
            &ctx.connector,
            index,
            "user=pub",
            "bench:soak:0",
            json!({}),
        )
        .await
        {
            Ok(ws) => ws,
            Err(e) => {
                ctx.errors.add(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        ctx.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let every = Duration::from_secs_f64(1.0 / ctx.args.hot_rate);
        let mut ticker = tokio::time::interval(every);
        let mut phase = ctx.phase.clone();
        let mut n: u64 = 1;
        loop {
            tokio::select! {
                _ = until_inactive(&mut phase) => break,
                _ = ticker.tick() => {
                    n += 1;
                    let r = n.to_string();
                    let frame = conn::push_frame(Some("1"), Some(&r), "bench:soak:0", "broadcast", json!({"n": n, "pad": pad}));
                    if ws.send(Message::text(frame)).await.is_err() {
                        break;
                    }
                    ctx.stats.broadcasts.fetch_add(1, Ordering::Relaxed);
                }
                message = ws.next() => match message {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    _ => {}
                },
            }
        }
        conn::close(ws).await;
    }
}

/// The last row of each quiet window (the settled values).
fn quiet_window_ends(rows: &[Row]) -> Vec<&Row> {
    let mut ends = Vec::new();
    for (i, row) in rows.iter().enumerate().skip(1) {
        let next_quiet = rows.get(i + 1).is_some_and(|r| r.quiet);
        if row.quiet && !next_quiet {
            ends.push(row);
        }
    }
    ends
}

/// Verdicts from the samples: baseline, peak, quiet windows, end.
fn summarize(ctx: &Ctx, rows: &[Row], args: &SoakArgs) -> Report {
    let mut report = Report::new("soak");
    let s = &ctx.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    report
        .add("duration_s", args.duration)
        .add("sessions", load(&s.sessions))
        .add("ws_sessions", load(&s.ws_sessions))
        .add("longpoll_sessions", load(&s.lp_sessions))
        .add("slow_sessions", load(&s.slow_sessions))
        .add("joins", load(&s.joins))
        .add("leaves", load(&s.leaves))
        .add("pushes", load(&s.pushes))
        .add("publisher_broadcasts", load(&s.broadcasts))
        .add("frames_received", load(&s.received))
        .add("vanished", load(&s.vanished))
        .add("closed_by_server", load(&s.server_closed));
    add_errors(&mut report, &ctx.errors);
    let (Some(baseline), Some(end)) = (rows.first(), rows.last()) else {
        return report;
    };
    let peak = rows.iter().map(|r| r.rss_kib).max().unwrap_or(0);
    let peak_fds = rows.iter().map(|r| r.fds).max().unwrap_or(0);
    let windows = quiet_window_ends(rows);
    let mut quiet_rss = String::new();
    for w in &windows {
        let _ = write!(quiet_rss, "{}s:{} ", w.t_s.round(), w.rss_kib);
    }
    report
        .add("csv", args.csv.display().to_string())
        .add("baseline_rss_kib", baseline.rss_kib)
        .add("peak_rss_kib", peak)
        .add("end_rss_kib", end.rss_kib)
        .add("quiet_window_rss_kib", quiet_rss.trim_end().to_owned())
        .add("baseline_fds", baseline.fds)
        .add("peak_fds", peak_fds)
        .add("end_fds", end.fds)
        .add("baseline_tasks", baseline.tasks)
        .add("end_tasks", end.tasks)
        .add("end_connections", end.ws_conns + end.lp_conns)
        .add("end_presence_entries", end.presences)
        .add("slow_clients_evicted", end.evicted);
    for (key, verdict) in verdicts(baseline, end, &windows) {
        report.add(key, verdict);
    }
    report
}

/// `(name, "yes: ..." / "no: ...")` per check.
fn verdicts(baseline: &Row, end: &Row, windows: &[&Row]) -> Vec<(&'static str, String)> {
    let yes_no = |ok: bool, detail: String| format!("{}: {detail}", if ok { "yes" } else { "no" });
    let mut out = Vec::new();
    let fds_ok = end.fds <= baseline.fds + 2;
    out.push((
        "fds_back_to_baseline",
        yes_no(
            fds_ok,
            format!("{} at the end, {} at the start", end.fds, baseline.fds),
        ),
    ));
    let tasks_ok = end.tasks <= baseline.tasks + 2.0;
    out.push((
        "tasks_back_to_baseline",
        yes_no(
            tasks_ok,
            format!("{} at the end, {} at the start", end.tasks, baseline.tasks),
        ),
    ));
    let empty = end.ws_conns + end.lp_conns == 0.0 && end.presences == 0.0 && end.channels == 0.0;
    out.push((
        "sessions_channels_presences_gone",
        yes_no(
            empty,
            format!(
                "{} websocket, {} longpoll, {} channels, {} presences at the end",
                end.ws_conns, end.lp_conns, end.channels, end.presences
            ),
        ),
    ));
    // Memory: the allocator keeps some of what it once used, so "back near
    // the baseline" allows 16 MiB; "flat after warm-up" compares the quiet
    // windows after the first one (the warm-up) with each other.
    let slack = 16 * 1024;
    out.push((
        "rss_back_near_baseline",
        yes_no(
            end.rss_kib <= baseline.rss_kib + slack,
            format!(
                "{} KiB at the end, {} KiB at the start (allowed: +{slack} KiB)",
                end.rss_kib, baseline.rss_kib
            ),
        ),
    ));
    // The first quiet window is the warm-up when there are three or more.
    let first = match windows.len() {
        0 => None,
        1 | 2 => windows.first(),
        _ => windows.get(1),
    };
    if let (Some(first), Some(last)) = (first, windows.last()) {
        let allowed = (first.rss_kib / 20).max(2048);
        let grew = last.rss_kib.saturating_sub(first.rss_kib);
        out.push((
            "rss_flat_after_warmup",
            yes_no(
                grew <= allowed,
                format!(
                    "quiet-window RSS {} KiB at {:.0}s, {} KiB at {:.0}s (+{grew}, allowed +{allowed})",
                    first.rss_kib, first.t_s, last.rss_kib, last.t_s
                ),
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_windows_end_each_cycle_and_the_run() {
        // Cycles of 300 s whose last 60 s are quiet; a run of 700 s.
        assert!(!quiet_at(0.0, 700.0, 300.0, 60.0));
        assert!(!quiet_at(239.0, 700.0, 300.0, 60.0));
        assert!(quiet_at(240.0, 700.0, 300.0, 60.0));
        assert!(!quiet_at(300.0, 700.0, 300.0, 60.0));
        assert!(quiet_at(545.0, 700.0, 300.0, 60.0));
        assert!(!quiet_at(630.0, 700.0, 300.0, 60.0));
        assert!(quiet_at(640.0, 700.0, 300.0, 60.0));
    }

    #[test]
    fn finds_the_settled_row_of_each_quiet_window() {
        let row = |t: f64, quiet: bool, rss: u64| Row {
            t_s: t,
            quiet,
            rss_kib: rss,
            ..Row::default()
        };
        let rows = [
            row(0.0, false, 10),
            row(10.0, false, 50),
            row(20.0, true, 40),
            row(30.0, true, 20),
            row(40.0, false, 60),
            row(50.0, true, 30),
            row(60.0, true, 21),
        ];
        let ends: Vec<u64> = quiet_window_ends(&rows).iter().map(|r| r.rss_kib).collect();
        assert_eq!(ends, [20, 21]);
        let windows = quiet_window_ends(&rows);
        let found = verdicts(&rows[0], &rows[6], &windows);
        let flat = found
            .iter()
            .find(|(k, _)| *k == "rss_flat_after_warmup")
            .unwrap();
        assert!(flat.1.starts_with("yes"), "{flat:?}");
        let grown = [
            row(0.0, false, 10),
            row(20.0, true, 10_000),
            row(40.0, true, 20_000),
        ];
        let windows = quiet_window_ends(&grown);
        assert_eq!(windows.len(), 1);
        let mut leaking = grown.to_vec();
        leaking.insert(2, row(30.0, false, 15_000));
        let windows = quiet_window_ends(&leaking);
        let found = verdicts(&leaking[0], &leaking[3], &windows);
        let flat = found
            .iter()
            .find(|(k, _)| *k == "rss_flat_after_warmup")
            .unwrap();
        assert!(flat.1.starts_with("no"), "{flat:?}");
    }

    #[test]
    fn reads_longpoll_statuses() {
        assert_eq!(
            lp_status(r#"{"status":410,"token":"abc","messages":[]}"#).unwrap(),
            (410, Some("abc".to_owned()), 0)
        );
        assert_eq!(
            lp_status(r#"{"status":200,"token":"t","messages":["a","b"]}"#).unwrap(),
            (200, Some("t".to_owned()), 2)
        );
        assert!(lp_status("nope").is_err());
    }
}
