//! The WebSocket transport: the HTTP upgrade (with Phoenix's checks, in
//! Phoenix's order) and the one task per connection that runs its session,
//! reading the socket, next to the writer that drains its outbound queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fawkes_protocol::Serializer;
use futures_util::{SinkExt, StreamExt};
use hyper::header::{self, HeaderValue};
use hyper::upgrade::Upgraded;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::endpoint::http::empty;
use crate::endpoint::{parse_query, HttpRequest, HttpResponse, Shared};
use crate::session::{self, DisconnectReason, InFrame, WireFrame};
use crate::socket::{ConnectInfo, Socket};

/// phoenix.js sends its `authToken` as a subprotocol with this prefix.
const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// Initial read buffer per connection; it grows for larger frames.
const READ_BUFFER: usize = 512;
/// How long to wait for a close frame to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Answer a websocket upgrade request for `socket`.
pub(crate) async fn upgrade(
    mut req: HttpRequest,
    socket: Arc<Socket>,
    shared: &Shared,
    peer: SocketAddr,
) -> HttpResponse {
    if req.method() != Method::GET {
        return empty(StatusCode::BAD_REQUEST);
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
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(16 * 1024)
                    .max_frame_size(Some(socket.options.max_frame_size))
                    .max_message_size(Some(socket.options.max_frame_size));
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                run(ws, socket, shared, serializer, connected).await;
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

/// The writing half of a websocket.
type Sink = futures_util::stream::SplitSink<WebSocketStream<TokioIo<Upgraded>>, Message>;

/// The reading half of a websocket as a session's frame source: the
/// session task reads the socket itself (no reader task, no inbound queue),
/// and the idle timeout runs from the last frame received.
struct WsInbound {
    stream: futures_util::stream::SplitStream<WebSocketStream<TokioIo<Upgraded>>>,
    idle: Duration,
    deadline: tokio::time::Instant,
}

impl session::InboundSource for WsInbound {
    async fn next_frame(&mut self) -> Result<InFrame, DisconnectReason> {
        loop {
            let message = match tokio::time::timeout_at(self.deadline, self.stream.next()).await {
                Err(_) => {
                    tracing::info!("closing idle websocket");
                    return Err(DisconnectReason::IdleTimeout);
                }
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Err(DisconnectReason::ClientClosed)
                }
                Ok(Some(Err(error))) => {
                    tracing::warn!(%error, "closing websocket: protocol error");
                    return Err(DisconnectReason::WebSocket(error));
                }
                Ok(Some(Ok(message))) => message,
            };
            self.deadline = tokio::time::Instant::now() + self.idle;
            match message {
                Message::Text(text) => return Ok(InFrame::Text(text)),
                Message::Binary(bytes) => return Ok(InFrame::Binary(bytes)),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_) => {}
            }
        }
    }
}

/// Run one websocket connection in this task: the session (reading the
/// socket) and the writer side by side, so neither waits on the other; then
/// the close frame the reason maps to.
async fn run(
    ws: WebSocketStream<TokioIo<Upgraded>>,
    socket: Arc<Socket>,
    shared: Shared,
    serializer: Serializer,
    connected: crate::socket::Connected,
) {
    let idle = socket.options.idle_timeout;
    let (sink, stream) = ws.split();
    let inbound = WsInbound {
        stream,
        idle,
        deadline: tokio::time::Instant::now() + idle,
    };
    let (session, outbound) = session::prepare(socket, &shared, serializer, connected, inbound);
    let (close_tx, close_rx) = oneshot::channel();
    let mut writer = std::pin::pin!(write(sink, outbound, close_rx));
    let mut session = std::pin::pin!(session);
    let mut writer_done = false;
    let reason = loop {
        tokio::select! {
            reason = &mut session => break reason,
            () = &mut writer, if !writer_done => writer_done = true,
        }
    };
    let _ = close_tx.send(reason.close_code());
    // A client that does not read cannot hold the task: give up after a while.
    if !writer_done {
        let _ = tokio::time::timeout(2 * CLOSE_TIMEOUT, writer).await;
    }
}

/// Write queued frames in batches, one flush per batch; on the close
/// signal, send the close frame (if any) and close the socket.
async fn write(
    mut sink: Sink,
    mut outbound: session::QueueReceiver<WireFrame>,
    mut close: oneshot::Receiver<Option<u16>>,
) {
    let code = loop {
        let frame = tokio::select! {
            biased;
            code = &mut close => break code.ok().flatten(),
            frame = outbound.recv() => frame,
        };
        let Some(frame) = frame else {
            // The session is gone: wait for the close code.
            break (&mut close).await.ok().flatten();
        };
        if write_batch(&mut sink, &mut outbound, frame).await.is_err() {
            return;
        }
    };
    if let Some(code) = code {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

async fn write_batch(
    sink: &mut Sink,
    outbound: &mut session::QueueReceiver<WireFrame>,
    first: WireFrame,
) -> Result<(), tungstenite::Error> {
    sink.feed(to_message(first)).await?;
    for _ in 1..WRITE_BATCH {
        match outbound.try_recv() {
            Some(frame) => sink.feed(to_message(frame)).await?,
            None => break,
        }
    }
    sink.flush().await
}

fn to_message(frame: WireFrame) -> Message {
    match frame {
        WireFrame::Text(text) => Message::Text(text),
        WireFrame::Binary(bytes) => Message::Binary(bytes),
    }
}
