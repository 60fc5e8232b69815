//! A minimal fawkes server in Rust: one socket, one channel type.
//!
//! `cargo run --example minimal`, then from phoenix.js:
//! `new Socket("ws://localhost:4001/socket").connect()` and
//! `socket.channel("echo:lobby").join()`; pushes of `"shout"` are
//! broadcast to everyone on the topic, anything else is echoed back.

use fawkes::prelude::*;
use fawkes::{Endpoint, Socket};

#[derive(Default)]
struct EchoChannel;

impl Channel for EchoChannel {
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        _socket: &mut ChannelSocket,
    ) -> JoinResult {
        Ok(Payload::empty())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        if event == "shout" {
            socket.broadcast("shout", payload);
            reply_ok(Payload::empty())
        } else {
            reply_ok(payload)
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let endpoint = Endpoint::builder()
        .socket(
            "/socket",
            Socket::new().channel("echo:*", EchoChannel::default),
        )
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:4001").await?;
    println!("listening on ws://127.0.0.1:4001/socket/websocket");
    endpoint
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
