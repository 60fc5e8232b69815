//! Shared helpers for end-to-end tests: an in-process endpoint on port 0
//! and a raw websocket client that speaks V2 JSON by hand.

#![allow(dead_code, unreachable_pub)]

pub mod presence_sync;
pub mod redis;
pub mod watcher;

use std::net::SocketAddr;
use std::time::Duration;

use fawkes::prelude::*;
use fawkes::{Endpoint, Socket, SocketOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for one expected frame.
pub const WAIT: Duration = Duration::from_secs(5);

/// A channel for tests: `echo` replies with the payload, `crash` panics,
/// `sleep` waits `{"ms": N}` before replying, `broadcast` broadcasts,
/// `broadcast_from` broadcasts to everyone else (both as event `broadcast`).
#[derive(Default)]
pub struct TestChannel;

impl Channel for TestChannel {
    async fn join(
        &mut self,
        topic: &str,
        _params: Payload,
        _socket: &mut ChannelSocket,
    ) -> JoinResult {
        Ok(Payload::Json(json!({ "topic": topic })))
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "echo" => reply_ok(payload),
            "crash" => panic!("test crash"),
            "sleep" => {
                let ms = match &payload {
                    Payload::Json(value) => value["ms"].as_u64().unwrap_or(0),
                    Payload::Binary(_) | Payload::RawJson(_) => 0,
                };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply_ok(payload)
            }
            "broadcast" => {
                socket.broadcast("broadcast", payload);
                reply_ok(Payload::empty())
            }
            "broadcast_from" => {
                socket.broadcast_from("broadcast", payload);
                reply_ok(Payload::empty())
            }
            _ => reply_error(json!({"reason": "unknown"})),
        }
    }
}

/// A running endpoint; dropping `stop` shuts it down.
pub struct Server {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Start an endpoint with `/socket` (TestChannel on `room:*`).
    pub async fn start(options: SocketOptions) -> Server {
        let socket = Socket::new()
            .channel("room:*", TestChannel::default)
            .options(options);
        Self::start_endpoint(Endpoint::builder().socket("/socket", socket).build()).await
    }

    pub async fn start_endpoint(endpoint: Endpoint) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(endpoint.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            endpoint,
            stop: Some(stop),
            task,
        }
    }

    /// Ask the server to shut down.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn url(&self, query: &str) -> String {
        format!("ws://{}/socket/websocket?{}", self.addr, query)
    }
}

/// A websocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connect with Nagle's algorithm off: a small frame is written at
    /// once, never held back for an ACK (which paused-time tests would see
    /// as the runtime going idle).
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("connect");
        Client { ws }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// The next data frame, parsed as JSON.
    pub async fn recv_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("a valid frame");
            match msg {
                Message::Text(text) => return serde_json::from_str(&text).expect("json frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Wait for the server's close frame; returns its code.
    pub async fn recv_close(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Wait for the server's close frame, failing on any data frame before
    /// it; returns its code.
    pub async fn recv_close_strict(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected the close, got {other:?}"),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Wait for the connection to end, failing on a close frame or any
    /// data frame before the end (a dropped connection, as a killed
    /// transport).
    pub async fn recv_drop_without_close(&mut self) {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("connection end in time")
            {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected the connection to drop, got {other:?}"),
                Some(Err(_)) | None => return,
            }
        }
    }

    /// Join `topic` with join_ref = ref = `join_ref` and check the ok reply.
    pub async fn join(&mut self, topic: &str, join_ref: &str) {
        self.send_json(json!([join_ref, join_ref, topic, "phx_join", {}]))
            .await;
        let reply = self.recv_json().await;
        assert_eq!(reply[3], "phx_reply", "{reply}");
        assert_eq!(reply[4]["status"], "ok", "{reply}");
    }
}

pub mod backend;
pub mod binary;
