//! The APP.md conformance app running on fawkes: the same endpoint, socket,
//! channels and HTTP API as the Phoenix app the transcripts were recorded
//! from.

mod api;
mod presence_channel;
mod private_channel;
mod room_channel;

use std::net::SocketAddr;
use std::time::Duration;

use fawkes::endpoint::HttpLimits;
use fawkes::presence::PresenceOptions;
use fawkes::{ConnectInfo, ConnectRefused, Connected, Endpoint, Socket, SocketOptions};
use serde_json::Value;

pub use presence_channel::PresenceChannel;
pub use private_channel::PrivateChannel;
pub use room_channel::RoomChannel;

/// The socket of APP.md: `token=bad` is refused; `user_id` (or `"anon"`)
/// is assigned; the socket id is `users_socket:<user_id>`.
pub fn socket(options: SocketOptions) -> Socket {
    Socket::new()
        .connect(|info: ConnectInfo| async move { connect(&info) })
        .channel("room:*", RoomChannel::default)
        .channel("presence:*", PresenceChannel::default)
        .channel("private:*", PrivateChannel::default)
        .options(options)
}

fn connect(info: &ConnectInfo) -> Result<Connected, ConnectRefused> {
    if info.param("token") == Some("bad") {
        return Err(ConnectRefused);
    }
    let user_id = info.param("user_id").unwrap_or("anon");
    Ok(Connected::new()
        .id(format!("users_socket:{user_id}"))
        .assign("user_id", user_id))
}

/// The endpoint of APP.md: `/socket` (websocket + longpoll, defaults) and
/// `/idle` (websocket, 1500 ms idle timeout), presence diffs unbatched, and
/// `POST /api/broadcast`.
pub fn endpoint() -> Endpoint {
    endpoint_on(fawkes::PubSub::new())
}

/// [`endpoint`] on a given pubsub (e.g. one joined to a Redis cluster).
pub fn endpoint_on(pubsub: fawkes::PubSub) -> Endpoint {
    // Benchmarks drive this app with thousands of clients from 127.0.0.1.
    let builder = Endpoint::builder()
        .pubsub_instance(pubsub)
        .http_limits(HttpLimits {
            max_connections: 1_000_000,
            max_connections_per_address: 1_000_000,
            ..HttpLimits::default()
        });
    let pubsub = builder.pubsub().clone();
    builder
        .socket(
            "/socket",
            socket(SocketOptions {
                longpoll: true,
                // Benchmarks publish through this socket as fast as they can.
                message_rate: None,
                ..SocketOptions::default()
            }),
        )
        .socket(
            "/idle",
            socket(SocketOptions {
                idle_timeout: Duration::from_millis(1500),
                ..SocketOptions::default()
            }),
        )
        .presence(PresenceOptions {
            batch_window: Duration::ZERO,
        })
        .handler(move |req| api::handle(pubsub.clone(), req))
        .build()
}

/// Serve the conformance app on `addr` until Ctrl-C, alone or (with
/// `cluster`) joined to other nodes over Redis, Phoenix nodes included.
pub async fn serve(
    addr: SocketAddr,
    cluster: Option<fawkes::pubsub::redis::RedisOptions>,
) -> std::io::Result<()> {
    let pubsub = match cluster {
        Some(options) => {
            fawkes::pubsub::redis::start(options)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
                .pubsub
        }
        None => fawkes::PubSub::new(),
    };
    let listener = fawkes::endpoint::bind(addr)?;
    tracing::info!(addr = %listener.local_addr()?, "conformance app listening");
    endpoint_on(pubsub)
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Elixir truthiness: everything but `nil` and `false`.
pub(crate) fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

/// `payload["key"]` as Elixir's Access does it: `nil` on a nil payload,
/// a crash on anything that is not a map.
pub(crate) fn field(payload: &fawkes::Payload, key: &str) -> Value {
    match payload {
        fawkes::Payload::Json(Value::Object(map)) => map.get(key).cloned().unwrap_or(Value::Null),
        fawkes::Payload::Json(Value::Null) => Value::Null,
        other => panic!("cannot read {key:?} from a non-map payload: {other:?}"),
    }
}
