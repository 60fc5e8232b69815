//! Recording the replay of the recorded Phoenix transcripts through
//! `fawkes record`'s proxy, in front of the conformance app, gives back
//! transcripts equivalent to the originals, and those replay against the
//! app directly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fawkes_replay::equivalence::equivalent;
use fawkes_replay::http::BaseUrl;
use fawkes_replay::record::{self, Filter, Grouping, RecorderConfig};
use fawkes_replay::{run_transcript, RunConfig, Transcript};
use tokio::net::TcpListener;

fn transcripts_dir() -> PathBuf {
    std::env::var_os("FAWKES_TRANSCRIPTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/transcripts"),
        PathBuf::from,
    )
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

/// The transcript up to its last action that is not a client close.
fn without_trailing_closes(mut t: Transcript) -> Transcript {
    let mut end = t.steps.len();
    for (i, step) in t.steps.iter().enumerate().rev() {
        if step.close.is_some() {
            end = i;
        } else if step.recv.is_none() && step.sleep_ms.is_none() {
            break;
        }
    }
    t.steps.truncate(end);
    t
}

fn run_config(addr: std::net::SocketAddr) -> RunConfig {
    let mut config = RunConfig::new(BaseUrl::parse(&format!("http://{addr}")).expect("url"));
    config.cleanup_pause = Duration::from_millis(50);
    config
}

/// How many app + proxy pairs record at once. Each transcript is replayed
/// twice with its own pauses (through the proxy, then its recording), so
/// the run is mostly waiting: shards cut the wall time, not the work.
const SHARDS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_the_conformance_replay_gives_back_equivalent_transcripts() {
    let originals = json_files(&transcripts_dir());
    assert!(
        !originals.is_empty(),
        "no transcripts in {} (set FAWKES_TRANSCRIPTS)",
        transcripts_dir().display()
    );
    // Each shard has its own app, proxy and output folder: what one
    // transcript does (presence, socket ids) cannot reach another shard's.
    let mut shards = Vec::new();
    for shard in 0..SHARDS {
        let mine: Vec<PathBuf> = originals
            .iter()
            .skip(shard)
            .step_by(SHARDS)
            .cloned()
            .collect();
        shards.push(tokio::spawn(record_shard(shard, mine)));
    }
    let mut failures = Vec::new();
    for shard in shards {
        failures.extend(shard.await.expect("shard task"));
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        originals.len(),
        failures.join("\n")
    );
}

/// Record `originals` one after the other through a proxy in front of an
/// app of their own; the failures, one line each.
async fn record_shard(shard: usize, originals: Vec<PathBuf>) -> Vec<String> {
    let app = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let app_addr = app.local_addr().expect("addr");
    tokio::spawn(fawkes_conformance::app::endpoint().serve(app, std::future::pending()));

    let out = std::env::temp_dir().join(format!(
        "fawkes-rec-conformance-{}-{shard}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("mkdir");
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let proxy_addr = proxy.local_addr().expect("addr");
    let config = RecorderConfig {
        out: out.clone(),
        settle: Duration::from_millis(300),
        // Longer than any pause of a transcript without an open websocket.
        idle_gap: Duration::from_millis(800),
        min_pause: Duration::from_millis(50),
        max_pause: Duration::from_secs(10),
        max_file_bytes: 1 << 20,
        filter: Filter::default(),
        grouping: Grouping::Time,
    };
    let upstream = BaseUrl::parse(&format!("http://{app_addr}")).expect("url");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let recorder = tokio::spawn(record::run(
        proxy,
        upstream,
        vec!["/api/".to_owned()],
        config,
        async move {
            let _ = stop_rx.await;
        },
    ));

    let mut failures = Vec::new();
    for original_path in &originals {
        let name = original_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let original = Transcript::load(original_path).expect("load original");
        let before = json_files(&out).len();
        if let Err(e) = run_transcript(&original, &run_config(proxy_addr)).await {
            failures.push(format!("{name}: replay through the proxy failed: {e}"));
            continue;
        }
        let mut files = json_files(&out);
        for _ in 0..100 {
            if files.len() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            files = json_files(&out);
        }
        if files.len() != before + 1 {
            failures.push(format!(
                "{name}: {} transcripts written, expected 1",
                files.len() - before
            ));
            continue;
        }
        let newest = files
            .iter()
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .expect("a file")
            .clone();
        let recorded = Transcript::load(&newest).expect("load recorded");
        if let Err(e) = equivalent(&original, &recorded) {
            failures.push(format!("{name}: not equivalent: {e}"));
            continue;
        }
        // The closes the replay runner sent when it ended (and what they
        // caused, which races with them) are not part of the scenario.
        let recorded = without_trailing_closes(recorded);
        if let Err(e) = run_transcript(&recorded, &run_config(app_addr)).await {
            failures.push(format!("{name}: the recording does not replay: {e}"));
        }
    }
    let _ = stop_tx.send(());
    let _ = recorder.await;
    let _ = std::fs::remove_dir_all(&out);
    failures
}
