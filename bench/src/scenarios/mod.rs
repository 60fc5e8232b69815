//! The scenarios and what they share: the run environment (connector,
//! process watches, setup concurrency) and a progress ticker on stderr.

pub(crate) mod drain;
pub(crate) mod fanout;
pub(crate) mod floor;
pub(crate) mod idle;
pub(crate) mod joins;
pub(crate) mod presence;
pub(crate) mod roundtrip;
pub(crate) mod soak;

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
    /// The server processes given with `--server-pid` (one per node).
    pub(crate) servers: Vec<ProcWatch>,
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
        let targets = std::iter::once(&common.url)
            .chain(&common.also_urls)
            .map(|url| Target::parse(url, &common.socket_path))
            .collect::<Result<Vec<_>, _>>()?;
        let servers = common
            .server_pid
            .iter()
            .map(|&pid| ProcWatch::new(pid).map_err(|e| format!("--server-pid {pid}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Env {
            connector: Arc::new(Connector::new(targets, common.sources, common.op_timeout())),
            servers,
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
        // Connections are spread evenly over the nodes.
        let per_node = needed / self.servers.len().max(1) as u64 + 64;
        for server in &self.servers {
            if let Some(limit) = server.open_files_limit() {
                if limit < per_node {
                    eprintln!(
                        "warning: the server (pid {}) may open {limit} files but needs about {per_node}: start it from a shell with `ulimit -n {}`",
                        server.pid(),
                        per_node.max(20_000)
                    );
                }
            }
        }
    }

    /// The servers' CPU and RSS now, summed over the nodes (none when no
    /// `--server-pid` was given or one cannot be read).
    pub(crate) fn server_sample(&self) -> Option<Sample> {
        if self.servers.is_empty() {
            return None;
        }
        let mut sum = Sample {
            cpu_s: 0.0,
            sys_s: 0.0,
            rss_kib: 0,
        };
        for server in &self.servers {
            let sample = server.sample().ok()?;
            sum.cpu_s += sample.cpu_s;
            sum.sys_s += sample.sys_s;
            sum.rss_kib += sample.rss_kib;
        }
        Some(sum)
    }

    /// Each node's RSS now, in KiB, in `--server-pid` order.
    pub(crate) fn server_rss_per_node(&self) -> Vec<u64> {
        self.servers
            .iter()
            .filter_map(|s| s.sample().ok())
            .map(|s| s.rss_kib)
            .collect()
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

    /// Add the servers' open files (summed over nodes) and the smallest
    /// limit to `report`, warning about a node close to its limit.
    pub(crate) fn add_server_files(&self, report: &mut Report) {
        let mut open_sum = None;
        let mut limit_min: Option<u64> = None;
        for server in &self.servers {
            let open = server.open_files();
            let limit = server.open_files_limit();
            if let Some(open) = open {
                open_sum = Some(open_sum.unwrap_or(0) + open as u64);
            }
            if let Some(limit) = limit {
                limit_min = Some(limit_min.map_or(limit, |m| m.min(limit)));
            }
            if let (Some(open), Some(limit)) = (open, limit) {
                if open as u64 + 16 >= limit {
                    eprintln!(
                        "warning: the server (pid {}) has {open} files open of its limit {limit}: it has probably hit it",
                        server.pid()
                    );
                }
            }
        }
        if let Some(open) = open_sum {
            report.add("server_open_files", open);
        }
        if let Some(limit) = limit_min {
            report.add("server_open_files_limit", limit);
        }
        if self.servers.len() > 1 {
            let rss: Vec<String> = self
                .server_rss_per_node()
                .iter()
                .map(|kib| kib.to_string())
                .collect();
            report.add("server_rss_per_node_kib", rss.join(" "));
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
