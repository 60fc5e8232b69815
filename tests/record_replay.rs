//! `fawkes record` in front of `fawkes serve`, then `fawkes replay` of what
//! it wrote: against a fresh server the recordings pass; against a server
//! whose channel answers differently they fail with a readable first
//! difference. Everything runs as real processes on 127.0.0.1.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const FAWKES: &str = env!("CARGO_BIN_EXE_fawkes");

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

async fn serve(config: Option<&Path>) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new(FAWKES);
    cmd.args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let child = Proc(cmd.spawn().expect("spawn fawkes serve"));
    wait_listening(port).await;
    (child, port)
}

fn record(upstream: u16, out: &Path) -> (Proc, u16) {
    let mut child = Command::new(FAWKES)
        .args([
            "record",
            "--upstream",
            &format!("http://127.0.0.1:{upstream}"),
        ])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--idle-gap-ms",
            "700",
            "--log-level",
            "warn",
        ])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fawkes record");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (Proc(child), port)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(port: u16, user: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user={user}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

/// Reads frames until one with `event` arrives.
async fn recv_event(ws: &mut Ws, event: &str) -> Value {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    if v[3] == event {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended waiting for {event}: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {event} within 10 s"))
}

/// Lets the answers of the previous step settle (longer than the 300 ms
/// settle window), as a person using the chat would.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(450)).await;
}

/// A chat session mix through the proxy on `port`: two users join, one
/// pipelines a join and a message, messages relay, heartbeats, a leave, and
/// a client close.
async fn chat_session(port: u16) {
    let mut alice = connect(port, "alice").await;
    pause().await;
    send(&mut alice, json!(["1", "1", "room:lobby", "phx_join", {}])).await;
    recv_event(&mut alice, "phx_reply").await;
    pause().await;
    let mut bob = connect(port, "bob").await;
    pause().await;
    // Pipelined: bob's join and his first message go out back to back, in
    // one write, so nothing can arrive between them.
    let join = json!(["1", "1", "room:lobby", "phx_join", {}]);
    let typing = json!(["1", "2", "room:lobby", "typing", {"on": true}]);
    bob.feed(Message::text(join.to_string()))
        .await
        .expect("feed");
    bob.feed(Message::text(typing.to_string()))
        .await
        .expect("feed");
    bob.flush().await.expect("flush");
    recv_event(&mut alice, "typing").await;
    pause().await;
    send(
        &mut alice,
        json!(["1", "2", "room:lobby", "new_msg", {"body": "hi bob"}]),
    )
    .await;
    recv_event(&mut bob, "new_msg").await;
    pause().await;
    send(&mut bob, json!([null, "3", "phoenix", "heartbeat", {}])).await;
    recv_event(&mut bob, "phx_reply").await;
    pause().await;
    send(&mut bob, json!(["1", "4", "room:lobby", "phx_leave", {}])).await;
    recv_event(&mut bob, "phx_reply").await;
    pause().await;
    bob.close(None).await.expect("close bob");
    pause().await;
    alice.close(None).await.expect("close alice");
    pause().await;
}

fn transcripts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

async fn wait_for_transcripts(dir: &Path, n: usize) -> Vec<PathBuf> {
    for _ in 0..200 {
        let files = transcripts(dir);
        if files.len() >= n {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} transcripts in {}", dir.display());
}

fn replay(port: u16, dir: &Path) -> (bool, String) {
    let out = Command::new(FAWKES)
        .args(["replay", "--url", &format!("http://127.0.0.1:{port}")])
        // The chat's presence metas carry a join time.
        .args(["--ignore-key", "online_at"])
        .arg(dir)
        .output()
        .expect("run fawkes replay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fawkes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_chat_traffic_replays_and_catches_a_changed_channel() {
    let out = temp_dir("recorded");
    let (_upstream, upstream_port) = serve(None).await;
    let (_proxy, proxy_port) = record(upstream_port, &out);
    chat_session(proxy_port).await;
    let files = wait_for_transcripts(&out, 1).await;
    assert_eq!(
        files.len(),
        1,
        "overlapping connections share one transcript"
    );
    let text = std::fs::read_to_string(&files[0]).expect("read");
    let recorded: Value = serde_json::from_str(&text).expect("transcript json");
    let steps = recorded["steps"].as_array().expect("steps");
    assert!(steps.iter().any(|s| s["pipelined"] == true), "{text}");
    assert!(steps.iter().any(|s| s["recv"]["text"]
        .as_str()
        .is_some_and(|t| t.contains("hi bob"))));

    // A fresh server of the same app: everything passes.
    let (_fresh, fresh_port) = serve(None).await;
    let (ok, report) = replay(fresh_port, &out);
    assert!(ok, "{report}");
    assert!(
        report.trim_end().ends_with("1 passed, 0 failed"),
        "{report}"
    );

    // A server whose room channel no longer relays new_msg: a readable
    // first difference, with the steps that led to it.
    let config = out.join("changed.toml");
    let changed = std::fs::read_to_string("src/bin/fawkes/default.toml")
        .expect("default config")
        .replace(r#"relay = ["new_msg", "typing"]"#, r#"relay = ["typing"]"#)
        // Relative to the config file's folder: no page needed here.
        .replace(r#"static_dir = "examples/chat""#, r#"static_dir = """#);
    assert!(
        !changed.contains("new_msg"),
        "the default config changed: adapt this test"
    );
    std::fs::write(&config, changed).expect("write config");
    let replays = out.join("replays");
    std::fs::create_dir_all(&replays).expect("mkdir");
    std::fs::copy(&files[0], replays.join("chat.json")).expect("copy");
    let (_changed, changed_port) = serve(Some(&config)).await;
    let (ok, report) = replay(changed_port, &replays);
    // Shown with --nocapture: what a user sees.
    println!("{report}");
    assert!(!ok, "{report}");
    assert!(report.contains("FAIL chat: step"), "{report}");
    assert!(
        report.contains("new_msg"),
        "the missing frame is shown: {report}"
    );
    assert!(report.contains("  > step"), "context is shown: {report}");
    assert!(
        report.trim_end().ends_with("0 passed, 1 failed"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_when_transcripts_cannot_be_written() {
    let dir = temp_dir("unwritable");
    let out = dir.join("a-file");
    std::fs::write(&out, "not a folder").expect("write");
    let (_upstream, upstream_port) = serve(None).await;
    let (_proxy, proxy_port) = record(upstream_port, &out);
    let mut alice = connect(proxy_port, "alice").await;
    let mut bob = connect(proxy_port, "bob").await;
    send(&mut alice, json!(["1", "1", "room:lobby", "phx_join", {}])).await;
    send(&mut bob, json!(["1", "1", "room:lobby", "phx_join", {}])).await;
    recv_event(&mut alice, "phx_reply").await;
    recv_event(&mut bob, "phx_reply").await;
    for i in 0..50 {
        send(
            &mut alice,
            json!(["1", i.to_string(), "room:lobby", "new_msg", {"n": i}]),
        )
        .await;
    }
    for i in 0..50 {
        let frame = recv_event(&mut bob, "new_msg").await;
        assert_eq!(frame[4]["n"], i, "in order, none lost");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
