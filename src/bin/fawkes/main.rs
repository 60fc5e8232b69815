//! The `fawkes` binary: a thin clap + tracing shell around the library.
//! `fawkes serve` runs a chat server from an embedded default configuration
//! (or a TOML file merged into it); `fawkes check-config` prints the
//! configuration a file gives; `fawkes record` and `fawkes replay` record a
//! Phoenix app's traffic and replay it (see docs/migrating.md).

mod api;
mod auth;
mod chat;
mod cli;
mod cluster;
mod config;
mod connect;
mod dashboard;
mod operations;
mod record_cmd;
mod redact;
mod relay;
mod replay_cmd;
mod static_files;
mod token_cmd;
mod webhook;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, ServeArgs};

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => token_cmd::run(args),
        Command::Replay(args) => {
            init_tracing("warn");
            replay_cmd::run(args).await
        }
        Command::Record(args) => {
            init_tracing(&args.log_level);
            record_cmd::run(args).await
        }
        Command::CheckConfig(args) => match config::Config::load(args.file.as_deref()) {
            Ok(config) => {
                print!("{}", config.to_toml());
                if let Err(message) = config.check_files() {
                    eprintln!("fawkes: warning: {message}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("fawkes: {error}");
                ExitCode::from(2)
            }
        },
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&args.log_level));
    // Colour only for a person at a terminal: a log file gets plain text.
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();

    let config = match config::Config::load(args.config.as_deref()) {
        Ok(config) => config.with_overrides(&args),
        Err(error) => {
            eprintln!("fawkes: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(message) = config.check_files() {
        eprintln!("fawkes: {message}");
        return ExitCode::from(2);
    }
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
