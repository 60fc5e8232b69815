//! End-to-end: the `fawkes` binary loading configuration files, refusing
//! mistakes with a sentence, and serving only the chat page's files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

/// A folder of its own per test (tests run in parallel).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fawkes-binary-config-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let path = temp_dir(name).join("fawkes.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn fawkes() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fawkes"));
    command.env("RUST_LOG", "info").env_remove("NO_COLOR");
    command
}

/// A `fawkes serve` process; killed on drop.
struct Serve {
    child: Child,
    port: u16,
    log: Vec<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `fawkes serve --port 0` with `args`; waits for its listening line.
fn serve(args: &[&str]) -> Serve {
    let child = fawkes()
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn fawkes");
    // Owned by `Serve` from here on, so a failed start still kills it.
    let mut server = Serve {
        child,
        port: 0,
        log: Vec::new(),
    };
    let stdout = server.child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps reading after the test stops listening, so the server
        // never writes its log into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "fawkes did not say it listens; its output: {:#?}",
                server.log
            )
        });
        server.log.push(line.clone());
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let port = rest
                .trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port in listening line");
            server.port = port;
            return server;
        }
    }
}

/// `fawkes ARGS` run to its end: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = fawkes().args(args).output().expect("run fawkes");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A raw HTTP/1.1 request; returns (status, body).
async fn http(port: u16, request_head: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!("{request_head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Connect a websocket to `/socket`, optionally with an `Origin`; the HTTP
/// status when the upgrade is refused.
async fn ws_connect(
    port: u16,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    let mut request = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0")
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("unexpected websocket error: {other}"),
    }
}

/// Join `topic` on a fresh websocket and return the join reply's status.
async fn join_status(port: u16, topic: &str) -> String {
    let mut ws = ws_connect(port, None).await.expect("websocket accepted");
    let frame = json!(["1", "1", topic, "phx_join", {}]).to_string();
    ws.send(Message::text(frame)).await.expect("send");
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("reply in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = message {
            let reply: Value = serde_json::from_str(&text).expect("json");
            return reply[4]["status"].as_str().unwrap_or_default().to_owned();
        }
    }
}

#[test]
fn a_missing_config_file_is_refused_with_its_path() {
    let (code, _, stderr) = run(&["serve", "--config", "/nonexistent/fawkes.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read config file /nonexistent/fawkes.toml"),
        "{stderr}"
    );
}

#[test]
fn a_config_mistake_is_refused_before_listening() {
    let path = write_config(
        "mistake",
        "[[socket]]\npath = \"socket\"\n[[socket.topic]]\npattern = \"a\"\n",
    );
    let (code, _, stderr) = run(&[
        "serve",
        "--port",
        "0",
        "--config",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("must start with \"/\""), "{stderr}");
}

#[tokio::test]
async fn a_file_without_sockets_keeps_the_default_chat() {
    let path = write_config("no-sockets", "[presence]\nbatch_window_ms = 0\n");
    let server = serve(&["--config", path.to_str().expect("utf-8")]);
    assert_eq!(join_status(server.port, "room:lobby").await, "ok");
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("socket mounted") && l.contains("room:*")),
        "{:#?}",
        server.log
    );
}

#[tokio::test]
async fn a_socket_override_changes_only_what_it_names() {
    let path = write_config(
        "override",
        "[[socket]]\npath = \"/socket\"\ncheck_origin = true\n",
    );
    let server = serve(&["--config", path.to_str().expect("utf-8")]);
    // check_origin took effect...
    let refused = ws_connect(server.port, Some("https://elsewhere.example")).await;
    assert_eq!(refused.err(), Some(403));
    let same = format!("http://127.0.0.1:{}", server.port);
    assert!(ws_connect(server.port, Some(&same)).await.is_ok());
    // ...and the default topic rules are still there.
    assert_eq!(join_status(server.port, "room:lobby").await, "ok");
    assert_eq!(join_status(server.port, "elsewhere:1").await, "error");
}

#[tokio::test]
async fn websocket_false_leaves_longpoll_only() {
    let path = write_config(
        "longpoll-only",
        "[[socket]]\npath = \"/socket\"\nwebsocket = false\n",
    );
    let server = serve(&["--config", path.to_str().expect("utf-8")]);
    assert!(
        ws_connect(server.port, None).await.is_err(),
        "websocket refused"
    );
    let (status, body) = http(server.port, "GET /socket/longpoll?vsn=2.0.0 HTTP/1.1").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("longpoll json");
    assert_eq!(body["status"], 410, "a new longpoll session: {body}");
    assert!(body["token"].is_string(), "{body}");
}

#[tokio::test]
async fn a_busy_port_is_named() {
    let first = serve(&[]);
    let port = first.port.to_string();
    let (code, _, stderr) = run(&["serve", "--port", &port]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("another program is using this port"),
        "{stderr}"
    );
}

#[tokio::test]
async fn only_the_page_files_are_served_and_logs_have_no_colour_codes() {
    let server = serve(&[]);
    let (status, body) = http(server.port, "GET / HTTP/1.1").await;
    assert_eq!(status, 200);
    assert!(body.contains("fawkes chat"), "{body}");
    for path in [
        "/package.json",
        "/package-lock.json",
        "/node_modules/phoenix/package.json",
        "/README.md",
    ] {
        let (status, _) = http(server.port, &format!("GET {path} HTTP/1.1")).await;
        assert_eq!(status, 404, "{path} must not be served");
    }
    assert!(
        server.log.iter().all(|l| !l.contains('\u{1b}')),
        "ANSI codes in a log that is not a terminal: {:?}",
        server.log
    );
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = temp_dir("check");
    std::fs::create_dir_all(dir.join("www")).expect("www");
    let path = dir.join("fawkes.toml");
    std::fs::write(
        &path,
        "[server]\nstatic_dir = \"www\"\n[[socket]]\npath = \"/socket\"\nmax_channels = 7\n",
    )
    .expect("write");
    let (code, stdout, stderr) = run(&["check-config", path.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{stderr}");
    let printed: toml::Table = stdout.parse().expect("TOML output");
    let socket = &printed["socket"][0];
    assert_eq!(socket["max_channels"].as_integer(), Some(7));
    assert_eq!(socket["topic"][0]["pattern"].as_str(), Some("room:*"));
    assert_eq!(
        Path::new(
            printed["server"]["static_dir"]
                .as_str()
                .expect("static_dir")
        ),
        dir.join("www")
    );
    let (code, _, stderr) = run(&["check-config", "/nonexistent.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn serve_help_prints_without_starting() {
    let (code, stdout, _) = run(&["serve", "--help"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("--config") && stdout.contains("--port"),
        "{stdout}"
    );
}
