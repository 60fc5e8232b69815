//! The reverse proxy in front of a Phoenix server: websocket upgrades are
//! answered once the upstream answered its own handshake, then frames are
//! forwarded in both directions (text and binary as they are, close frames
//! with their codes, subprotocol headers in the handshake); other HTTP
//! requests (LongPoll GET/POST/OPTIONS, the API, pages) are forwarded with
//! their method, path, headers and body, and answered with the upstream's
//! status, headers and body.
//!
//! Each direction of a websocket is one loop that reads a frame, hands a
//! copy to the recorder without waiting (`try_send`), and forwards it, so
//! frames are never reordered or held back by recording.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Sender;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::recorder::{Event, Payload};
use crate::http::BaseUrl;
use crate::transcript::HttpRequestSpec;

/// Largest HTTP body the proxy buffers.
const MAX_BODY: usize = 16 << 20;

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the handshake of each hop makes for itself.
const WS_HANDSHAKE: [&str; 5] = [
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

/// Request headers kept in recorded HTTP steps (replay sets the rest).
const RECORDED_HEADERS: [&str; 2] = ["accept", "content-type"];

/// What every proxied connection shares.
#[derive(Debug)]
pub struct Shared {
    /// The upstream server.
    pub upstream: BaseUrl,
    /// The recorder's queue.
    pub events: Sender<(Instant, Event)>,
    /// Events that did not fit in the queue.
    pub lost: Arc<AtomicU64>,
    /// HTTP paths (prefixes) recorded besides `…/longpoll`.
    pub record_http: Vec<String>,
    next_id: AtomicU64,
}

impl Shared {
    /// Shared state for a proxy in front of `upstream`.
    pub fn new(
        upstream: BaseUrl,
        events: Sender<(Instant, Event)>,
        lost: Arc<AtomicU64>,
        record_http: Vec<String>,
    ) -> Self {
        Self {
            upstream,
            events,
            lost,
            record_http,
            next_id: AtomicU64::new(1),
        }
    }

    fn report(&self, event: Event) {
        if self.events.try_send((Instant::now(), event)).is_err() {
            self.lost.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn records_http(&self, path: &str) -> bool {
        let path_only = path.split('?').next().unwrap_or(path);
        path_only.ends_with("/longpoll")
            || self.record_http.iter().any(|p| path_only.starts_with(p))
    }
}

/// Accepts connections on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(req, shared, peer).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "proxied connection ended");
            }
        });
    }
}

fn status_response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if is_upgrade(&req) {
        websocket(req, shared).await
    } else {
        forward_http(req, shared, peer).await
    }
}

fn path_and_query(req: &Request<Incoming>) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned())
}

async fn forward_http(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let sent_at = Instant::now();
    let path = path_and_query(&req);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%peer, %error, "request body not read");
            return status_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
    };
    let mut upstream_req = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{}", shared.upstream.prefix, path));
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            upstream_req = upstream_req.header(name, value);
        }
    }
    let Ok(upstream_req) = upstream_req.body(Full::new(body.clone())) else {
        return status_response(StatusCode::BAD_REQUEST, "request not forwardable");
    };
    let response = match exchange(&shared.upstream, upstream_req).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "upstream request failed");
            return status_response(StatusCode::BAD_GATEWAY, "upstream unavailable");
        }
    };
    let (rparts, rbody) = response;
    if shared.records_http(&path) {
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| RECORDED_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        shared.report(Event::Http {
            sent_at,
            request: HttpRequestSpec {
                method: parts.method.as_str().to_owned(),
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            status: rparts.status.as_u16(),
            body: String::from_utf8_lossy(&rbody).into_owned(),
        });
    }
    let mut out = Response::new(Full::new(rbody));
    *out.status_mut() = rparts.status;
    for (name, value) in &rparts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

type Parts = (hyper::http::response::Parts, Bytes);

async fn exchange(upstream: &BaseUrl, req: Request<Full<Bytes>>) -> Result<Parts, String> {
    let host = upstream.host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host, upstream.port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((parts, bytes))
    }
    .await;
    driver.abort();
    result
}

async fn websocket(mut req: Request<Incoming>, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    let path = path_and_query(&req);
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return status_response(StatusCode::BAD_REQUEST, "missing sec-websocket-key");
    };
    let url = shared.upstream.ws_url(&path, "");
    let Ok(mut upstream_req) = url.as_str().into_client_request() else {
        return status_response(StatusCode::BAD_REQUEST, "bad websocket path");
    };
    for (name, value) in req.headers() {
        let lower = name.as_str();
        if !HOP_BY_HOP.contains(&lower) && !WS_HANDSHAKE.contains(&lower) {
            upstream_req.headers_mut().append(name, value.clone());
        }
    }
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let (path_only, query) = split_query(&path);
    let upstream =
        match tokio_tungstenite::connect_async_with_config(upstream_req, None, true).await {
            Ok((ws, response)) => (ws, response),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status();
                shared.report(Event::Connect {
                    id,
                    path: path_only,
                    query,
                    status: status.as_u16(),
                });
                let (parts, body) = response.into_parts();
                let mut out = Response::new(Full::new(Bytes::from(body.unwrap_or_default())));
                *out.status_mut() = status;
                for (name, value) in &parts.headers {
                    if !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
                        out.headers_mut().append(name, value.clone());
                    }
                }
                return out;
            }
            Err(error) => {
                tracing::warn!(%error, "upstream websocket failed");
                return status_response(StatusCode::BAD_GATEWAY, "upstream unavailable");
            }
        };
    let (upstream_ws, upstream_response) = upstream;
    shared.report(Event::Connect {
        id,
        path: path_only,
        query,
        status: 101,
    });
    let on_upgrade = hyper::upgrade::on(&mut req);
    let pump_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let client =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                pump(id, client, upstream_ws, &pump_shared).await;
            }
            Err(error) => tracing::debug!(%error, "client upgrade failed"),
        }
        pump_shared.report(Event::Gone { id });
    });
    let mut response = status_response(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    for (name, value) in upstream_response.headers() {
        let lower = name.as_str();
        if !HOP_BY_HOP.contains(&lower) && !WS_HANDSHAKE.contains(&lower) {
            if let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) {
                headers.append(name, value.clone());
            }
        }
    }
    response
}

fn split_query(path: &str) -> (String, Vec<(String, String)>) {
    match path.split_once('?') {
        Some((p, q)) => (
            p.to_owned(),
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ),
        None => (path.to_owned(), Vec::new()),
    }
}

/// Who closed first on a proxied websocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    Nobody,
    Client,
    Server,
}

async fn pump<C, U>(
    id: u64,
    client: WebSocketStream<C>,
    upstream: WebSocketStream<U>,
    shared: &Shared,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let closer = std::sync::Mutex::new(Closer::Nobody);
    let claim = |who: Closer| -> bool {
        let mut c = closer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *c == Closer::Nobody {
            *c = who;
            true
        } else {
            false
        }
    };
    let to_upstream = async {
        while let Some(message) = client_rx.next().await {
            let Ok(message) = message else { break };
            match &message {
                Message::Text(t) => shared.report(Event::ClientFrame {
                    id,
                    frame: Payload::Text(t.as_str().to_owned()),
                }),
                Message::Binary(b) => shared.report(Event::ClientFrame {
                    id,
                    frame: Payload::Binary(b.to_vec()),
                }),
                Message::Close(frame) => {
                    if claim(Closer::Client) {
                        let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                        shared.report(Event::ClientClose { id, code });
                    }
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
            let is_close = matches!(message, Message::Close(_));
            if upstream_tx.send(message).await.is_err() || is_close {
                break;
            }
        }
        // A client that went away without a close frame: the upstream's
        // answer to the close sent now is not a server close.
        let _ = claim(Closer::Client);
        let _ = upstream_tx.close().await;
    };
    let to_client = async {
        let mut reported = false;
        while let Some(message) = upstream_rx.next().await {
            let message = match message {
                Ok(message) => message,
                Err(_) => break,
            };
            match &message {
                Message::Text(t) => shared.report(Event::ServerFrame {
                    id,
                    frame: Payload::Text(t.as_str().to_owned()),
                }),
                Message::Binary(b) => shared.report(Event::ServerFrame {
                    id,
                    frame: Payload::Binary(b.to_vec()),
                }),
                Message::Close(frame) => {
                    reported = true;
                    if claim(Closer::Server) {
                        let (code, reason) = frame.as_ref().map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.as_str().to_owned())
                        });
                        shared.report(Event::ServerClose {
                            id,
                            code: Some(code),
                            reason,
                        });
                    }
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
            let is_close = matches!(message, Message::Close(_));
            if client_tx.send(message).await.is_err() || is_close {
                break;
            }
        }
        if !reported && claim(Closer::Server) {
            // The upstream went away without a close frame: so does the client.
            shared.report(Event::ServerClose {
                id,
                code: None,
                reason: String::new(),
            });
            let _ = client_tx.close().await;
        }
    };
    tokio::join!(to_upstream, to_client);
}
