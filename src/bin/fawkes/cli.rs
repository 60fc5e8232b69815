//! Command-line arguments.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A Phoenix Channels compatible real-time server.
#[derive(Debug, Parser)]
#[command(name = "fawkes", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the server (a chat on `room:*` with presence, and its page at `/`).
    Serve(ServeArgs),
    /// Replay transcripts against a running server (`N passed, M failed` last).
    Replay(crate::replay_cmd::ReplayArgs),
    /// Record a Phoenix server's socket traffic through a reverse proxy.
    Record(crate::record_cmd::RecordArgs),
    /// Check a config file and print the effective configuration (the
    /// embedded default with the file merged into it) as TOML.
    CheckConfig(CheckConfigArgs),
    /// Verify, decrypt, sign or encrypt a Phoenix.Token.
    Token(crate::token_cmd::TokenArgs),
}

/// `fawkes check-config` arguments.
#[derive(Debug, Args)]
pub(crate) struct CheckConfigArgs {
    /// The TOML file to check (omit it to print the embedded default).
    pub(crate) file: Option<PathBuf>,
}

/// `fawkes serve` options; each overrides the config file.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TCP port to listen on [default: 4000].
    #[arg(long, short)]
    pub(crate) port: Option<u16>,
    /// Address to bind [default: 127.0.0.1].
    #[arg(long)]
    pub(crate) bind: Option<IpAddr>,
    /// A TOML file overriding the embedded default configuration.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    pub(crate) log_level: String,
    /// Folder served at `/` (the chat page) [default: examples/chat of this project].
    #[arg(long)]
    pub(crate) static_dir: Option<PathBuf>,
    /// Join a cluster over this Redis (`redis://127.0.0.1:6379`); overrides
    /// `FAWKES_REDIS_URL` and `[cluster] redis_url`.
    #[arg(long)]
    pub(crate) redis_url: Option<String>,
    /// This node's name in the cluster; overrides `FAWKES_NODE_NAME` and
    /// `[cluster] node_name` [default: random].
    #[arg(long)]
    pub(crate) node_name: Option<String>,
}
