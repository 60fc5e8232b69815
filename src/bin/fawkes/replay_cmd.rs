//! `fawkes replay`: replays transcripts (recorded by `fawkes record`, or the
//! conformance recordings) against a running server and prints one line per
//! transcript, the first difference of a failing one with the steps leading
//! to it, and `N passed, M failed` last.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use fawkes_replay::expect::Races;
use fawkes_replay::http::BaseUrl;
use fawkes_replay::normalize::MatchRules;
use fawkes_replay::RunConfig;

/// `fawkes replay` options.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Base URL of the server under test, e.g. http://127.0.0.1:4000.
    #[arg(long)]
    pub(crate) url: String,
    /// Transcript files or folders (every *.json inside, sorted by name).
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Skip transcripts whose file name starts with this prefix (repeatable).
    #[arg(long = "exclude", value_name = "PREFIX")]
    pub(crate) excludes: Vec<String>,
    /// Override every transcript's settle window (milliseconds).
    #[arg(long = "settle-ms", value_name = "N")]
    pub(crate) settle_ms: Option<u64>,
    /// Also normalise the string values of this JSON key like phx_ref: any
    /// value matches, but the same recorded value must always be the same
    /// live value (repeatable; e.g. a server-generated id).
    #[arg(long = "normalize-key", value_name = "KEY")]
    pub(crate) normalize_keys: Vec<String>,
    /// Do not compare the values of this JSON key (the key must still be
    /// present; repeatable; e.g. a timestamp).
    #[arg(long = "ignore-key", value_name = "KEY")]
    pub(crate) ignore_keys: Vec<String>,
    /// Orderings Phoenix itself races, accepted in either order: `presence`
    /// (a presence_state before or after the presence_diffs of the same
    /// action), `longpoll-batch` (the messages of one longpoll response in
    /// any order), `channels` (the frames of different channels of one
    /// connection, a channel being a topic and join_ref, interleaved in any
    /// order; each channel keeps its order), `ahead` (a frame the next
    /// action's answers start with on its connection may arrive before that
    /// action), `none`; comma-separated.
    #[arg(long, value_name = "LIST", default_value = "presence", value_parser = parse_races)]
    pub(crate) races: Races,
    /// Demand the pushes a recording marks `server_initiated` (by default
    /// they are accepted when they come, not demanded).
    #[arg(long)]
    pub(crate) require_server_pushes: bool,
    /// Recorded steps shown before the failing step of a failed transcript.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub(crate) context: usize,
}

/// Parses the `--races` list.
pub(crate) fn parse_races(list: &str) -> Result<Races, String> {
    let mut races = Races {
        presence_state: false,
        longpoll_batch: false,
        channels: false,
        ahead: false,
        tail: false,
    };
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "presence" => races.presence_state = true,
            "longpoll-batch" => races.longpoll_batch = true,
            "channels" => races.channels = true,
            "ahead" => races.ahead = true,
            "tail" => races.tail = true,
            "none" => {}
            other => {
                return Err(format!(
                    "unknown race {other:?} (expected presence, longpoll-batch, channels, ahead, tail or none)"
                ))
            }
        }
    }
    Ok(races)
}

/// Runs `fawkes replay`; exit code 0 when everything passed, 1 when
/// something failed, 2 for bad arguments.
pub(crate) async fn run(args: ReplayArgs) -> ExitCode {
    let base = match BaseUrl::parse(&args.url) {
        Ok(base) => base,
        Err(e) => {
            eprintln!("fawkes replay: {e}");
            return ExitCode::from(2);
        }
    };
    let files = match fawkes_replay::collect(&args.paths, &args.excludes) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("fawkes replay: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = RunConfig::new(base);
    config.settle_override = args.settle_ms.map(Duration::from_millis);
    config.races = args.races;
    config.rules = MatchRules {
        normalise_keys: args.normalize_keys,
        ignore_keys: args.ignore_keys,
        longpoll_batch_any_order: args.races.longpoll_batch,
    };
    config.demand_server_initiated = args.require_server_pushes;
    let mut stdout = std::io::stdout();
    match fawkes_replay::run_files_with_context(&files, &config, args.context, &mut stdout).await {
        Ok(summary) if summary.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fawkes replay: writing the report: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn races_list_parses() {
        let r = parse_races("presence,longpoll-batch").expect("ok");
        assert!(r.presence_state && r.longpoll_batch && !r.channels);
        let r = parse_races("channels,ahead").expect("ok");
        assert!(r.channels && r.ahead && !r.presence_state);
        let r = parse_races("none").expect("ok");
        assert!(!r.presence_state && !r.longpoll_batch && !r.channels);
        assert!(parse_races("presence,typo").is_err());
    }
}
