//! The `fawkes` binary: a thin clap + tracing shell around the library.
//! `fawkes serve` runs a chat server from an embedded default configuration
//! (or a TOML file that overrides it); `fawkes record` and `fawkes replay`
//! record a Phoenix app's traffic and replay it (see docs/migrating.md).

mod chat;
mod cli;
mod config;
mod record_cmd;
mod replay_cmd;
mod static_files;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Replay(args) => {
            init_tracing("warn");
            return replay_cmd::run(args).await;
        }
        Command::Record(args) => {
            init_tracing(&args.log_level);
            return record_cmd::run(args).await;
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let config = match config::Config::load(args.config.as_deref()) {
        Ok(config) => config.with_overrides(&args),
        Err(error) => {
            eprintln!("fawkes: {error}");
            return ExitCode::from(2);
        }
    };
    match chat::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fawkes: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `level` unless RUST_LOG says otherwise.
fn init_tracing(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
