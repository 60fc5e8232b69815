//! The `fawkes` binary under test: started on port 0 with a config file,
//! its log kept for assertions, killed when dropped; and a tiny HTTP client.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `fawkes serve`.
pub struct Fawkes {
    pub port: u16,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _config: Option<TempFile>,
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Fawkes {
    /// Start `fawkes serve --port 0` with `config` (TOML text; `None` for the
    /// embedded default) and extra environment variables.
    pub async fn start(config: Option<&str>, env: &[(&str, &str)]) -> Fawkes {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fawkes"));
        command
            .args(["serve", "--port", "0", "--bind", "127.0.0.1"])
            .args([
                "--static-dir",
                concat!(env!("CARGO_MANIFEST_DIR"), "/examples/chat"),
            ])
            .env("RUST_LOG", "info")
            .env_remove("FAWKES_API_SECRET")
            .env_remove("FAWKES_WEBHOOK_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let config = config.map(|text| {
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).expect("random");
            let name = format!(
                "fawkes-test-{}.toml",
                random
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, text).expect("write config");
            command.arg("--config").arg(&path);
            TempFile(path)
        });
        let mut child = command.spawn().expect("spawn fawkes");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, mut port_rx) = tokio::sync::mpsc::unbounded_channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout"))
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            let port_tx = port_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                        let digits: String =
                            rest.chars().take_while(char::is_ascii_digit).collect();
                        if let Ok(port) = digits.parse::<u16>() {
                            let _ = port_tx.send(port);
                        }
                    }
                    log.lock().expect("log").push(line);
                }
            });
        }
        drop(port_tx);
        let port = tokio::time::timeout(Duration::from_secs(30), port_rx.recv())
            .await
            .ok()
            .flatten();
        let Some(port) = port else {
            let _ = child.kill().await;
            panic!("fawkes did not start: {:?}", log.lock().expect("log"));
        };
        Fawkes {
            port,
            child,
            log,
            _config: config,
        }
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// Whether some log line contains `needle` (waits up to 5 s for it).
    pub async fn logged(&self, needle: &str) -> bool {
        for _ in 0..100 {
            if self.log().iter().any(|line| line.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// `ws://127.0.0.1:<port>/socket/websocket?<query>`
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/socket/websocket?{query}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Stop the server and wait for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// `kill -9`: the process dies without a word.
    pub async fn kill9(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then wait (at most 30 s) for the process to exit.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait");
    }
}

/// `GET http://127.0.0.1:<port><path>`; the status and body.
#[allow(dead_code)] // Not every test binary that includes this module uses it.
pub async fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = get_with(port, path, &[]).await;
    (status, body)
}

/// `GET http://127.0.0.1:<port><path>` with `headers`: status, headers, body.
#[allow(dead_code)]
pub async fn get_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, String) {
    let request = hyper::Request::get(format!("http://127.0.0.1:{port}{path}"));
    send(request, headers, "").await
}

/// `POST http://127.0.0.1:<port><path>` with `headers`; the status and body.
#[allow(dead_code)]
pub async fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let request = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"));
    let (status, _, body) = send(request, headers, body).await;
    (status, body)
}

async fn send(
    mut request: hyper::http::request::Builder,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, hyper::HeaderMap, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The HTTP status of a websocket handshake to `url` with extra headers
/// (101 when upgraded).
pub async fn ws_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("a handshake answer in time")
    {
        Ok((_, response)) => response.status().as_u16(),
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(error) => panic!("handshake failed: {error}"),
    }
}
