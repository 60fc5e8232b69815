//! `fawkes-bench`: a load generator for Phoenix Channels servers.
//!
//! It speaks only the Phoenix V2 protocol over
//! `/socket/websocket?vsn=2.0.0`, so the same scenarios run against fawkes
//! and against a real Phoenix server. It only ever targets loopback
//! addresses, raises its own open file limit, spreads connections over
//! several loopback source addresses, and every scenario stops by itself.
//! Each scenario prints a small table and then one JSON line. See
//! BENCHMARKS.md at the repository root for how to run them.

mod baseline;
mod cli;
mod conn;
mod histogram;
mod http_client;
mod http_pub;
mod presence_model;
mod presence_scan;
mod proc_stats;
mod report;
mod scenarios;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Command};
use scenarios::Env;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let fd_limit = match proc_stats::raise_fd_limit() {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("warning: cannot raise the open file limit: {e}");
            0
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli, fd_limit));
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run(cli: Cli, fd_limit: u64) -> ExitCode {
    if let Command::BaselineServer(args) = &cli.command {
        return match baseline::serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("baseline-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Floor(args) = &cli.command {
        scenarios::floor::run(args).await.print();
        return ExitCode::SUCCESS;
    }
    let env = match Env::new(&cli.common, fd_limit) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let report = match &cli.command {
        Command::Idle(args) => scenarios::idle::run(&env, args).await,
        Command::Fanout(args) => scenarios::fanout::run(&env, args).await,
        Command::Joins(args) => scenarios::joins::run(&env, args).await,
        Command::Presence(args) => scenarios::presence::run(&env, args).await,
        Command::Roundtrip(args) => scenarios::roundtrip::run(&env, args).await,
        Command::Drain(args) => match scenarios::drain::run(&env, &cli.common, args).await {
            Ok(report) => report,
            Err(e) => {
                eprintln!("drain: {e}");
                return ExitCode::from(2);
            }
        },
        Command::Soak(args) => match scenarios::soak::run(&env, &cli.common, args).await {
            Ok(report) => report,
            Err(e) => {
                eprintln!("soak: {e}");
                return ExitCode::from(2);
            }
        },
        Command::BaselineServer(_) | Command::Floor(_) => return ExitCode::FAILURE,
    };
    report.print();
    ExitCode::SUCCESS
}
