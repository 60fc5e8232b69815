//! `fawkes-conformance`: serve the conformance app, or replay recorded
//! Phoenix transcripts against a server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fawkes_conformance::replay::{self, http::BaseUrl, RunConfig};
use tracing_subscriber::EnvFilter;

/// The conformance app and the transcript replay runner.
#[derive(Debug, Parser)]
#[command(name = "fawkes-conformance", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the conformance app (APP.md) on fawkes.
    Serve {
        /// TCP port to listen on.
        #[arg(long)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Join a cluster (fawkes or Phoenix nodes) over this Redis.
        #[arg(long)]
        redis_url: Option<String>,
        /// This node's name in the cluster (an atom to Phoenix nodes).
        #[arg(long, default_value = "fawkes_conformance")]
        node_name: String,
        /// The Elixir PubSub to share (`Conf.PubSub` is the recorded app's).
        #[arg(long, default_value = "Fawkes.PubSub")]
        phoenix_pubsub: String,
        /// zlib level 1..=9 for what this node publishes.
        #[arg(long)]
        compression: Option<u32>,
    },
    /// Replay transcripts against a running server.
    Replay {
        /// Base URL of the server, e.g. http://127.0.0.1:4100.
        #[arg(long)]
        url: String,
        /// Skip transcripts whose file name starts with this prefix (repeatable).
        #[arg(long = "exclude", value_name = "GLOB_PREFIX")]
        excludes: Vec<String>,
        /// Override every transcript's settle window (milliseconds).
        #[arg(long = "settle-ms", value_name = "N")]
        settle_ms: Option<u64>,
        /// Transcript files or folders (every *.json inside, sorted by name).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve {
            port,
            host,
            redis_url,
            node_name,
            phoenix_pubsub,
            compression,
        } => {
            let addr = SocketAddr::new(host, port);
            let cluster = redis_url.map(|url| {
                let mut options = fawkes::pubsub::redis::RedisOptions::new(url, node_name);
                options.pubsub_name = phoenix_pubsub;
                options.compression = compression;
                options
            });
            match fawkes_conformance::app::serve(addr, cluster).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("serve {addr}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay {
            url,
            excludes,
            settle_ms,
            paths,
        } => {
            let base = match BaseUrl::parse(&url) {
                Ok(base) => base,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let files = match replay::collect(&paths, &excludes) {
                Ok(files) => files,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let mut config = RunConfig::new(base);
            config.settle_override = settle_ms.map(Duration::from_millis);
            let mut stdout = std::io::stdout();
            match replay::run_files(&files, &config, &mut stdout).await {
                Ok(summary) if summary.success() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("writing the report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
