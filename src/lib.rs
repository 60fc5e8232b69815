//! fawkes: a Phoenix Channels compatible real-time server. phoenix.js
//! clients connect unchanged, over WebSocket or LongPoll.
//!
//! A server is an [`Endpoint`] with [`Socket`]s mounted at paths; a socket
//! has a connect callback and routes topics to [`Channel`] types, one
//! instance per join, like `Phoenix.Socket` and `Phoenix.Channel`:
//!
//! ```
//! use fawkes::prelude::*;
//! use fawkes::{testing, Connected, Endpoint, Socket};
//! use serde::{Deserialize, Serialize};
//!
//! /// Server-wide state, reachable from every channel by its type.
//! struct Greeting(&'static str);
//!
//! #[derive(Deserialize, Serialize)]
//! struct NewMsg { body: String }
//!
//! #[derive(Default)]
//! struct Room;
//!
//! impl Channel for Room {
//!     // `join` accepts by default; this one answers with the greeting.
//!     async fn join(&mut self, _topic: &str, _params: Payload, socket: &mut ChannelSocket) -> JoinResult {
//!         let greeting = socket.state::<Greeting>().map_or("", |g| g.0);
//!         Ok(serde_json::json!({"greeting": greeting}).into())
//!     }
//!
//!     async fn handle_in(&mut self, event: &str, payload: Payload, socket: &mut ChannelSocket) -> HandleResult {
//!         match event {
//!             "new_msg" => {
//!                 // A payload that does not fit is answered with an error
//!                 // reply {"reason": "invalid payload: ..."}.
//!                 let msg: NewMsg = payload.deserialize()?;
//!                 socket.broadcast("new_msg", Payload::json(&msg));
//!                 reply_ok(Payload::empty())
//!             }
//!             _ => Err(ChannelError::reason("unknown event")),
//!         }
//!     }
//! }
//!
//! fn endpoint() -> Endpoint {
//!     let socket = Socket::new()
//!         .connect(|info: fawkes::ConnectInfo| async move {
//!             let user = info.param("user").unwrap_or("anonymous").to_owned();
//!             Ok(Connected::new().id(format!("user_socket:{user}")).assign("user", user))
//!         })
//!         .channel("room:*", Room::default);
//!     Endpoint::builder()
//!         .state(Greeting("hello"))
//!         .socket("/socket", socket)
//!         .build()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // In-process, with no socket (`fawkes::testing`):
//! let mut client = testing::connect(&endpoint(), "/socket", &[("user", "ana")]).await.unwrap();
//! client.join("room:lobby", serde_json::json!({})).await.unwrap();
//! let reply = client.request("room:lobby", "new_msg", serde_json::json!({"body": "hi"})).await;
//! assert_eq!(reply.status, "ok");
//!
//! // On the network: ws://127.0.0.1:4000/socket/websocket (and /longpoll).
//! let listener = fawkes::endpoint::bind("127.0.0.1:0".parse().unwrap())?;
//! endpoint().serve(listener, async { /* a shutdown signal */ }).await
//! # }
//! ```
//!
//! Inside an existing HTTP server, hand each accepted connection to
//! [`Endpoint::serve_connection`]; inside an axum (or other tower-based)
//! application, nest `Endpoint::into_service` (feature `tower`; see
//! `examples/axum.rs`) and call [`Endpoint::shutdown`] in its graceful
//! shutdown.
//!
//! The crate is laid out the way a message travels: [`endpoint`] accepts
//! HTTP and mounts sockets, a transport (websocket, longpoll) moves frames
//! between the network and a session, the session routes messages to
//! [`channel`] tasks, channels publish through [`pubsub`], and [`presence`]
//! tracks who is on a topic. [`socket`] holds what a mounted socket is
//! configured with (connect callback, channel routes, options);
//! [`testing`] drives channels without a network.

#![deny(unsafe_code)]

pub mod channel;
pub mod endpoint;
// Also in unit tests: `fuzzing::smoke` runs the fuzz entry points on
// random inputs in every `cargo test` (the real fuzzing is `fuzz/`).
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod presence;
pub mod pubsub;
pub(crate) mod session;
pub mod socket;
mod state;
pub mod testing;
pub mod token;
pub(crate) mod transport;

pub use channel::{
    noreply, reply, reply_error, reply_ok, stop, stop_with_reply, Channel, ChannelError,
    ChannelSocket, HandleResult, Handled, InfoError, InfoSender, JoinResult, PushError, Reply,
    ReplyHandle, StopReason, TerminateReason,
};
pub use endpoint::{Endpoint, EndpointBuilder};
pub use fawkes_protocol::{Payload, PayloadError, Serializer};
pub use pubsub::PubSub;
pub use socket::{ConnectInfo, ConnectRefused, Connected, Socket, SocketOptions};
pub use state::AppState;

/// What a channel module needs, in one `use fawkes::prelude::*;`.
pub mod prelude {
    pub use crate::{
        noreply, reply, reply_error, reply_ok, stop, stop_with_reply, Channel, ChannelError,
        ChannelSocket, HandleResult, Handled, JoinResult, Payload, Reply, StopReason,
        TerminateReason,
    };
}
