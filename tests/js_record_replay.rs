//! The phoenix.js client tests (`js-client-tests/`, real phoenix.js under
//! `node --test`) recorded through `fawkes record` in front of the
//! conformance app, then replayed with `fawkes replay`: against a fresh
//! conformance app they pass; against a server whose room channel answers
//! differently (the `fawkes serve` chat) they fail with a readable first
//! difference.
//!
//! `js-client-tests/test/helpers.mjs` puts every server a test starts
//! behind `fawkes record` when `FAWKES_RECORD_OUT` is set. Recorded: the
//! conformance-app files `channel`, `longpoll`, `presence` and `socket`,
//! grouped by topic, except the tests [`PATTERN`] leaves out (see there for
//! why). LongPoll recordings replay however the live server cuts a
//! session's messages into poll responses (the replay compares the
//! sequence of messages). `fawkes-chat.test.mjs` is not recorded: its
//! server merges presence diffs over a 100 ms window, so which joins share
//! a `presence_diff` frame depends on timing, and its metas carry an
//! `online_at` clock time.
//!
//! Needs `js-client-tests/node_modules` (`./scripts/setup`) and the
//! `fawkes-conformance` binary beside `fawkes` (`cargo build -p
//! fawkes-conformance`; `cargo test --workspace` builds it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FAWKES: &str = env!("CARGO_BIN_EXE_fawkes");

/// The test files recorded (all start `fawkes-conformance serve`).
const FILES: [&str; 4] = [
    "test/channel.test.mjs",
    "test/longpoll.test.mjs",
    "test/presence.test.mjs",
    "test/socket.test.mjs",
];

/// `node --test-name-pattern`: the tests recorded. node runs every test of
/// a suite whose name matches, and the root test's name is `<root>`, so
/// those names are excluded first; then every test whose name has none of:
/// - `restart`: the test restarts the server on the same port; a replay
///   runs against one server that it cannot restart.
/// - `disconnect broadcast on the socket id`: the cause (a broadcast on the
///   socket id's topic) shares no channel topic with the connection it
///   closes, so topic grouping puts it in another transcript.
/// - `joined again after leaving`, `replaces the earlier channel`: the old
///   channel's `phx_close` and its leave reply race (two tasks send them,
///   seen in both orders from one fawkes build); no race option covers it.
const PATTERN: &str = concat!(
    r"^(?!(?:<root>|joining|replies|server pushes and broadcasts|leave and close",
    r"|crash and rejoin|binary payloads|presence|heartbeat",
    r"|refused and remote-closed connections|connecting|server restart",
    r"|LongPoll transport|LongPoll fallback \(longPollFallbackMs\))$)",
    r"(?:(?!restart|disconnect broadcast on the socket id|joined again after leaving",
    r"|replaces the earlier channel).)+$",
);

/// Recorder options: one transcript per set of connections sharing a
/// topic, the broadcast API recorded with them, short settle window and
/// pauses (the replay waits on frames, not on the recorded idle time).
const RECORD_ARGS: &str = "--group topic --record-http /api/ --settle-ms 150 --max-pause-ms 200";

/// The longest the recording or one replay may take.
const LIMIT: Duration = Duration::from_secs(120);

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target folder the binaries were built in (`…/target`).
fn target_dir() -> PathBuf {
    let exe = Path::new(FAWKES);
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("fawkes lives in <target>/debug")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_listening(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

fn start(bin: &Path, args: &[&str], port: u16) -> Proc {
    let child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let proc = Proc(child);
    wait_listening(port);
    proc
}

/// Runs `cmd` to completion within [`LIMIT`]; returns (success, stdout, stderr).
fn run_bounded(mut cmd: Command, what: &str) -> (bool, String, String) {
    let out_file = tempfile(what, "out");
    let err_file = tempfile(what, "err");
    let child = cmd
        .stdout(std::fs::File::create(&out_file).expect("stdout file"))
        .stderr(std::fs::File::create(&err_file).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut proc = Proc(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = proc.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < LIMIT,
            "{what} did not finish within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status.success(), read(&out_file), read(&err_file))
}

fn tempfile(what: &str, ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "fawkes-js-record-{}-{}.{ext}",
        what.replace(' ', "-"),
        std::process::id()
    ))
}

/// The folders (one per proxy) holding transcripts under `dir`.
fn transcript_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.is_dir());
    dirs.sort();
    dirs
}

fn count_json(dirs: &[PathBuf]) -> usize {
    dirs.iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count()
}

fn replay(port: u16, dirs: &[PathBuf], what: &str) -> (bool, String) {
    let mut cmd = Command::new(FAWKES);
    cmd.args(["replay", "--url", &format!("http://127.0.0.1:{port}")])
        // What Phoenix races: presence_state vs diffs, the frames of
        // different channels (or a broadcast and a reply) on one socket,
        // and a push on its way while the client already acts again; a
        // push that was on its way when a client went away (not recorded).
        .args(["--races", "presence,channels,ahead,tail"])
        .args(dirs);
    let (ok, stdout, stderr) = run_bounded(cmd, what);
    (ok, format!("{stdout}{stderr}"))
}

/// Several replays' results as one: all passed, the reports one after
/// the other, and the summed `N passed, M failed` of their last lines.
fn combine(runs: Vec<(bool, String)>) -> (bool, String, usize, usize) {
    let mut all = (true, String::new(), 0, 0);
    for (ok, report) in runs {
        let last = report.trim_end().lines().last().unwrap_or_default();
        let counts: Vec<usize> = last
            .split(", ")
            .filter_map(|part| part.split(' ').next()?.parse().ok())
            .collect();
        let [passed, failed] = counts[..] else {
            panic!("no summary line in {report}");
        };
        all.0 &= ok;
        all.1.push_str(&report);
        all.2 += passed;
        all.3 += failed;
    }
    all
}

#[test]
fn recorded_phoenix_js_suite_replays_and_catches_a_different_channel() {
    let js = repo().join("js-client-tests");
    assert!(
        js.join("node_modules/phoenix").is_dir(),
        "js-client-tests/node_modules is missing: run ./scripts/setup"
    );
    let conformance = target_dir().join("debug/fawkes-conformance");
    assert!(
        conformance.is_file(),
        "{} is missing: cargo build -p fawkes-conformance",
        conformance.display()
    );
    let out = std::env::temp_dir().join(format!("fawkes-js-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("mkdir");

    // Record: the phoenix.js tests talk to the proxy in front of each server.
    let mut node = Command::new("node");
    node.current_dir(&js)
        .args(["--test", "--test-concurrency=2"])
        .arg(format!("--test-name-pattern={PATTERN}"))
        .args(FILES)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("FAWKES_RECORD_OUT", &out)
        .env("FAWKES_RECORD_ARGS", RECORD_ARGS);
    let (ok, tap, stderr) = run_bounded(node, "node test");
    assert!(
        ok,
        "the phoenix.js tests failed through the proxy:\n{tap}\n{stderr}"
    );
    let ran = tap
        .lines()
        .filter(|l| l.trim_start().starts_with("ok "))
        .count();
    let skipped = tap
        .matches("# SKIP test name does not match pattern")
        .count();
    assert!(
        ran > 30 && skipped >= 3,
        "{ran} ran, {skipped} skipped:\n{tap}"
    );

    let dirs = transcript_dirs(&out.join("fawkes-conformance"));
    assert_eq!(dirs.len(), FILES.len(), "one proxy per test file: {dirs:?}");
    let recorded = count_json(&dirs);
    assert!(recorded >= 30, "only {recorded} transcripts in {dirs:?}");

    // Fresh conformance apps, where every recording passes, and `fawkes
    // serve`'s chat, whose room:* channel answers joins with {} and other
    // events with an error, where they fail, each with its first
    // difference and the steps before it. Each test file's recordings
    // replay one after the other against servers of their own, and all
    // of these replays run at once: the run is mostly waiting.
    let servers: Vec<(Proc, u16, Proc, u16)> = dirs
        .iter()
        .map(|_| {
            let port = free_port();
            let app = start(&conformance, &["serve", "--port", &port.to_string()], port);
            let chat_port = free_port();
            let chat = start(
                Path::new(FAWKES),
                &[
                    "serve",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    &chat_port.to_string(),
                ],
                chat_port,
            );
            (app, port, chat, chat_port)
        })
        .collect();
    let (fresh, chat): (Vec<_>, Vec<_>) = std::thread::scope(|s| {
        let runs: Vec<_> = dirs
            .iter()
            .zip(&servers)
            .enumerate()
            .map(|(i, (dir, (_, port, _, chat_port)))| {
                let dir = std::slice::from_ref(dir);
                let fresh = s.spawn(move || replay(*port, dir, &format!("replay fresh {i}")));
                let chat = s.spawn(move || replay(*chat_port, dir, &format!("replay chat {i}")));
                (fresh, chat)
            })
            .collect();
        runs.into_iter()
            .map(|(f, c)| {
                let f = f.join().expect("replay thread");
                let c = c.join().expect("replay thread");
                (f, c)
            })
            .unzip()
    });
    drop(servers);
    let (ok, report, passed, failed) = combine(fresh);
    assert!(ok, "{report}");
    assert_eq!((passed, failed), (recorded, 0), "{report}");

    // Shown with --nocapture: what a user sees.
    let (chat_ok, report, _, failed) = combine(chat);
    println!("{report}");
    assert!(!chat_ok, "{report}");
    assert!(failed >= recorded / 2, "{report}");
    let join_difference = report.lines().any(|l| {
        l.starts_with("FAIL ")
            && l.contains("phx_reply")
            && l.contains("expected")
            && l.contains(", got ")
    });
    assert!(
        join_difference,
        "a join reply difference is shown: {report}"
    );
    assert!(report.contains("  > step"), "context is shown: {report}");
    // A LongPoll recording too: its first difference names the session
    // and shows the recorded and the live message.
    let longpoll_difference = report.lines().any(|l| {
        l.starts_with("FAIL ")
            && l.contains("(conn longpoll#")
            && l.contains("expected message text")
            && l.contains(", got text")
    });
    assert!(
        longpoll_difference,
        "a LongPoll message difference is shown: {report}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
