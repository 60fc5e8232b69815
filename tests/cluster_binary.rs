//! Two `fawkes serve` processes joined by `--redis-url`/`--node-name` over a
//! real `redis-server`, with the LongPoll secret shared by
//! `FAWKES_SECRET_KEY_BASE`: `POST /api/broadcast` on one node reaches a
//! websocket client of the other, and one longpoll client alternates nodes.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::redis::RedisServer;
use support::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest wait for a node to start or the cluster to settle.
const SETTLE: Duration = Duration::from_secs(20);

/// A `fawkes serve` process; killed on drop.
struct Node {
    child: Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(redis: &RedisServer, name: &str) -> Node {
    let child = Command::new(env!("CARGO_BIN_EXE_fawkes"))
        .args([
            "serve",
            "--port",
            "0",
            "--redis-url",
            &redis.url(),
            "--node-name",
            name,
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("FAWKES_SECRET_KEY_BASE", "a secret the test's nodes share")
        .env("FAWKES_API_SECRET", API_SECRET)
        .env_remove("FAWKES_REDIS_URL")
        .env_remove("FAWKES_NODE_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fawkes");
    let mut node = Node { child, port: 0 };
    let stdout = node.child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx.recv_timeout(SETTLE).expect("fawkes says it listens");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let port = rest.trim().rsplit(':').next().expect("port");
            node.port = port.parse().expect("numeric port");
            return node;
        }
    }
}

/// The bearer secret `POST /api/broadcast` needs (closed by default).
const API_SECRET: &str = "the test's api secret";

async fn http(port: u16, method: &str, path: &str, body: &str) -> Value {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(SETTLE, stream.read_to_string(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    serde_json::from_str(body).expect("json")
}

/// Longpoll GET until frames arrive; returns them parsed.
async fn poll(port: u16, token: &str) -> Vec<Value> {
    loop {
        let path = format!("/socket/longpoll?vsn=2.0.0&token={token}");
        let answer = http(port, "GET", &path, "").await;
        if answer["status"] == 200 {
            let messages = answer["messages"].as_array().expect("messages");
            return messages
                .iter()
                .map(|m| serde_json::from_str(m.as_str().expect("text")).expect("frame"))
                .collect();
        }
        assert_eq!(answer["status"], 204, "{answer}");
    }
}

#[tokio::test]
async fn two_fawkes_serve_processes_are_one_server() {
    let redis = RedisServer::start();
    let a = start(&redis, "node_a");
    let b = start(&redis, "node_b");

    let mut client = Client::connect(&format!(
        "ws://127.0.0.1:{}/socket/websocket?vsn=2.0.0&user=bob",
        b.port
    ))
    .await;
    client.join("room:lobby", "1").await;
    // Until both nodes are subscribed, a broadcast may not cross: retry.
    let body = json!({"topic": "room:lobby", "event": "new_msg", "payload": {"body": "hi"}});
    tokio::time::timeout(SETTLE, async {
        loop {
            http(a.port, "POST", "/api/broadcast", &body.to_string()).await;
            let got = tokio::time::timeout(Duration::from_millis(300), async {
                loop {
                    let frame = client.recv_json().await;
                    if frame[3] == "new_msg" {
                        return frame;
                    }
                }
            })
            .await;
            if let Ok(frame) = got {
                assert_eq!(frame[4], json!({"body": "hi"}));
                return;
            }
        }
    })
    .await
    .expect("a broadcast on node a reaches a client of node b");

    // One longpoll client: GET on a, POST on b, GET on a and b.
    let answer = http(a.port, "GET", "/socket/longpoll?vsn=2.0.0&user=lp", "").await;
    assert_eq!(answer["status"], 410, "{answer}");
    let token = answer["token"].as_str().expect("token").to_owned();
    let join = json!(["1", "1", "room:lobby", "phx_join", {}]).to_string();
    let path = format!("/socket/longpoll?vsn=2.0.0&token={token}");
    let answer = http(b.port, "POST", &path, &join).await;
    assert_eq!(answer["status"], 200, "b accepted a's token: {answer}");
    let frames = poll(b.port, &token).await;
    assert!(
        frames
            .iter()
            .any(|f| f[3] == "phx_reply" && f[4]["status"] == "ok"),
        "{frames:?}"
    );
    http(b.port, "POST", "/api/broadcast", &body.to_string()).await;
    tokio::time::timeout(SETTLE, async {
        while !poll(a.port, &token).await.iter().any(|f| f[3] == "new_msg") {}
    })
    .await
    .expect("the broadcast reaches the longpoll client through node a");
}
