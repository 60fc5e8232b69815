//! The WebSocket transport: the HTTP upgrade (with Phoenix's checks, in
//! Phoenix's order); [`connection`] runs the upgraded socket.

mod connection;
// The one place with `unsafe`: a `RawWaker` vtable, so one allocation
// serves both of a connection's wakers (per-connection memory); the
// safety argument is written at each block in the module.
#[allow(unsafe_code)]
mod wakeups;

use std::net::SocketAddr;
use std::sync::Arc;

use fawkes_protocol::Serializer;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::endpoint::body::RequestBody;
use crate::endpoint::http::empty;
use crate::endpoint::limits::ConnectionCounter;
use crate::endpoint::{parse_query, HttpResponse};
use crate::session::Services;
use crate::socket::{ConnectInfo, Socket};

/// phoenix.js sends its `authToken` as a subprotocol with this prefix.
const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";
/// Read buffer per connection, and the most one socket read takes. Client
/// frames are small (a heartbeat is ~45 bytes, a join ~100), so this holds
/// most in one read; a larger frame gets room for its whole length and takes
/// one read per 256 bytes. Kept small because every idle connection holds it.
const READ_BUFFER: usize = 256;

/// Answer a websocket upgrade request for `socket`.
pub(crate) async fn upgrade<B: RequestBody>(
    mut req: hyper::Request<B>,
    socket: Arc<Socket>,
    shared: &Services,
    connections: &Arc<ConnectionCounter>,
    peer: SocketAddr,
) -> HttpResponse {
    if req.method() != Method::GET {
        return empty(StatusCode::BAD_REQUEST);
    }
    if shared.shutdown.is_cancelled() {
        // Draining: no new sessions; phoenix.js retries, elsewhere or later.
        return empty(StatusCode::SERVICE_UNAVAILABLE);
    }
    let params = parse_query(req.uri().query());
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Err(error) = socket.options.check_origin.check(origin, host) {
        tracing::warn!(%error, "refusing websocket: origin");
        return empty(StatusCode::FORBIDDEN);
    }
    let (auth_token, offered_phoenix) = subprotocol_token(headers);
    let serializer = match Serializer::from_vsn(params.get("vsn").and_then(|v| v.as_str())) {
        Ok(serializer) => serializer,
        Err(error) => {
            tracing::warn!(%error, "refusing websocket: vsn");
            return empty(StatusCode::FORBIDDEN);
        }
    };
    let info = ConnectInfo {
        params,
        auth_token: auth_token.clone(),
        peer_addr: Some(peer),
        headers: headers.clone(),
        state: shared.state.clone(),
    };
    let Ok(connected) = (socket.connect)(info).await else {
        tracing::info!(%peer, "connect refused");
        return empty(StatusCode::FORBIDDEN);
    };
    let Some(accept) = handshake_key(req.headers()) else {
        return empty(StatusCode::BAD_REQUEST);
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared = shared.clone();
    let connections = connections.clone();
    let tasks = shared.tasks.clone();
    // Tracked, so that shutdown waits for every websocket's close frame.
    tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // The websocket counts against the connection limits until
                // it ends (the HTTP connection's place is released now).
                let permit = connections.hand_over(peer.ip());
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(16 * 1024)
                    .max_frame_size(Some(socket.options.max_frame_size))
                    .max_message_size(Some(socket.options.max_frame_size));
                // Unwrap hyper's upgrade back into the TCP stream, so the
                // connection holds no HTTP wrapper or HTTP read buffer.
                // The connection runs in a task of its own that holds only
                // its running state, not this setup.
                match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => {
                        let io = parts.io.into_inner();
                        let ws = if parts.read_buf.is_empty() {
                            WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
                        } else {
                            let read = parts.read_buf.to_vec();
                            WebSocketStream::from_partially_read(
                                io,
                                read,
                                Role::Server,
                                Some(config),
                            )
                            .await
                        };
                        shared.tasks.spawn(connection::run(
                            ws, socket, &shared, serializer, connected, permit,
                        ));
                    }
                    Err(upgraded) => {
                        let io = TokioIo::new(upgraded);
                        let ws =
                            WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                        shared.tasks.spawn(connection::run(
                            ws, socket, &shared, serializer, connected, permit,
                        ));
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "websocket upgrade failed"),
        }
    });

    let mut response = empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if auth_token.is_some() || offered_phoenix {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("phoenix"),
        );
    }
    response
}

/// The `Sec-WebSocket-Accept` value, if the request is a valid upgrade.
fn handshake_key(headers: &hyper::HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return None;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    Some(derive_accept_key(key.as_bytes()))
}

/// The phoenix.js auth token carried as a subprotocol (standard base64
/// without padding), and whether `phoenix` was offered.
fn subprotocol_token(headers: &hyper::HeaderMap) -> (Option<String>, bool) {
    use base64::Engine;
    let mut token = None;
    let mut phoenix = false;
    for value in headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for entry in value.split(',').map(str::trim) {
            if entry == "phoenix" {
                phoenix = true;
            } else if let Some(encoded) = entry.strip_prefix(AUTH_TOKEN_PREFIX) {
                let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
                token = engine
                    .decode(encoded.trim_end_matches('='))
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok());
            }
        }
    }
    (token, phoenix)
}
