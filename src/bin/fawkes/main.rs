//! The `fawkes` binary: a thin clap + tracing shell around the library.
//! `fawkes serve` runs a chat server from an embedded default configuration
//! (or a TOML file that overrides it).

mod chat;
mod cli;
mod cluster;
mod config;
mod static_files;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
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
