//! The scenarios and what they share: the run environment (connector,
//! process watches, setup concurrency) and a progress ticker on stderr.

pub(crate) mod drain;
pub(crate) mod fanout;
pub(crate) mod floor;
pub(crate) mod idle;
pub(crate) mod joins;
pub(crate) mod presence;
pub(crate) mod roundtrip;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Common, Target};
use crate::conn::Connector;
use crate::proc_stats::{ProcWatch, Sample, Usage};
use crate::report::Report;

/// Everything a scenario needs besides its own options.
#[derive(Debug)]
pub(crate) struct Env {
    /// Opens connections to the target.
    pub(crate) connector: Arc<Connector>,
    /// The server process, when `--server-pid` was given.
    pub(crate) server: Option<ProcWatch>,
    /// This process.
    pub(crate) client: Option<ProcWatch>,
    /// Connections set up at once.
    pub(crate) concurrency: usize,
    /// This process's open file limit.
    pub(crate) fd_limit: u64,
}

impl Env {
    /// Check the options and the server process.
    pub(crate) fn new(common: &Common, fd_limit: u64) -> Result<Env, String> {
        let target = Target::parse(&common.url, &common.socket_path)?;
        let server = match common.server_pid {
            Some(pid) => Some(ProcWatch::new(pid).map_err(|e| format!("--server-pid {pid}: {e}"))?),
            None => None,
        };
        Ok(Env {
            connector: Arc::new(Connector::new(target, common.sources, common.op_timeout())),
            server,
            client: ProcWatch::this_process().ok(),
            concurrency: common.concurrency.max(1),
            fd_limit,
        })
    }

    /// Warn when this process or the server cannot hold `conns` sockets.
    pub(crate) fn check_capacity(&self, conns: usize) {
        let needed = conns as u64 + 64;
        if self.fd_limit < needed {
            eprintln!(
                "warning: this process may open {} files but needs about {needed}; expect 'Too many open files'",
                self.fd_limit
            );
        }
        if let Some(limit) = self.server.and_then(|s| s.open_files_limit()) {
            if limit < needed {
                eprintln!(
                    "warning: the server (pid {}) may open {limit} files but needs about {needed}: start it from a shell with `ulimit -n {}`",
                    self.server.map_or(0, |s| s.pid()),
                    needed.max(20_000)
                );
            }
        }
    }

    /// The server's CPU and RSS now.
    pub(crate) fn server_sample(&self) -> Option<Sample> {
        self.server.and_then(|s| s.sample().ok())
    }

    /// This process's CPU and RSS now.
    pub(crate) fn client_sample(&self) -> Option<Sample> {
        self.client.and_then(|s| s.sample().ok())
    }

    /// Server usage since `before`.
    pub(crate) fn server_usage(&self, before: Option<Sample>) -> Option<Usage> {
        Some(Usage::between(before?, self.server_sample()?))
    }

    /// Client usage since `before`.
    pub(crate) fn client_usage(&self, before: Option<Sample>) -> Option<Usage> {
        Some(Usage::between(before?, self.client_sample()?))
    }

    /// Add the server's open files and limit to `report`, warning when it
    /// is close to the limit.
    pub(crate) fn add_server_files(&self, report: &mut Report) {
        let Some(server) = self.server else {
            return;
        };
        let open = server.open_files();
        let limit = server.open_files_limit();
        if let Some(open) = open {
            report.add("server_open_files", open as u64);
        }
        if let Some(limit) = limit {
            report.add("server_open_files_limit", limit);
        }
        if let (Some(open), Some(limit)) = (open, limit) {
            if open as u64 + 16 >= limit {
                eprintln!("warning: the server has {open} files open of its limit {limit}: it has probably hit it");
            }
        }
    }
}

/// Prints a status line to stderr every two seconds until dropped.
pub(crate) struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Start printing `label: status()`.
    pub(crate) fn start(
        label: &'static str,
        status: impl Fn() -> String + Send + 'static,
    ) -> Progress {
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(2),
                Duration::from_secs(2),
            );
            loop {
                ticker.tick().await;
                eprintln!(
                    "[{label} {:>6.1}s] {}",
                    started.elapsed().as_secs_f64(),
                    status()
                );
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `count / seconds`, or 0 for an empty interval.
pub(crate) fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Wait until `done()` holds, checking every 20 ms, at most `limit`; true
/// if it held.
pub(crate) async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Add `n`/`m` failure counts and the error summary to `report`.
pub(crate) fn add_errors(report: &mut Report, errors: &crate::conn::Errors) {
    report.add("errors", errors.total());
    let summary = errors.summary();
    if !summary.is_empty() {
        report.add("error_kinds", summary);
    }
}

impl Env {
    /// Longest a setup of `conns` connections may take: each one is bounded
    /// by three operation timeouts, `concurrency` at a time; at most 10 min.
    pub(crate) fn setup_limit(&self, conns: usize) -> Duration {
        let rounds = conns.div_ceil(self.concurrency) as u32 + 1;
        (self.connector.timeout() * 3 * rounds).min(Duration::from_secs(600))
    }
}
