//! `fawkes record`: a reverse proxy in front of a running Phoenix (or
//! fawkes) server that forwards every socket unchanged and writes what
//! passes through as transcripts that `fawkes replay` can run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use fawkes_replay::http::BaseUrl;
use fawkes_replay::record::{self, Filter, Grouping, RecorderConfig};

/// `fawkes record` options.
#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// The Phoenix server to put the proxy in front of, e.g. http://127.0.0.1:4000.
    #[arg(long)]
    pub(crate) upstream: String,
    /// Address the proxy listens on (clients connect here), e.g. 127.0.0.1:4001.
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// Folder the transcripts are written to (created if missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Replace the value of this JSON key, query parameter or header by
    /// "REDACTED" in the transcripts (repeatable; the traffic is untouched).
    #[arg(long = "redact", value_name = "KEY")]
    pub(crate) redact: Vec<String>,
    /// Record only frames of topics matching this pattern (`room:*` is a
    /// prefix; repeatable; default: all topics).
    #[arg(long = "topic", value_name = "PATTERN")]
    pub(crate) topics: Vec<String>,
    /// Also record HTTP requests whose path starts with this prefix, e.g.
    /// /api/ (repeatable; `…/longpoll` is always recorded).
    #[arg(long = "record-http", value_name = "PREFIX")]
    pub(crate) record_http: Vec<String>,
    /// Settle window written into transcripts (ms); a client action within
    /// it of the previous event is marked pipelined, a push arriving later
    /// than it is marked server_initiated.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub(crate) settle_ms: u64,
    /// A transcript ends once its websockets are closed and nothing happened
    /// for this long (ms).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub(crate) idle_gap_ms: u64,
    /// Which connections share a transcript: `time` (every connection while
    /// a transcript is open: connections that overlap in time) or `topic`
    /// (connections that join a common topic, transitively; LongPoll
    /// sessions and recorded HTTP requests by the topics their bodies name).
    #[arg(long, value_name = "MODE", default_value = "time")]
    pub(crate) group: Grouping,
    /// Longest pause written as sleep_ms (ms).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub(crate) max_pause_ms: u64,
    /// A transcript is cut (written, and its open connections no longer
    /// recorded) once it exceeds this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub(crate) max_file_bytes: usize,
    /// Log level when RUST_LOG is not set.
    #[arg(long, default_value = "info")]
    pub(crate) log_level: String,
}

/// Runs the proxy until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: RecordArgs) -> ExitCode {
    let upstream = match BaseUrl::parse(&args.upstream) {
        Ok(base) => base,
        Err(e) => {
            eprintln!("fawkes record: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        // Not fatal: traffic is forwarded anyway, transcripts are dropped.
        tracing::warn!(out = %args.out.display(), error = %e, "cannot create the output folder");
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fawkes record: listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(args.listen, |a| a);
    // On stdout, so a script starting `--listen 127.0.0.1:0` learns the port.
    println!(
        "fawkes record: listening on http://{local}, upstream {}",
        args.upstream
    );
    let config = RecorderConfig {
        out: args.out.clone(),
        settle: Duration::from_millis(args.settle_ms),
        idle_gap: Duration::from_millis(args.idle_gap_ms),
        min_pause: Duration::from_millis(50),
        max_pause: Duration::from_millis(args.max_pause_ms),
        max_file_bytes: args.max_file_bytes,
        filter: Filter {
            redact: args.redact,
            topics: args.topics,
        },
        grouping: args.group,
    };
    let files = record::run(
        listener,
        upstream,
        args.record_http,
        config,
        shutdown_signal(),
    )
    .await;
    eprintln!(
        "fawkes record: {} transcript(s) written to {}",
        files.len(),
        args.out.display()
    );
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
