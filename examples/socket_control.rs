//! A channel that ends its own socket, politely or abruptly.
//!
//! `cargo run --example socket_control -- 4002`, then from phoenix.js:
//! `new Socket("ws://127.0.0.1:4002/socket", {params: {user: "ana"}})`,
//! join `control:<anything>` and push `"disconnect"` (every socket of user
//! `ana` closes with 1001, Phoenix's `disconnect` broadcast on the socket
//! id) or `"kill"` (the connection drops with no close frame, Phoenix's
//! `Process.exit(transport_pid, :kill)`); phoenix.js reconnects after
//! either. `"whoami"` answers the socket id.

use fawkes::prelude::*;
use fawkes::{ConnectInfo, Connected, Endpoint, Socket};

#[derive(Default)]
struct Control;

impl Channel for Control {
    async fn handle_in(
        &mut self,
        event: &str,
        _: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "whoami" => reply_ok(serde_json::json!({ "id": socket.id() })),
            "disconnect" => {
                socket.disconnect();
                noreply()
            }
            "kill" => {
                socket.kill();
                noreply()
            }
            _ => Err(ChannelError::reason("unknown event")),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(4002);
    let socket = Socket::new()
        .connect(|info: ConnectInfo| async move {
            let user = info.param("user").unwrap_or("anonymous").to_owned();
            Ok(Connected::new().id(format!("user_socket:{user}")))
        })
        .channel("control:*", Control::default);
    let endpoint = Endpoint::builder().socket("/socket", socket).build();
    let listener = fawkes::endpoint::bind(([127, 0, 0, 1], port).into())?;
    println!("listening on ws://127.0.0.1:{port}/socket/websocket");
    endpoint
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
