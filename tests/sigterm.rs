//! End-to-end: the `fawkes` binary, sent SIGTERM with many websockets open,
//! sends every one of them a 1012 close frame before it exits.

#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::{Client, WAIT};

/// The running binary; killed if the test fails before it exits.
struct Fawkes(Child);

impl Drop for Fawkes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `fawkes serve` on a free port; its address.
fn start() -> (Fawkes, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fawkes"))
        .args([
            "serve",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--log-level",
            "info",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fawkes");
    let stdout = child.stdout.take().expect("stdout");
    let fawkes = Fawkes(child);
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("fawkes logs its address before exiting")
            .expect("log line");
        if let Some((_, addr)) = line.split_once("listening on http://") {
            break addr.trim().to_owned();
        }
    };
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (fawkes, addr)
}

#[tokio::test]
async fn sigterm_sends_every_websocket_a_1012_close_frame() {
    let (mut fawkes, addr) = start();
    let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&user=u");
    let mut clients = Vec::new();
    for i in 0..40 {
        let mut client = Client::connect(&url).await;
        client.join(&format!("room:{}", i % 3), "1").await;
        clients.push(client);
    }
    let pid = fawkes.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());

    let mut codes = Vec::new();
    for client in &mut clients {
        codes.push(client.recv_close().await);
    }
    let clean = codes.iter().filter(|code| **code == Some(1012)).count();
    assert_eq!(clean, clients.len(), "close codes: {codes:?}");

    let status = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(status) = fawkes.0.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("fawkes exits");
    assert!(status.success(), "{status}");
}
