//! End-to-end: log lines carry the session's span (socket id, transport)
//! and the channel's span (topic) they happened in.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use fawkes::{ConnectInfo, Connected, Endpoint, Socket};
use serde_json::json;
use support::{Client, Server, TestChannel};

/// Everything the subscriber writes, kept for the assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

#[tokio::test]
async fn a_channel_crash_is_logged_inside_its_session_and_channel_spans() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let socket = Socket::new()
        .connect(|info: ConnectInfo| async move {
            let user = info.param("user").unwrap_or("anon").to_owned();
            Ok(Connected {
                id: Some(format!("users_socket:{user}")),
                ..Connected::default()
            })
        })
        .channel("room:*", TestChannel::default);
    let server =
        Server::start_endpoint(Endpoint::builder().socket("/socket", socket).build()).await;
    let mut client = Client::connect(&server.url("vsn=2.0.0&user=alice")).await;
    client.join("room:spans", "1").await;
    client
        .send_json(json!(["1", "2", "room:spans", "crash", {}]))
        .await;
    let error = client.recv_json().await;
    assert_eq!(error[3], "phx_error", "{error}");

    let log = captured.text();
    let line = log
        .lines()
        .find(|line| line.contains("channel crashed"))
        .unwrap_or_else(|| panic!("no crash line in {log}"));
    assert!(line.contains("socket_id=\"users_socket:alice\""), "{line}");
    assert!(line.contains("transport=\"websocket\""), "{line}");
    assert!(line.contains("channel{topic=room:spans"), "{line}");
}
