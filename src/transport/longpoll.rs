//! The LongPoll transport (HTTP polling), for clients without websockets,
//! answering as Phoenix's `Phoenix.Transports.LongPoll` does.
//!
//! * `GET` listens: without a valid session it starts one (origin, `vsn`
//!   and the connect callback are checked as for websockets) and answers
//!   `{"status":410,"token":T,"messages":[]}`; with one it answers the
//!   buffered frames at once (`200`), or waits up to the poll window for the
//!   first one, else `204`. A newer GET on the same session ends an older
//!   waiting one with `204` at once (Phoenix lets the older one time out).
//! * `POST` publishes: the body's frames (see [`body`]) go to the session in
//!   order; `{"status":200}`, `408` when the session does not take a frame
//!   within the window, `410` without a valid session.
//! * `OPTIONS` answers the CORS preflight; any other method gets HTTP 400.
//!
//! Every answer is HTTP 200 with the logical status in the JSON body, and
//! carries `access-control-allow-origin: *`; JSON answers are never cached.
//! Tokens are HMAC-signed session ids (see [`token`]); sessions that no GET
//! reached for 1.5 × the window are closed (see [`session`]).

pub(crate) mod body;
mod remote;
mod session;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fawkes_protocol::Serializer;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde::Serialize;

use crate::endpoint::body::RequestBody;
use crate::endpoint::http::empty;
use crate::endpoint::{parse_query, HttpResponse};
use crate::session::Services;
use crate::socket::{ConnectInfo, Socket};
use hyper::Request;
use session::{LpSession, Poll, Publish};
pub(crate) use token::share_secret;

/// Header carrying the session token (wins over the `token` query param).
const TOKEN_HEADER: &str = "x-phoenix-longpoll-token";
/// Header phoenix.js sends its `authToken` in on every poll.
const AUTH_TOKEN_HEADER: &str = "x-phoenix-authtoken";
/// Largest POST body read (Plug's `read_body` default); larger → HTTP 400.
const MAX_BODY: usize = 8_000_000;

/// The JSON body of a longpoll answer.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    /// The logical status: 200, 204, 403, 408 or 410.
    status: u16,
    /// The session token (GET answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    /// Encoded text frames, in order (GET answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<&'a str>>,
}

/// Answer one longpoll request.
pub(crate) async fn handle<B: RequestBody>(
    req: Request<B>,
    socket: Arc<Socket>,
    shared: &Services,
    peer: SocketAddr,
) -> HttpResponse {
    let mut response = route(req, socket, shared, peer).await;
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Check the origin, then dispatch on the method.
async fn route<B: RequestBody>(
    req: Request<B>,
    socket: Arc<Socket>,
    shared: &Services,
    peer: SocketAddr,
) -> HttpResponse {
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Err(error) = socket.options.check_origin.check(origin, host) {
        tracing::warn!(%error, "refusing longpoll: origin");
        return status_only(403);
    }
    match *req.method() {
        Method::OPTIONS => preflight(req.headers()),
        Method::GET => listen(req, socket, shared, peer).await,
        Method::POST => publish(req, socket, shared).await,
        _ => empty(StatusCode::BAD_REQUEST),
    }
}

/// The CORS preflight answer.
fn preflight(headers: &HeaderMap) -> HttpResponse {
    let requested: Vec<&str> = headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut response = empty(StatusCode::OK);
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&requested.join(", ")) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("get, post, options"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("3600"),
    );
    response
}

/// Where the session a request names lives.
enum Found {
    /// On this node.
    Here(Arc<LpSession>, String),
    /// Not here, but the token is valid and this node is in a cluster: maybe
    /// on another node.
    Elsewhere(token::SessionId, String),
}

/// The session named by the request's token (header first, then the
/// `token` query param), if it is valid, live and of this socket (or, in a
/// cluster, possibly on another node); with the token as sent.
fn resume<B>(req: &Request<B>, socket: &Arc<Socket>, shared: &Services) -> Option<Found> {
    let presented = match req.headers().get(HeaderName::from_static(TOKEN_HEADER)) {
        Some(value) => value.to_str().ok()?.to_owned(),
        None => {
            let params = parse_query(req.uri().query());
            params.get("token")?.as_str()?.to_owned()
        }
    };
    let id = match token::verify(&presented) {
        Ok(id) => id,
        Err(error) => {
            tracing::debug!(%error, "longpoll token refused");
            return None;
        }
    };
    match session::lookup(id, socket) {
        Some(session) => Some(Found::Here(session, presented)),
        None if shared.pubsub.is_clustered() => Some(Found::Elsewhere(id, presented)),
        None => None,
    }
}

/// GET: poll a live session, or start a new one.
async fn listen<B: RequestBody>(
    req: Request<B>,
    socket: Arc<Socket>,
    shared: &Services,
    peer: SocketAddr,
) -> HttpResponse {
    let window = socket.options.longpoll_window;
    let polled = match resume(&req, &socket, shared) {
        Some(Found::Here(session, token)) => (session.poll(window).await, token),
        Some(Found::Elsewhere(id, token)) => match remote::poll(&shared.pubsub, id, window).await {
            remote::RemotePoll::Answer(poll) => (poll, token),
            remote::RemotePoll::Gone => return new_session(req, socket, shared, peer).await,
        },
        None => return new_session(req, socket, shared, peer).await,
    };
    let (polled, token) = polled;
    match polled {
        Poll::Messages(frames) => {
            let messages = frames.iter().map(|f| f.as_str()).collect();
            json(&Answer {
                status: 200,
                token: Some(&token),
                messages: Some(messages),
            })
        }
        Poll::NoContent => json(&Answer {
            status: 204,
            token: Some(&token),
            messages: Some(Vec::new()),
        }),
    }
}

/// Start a session for a GET without a valid one: `410` with its token, or
/// `403` when the origin, `vsn` or the connect callback refuses.
async fn new_session<B: RequestBody>(
    req: Request<B>,
    socket: Arc<Socket>,
    shared: &Services,
    peer: SocketAddr,
) -> HttpResponse {
    if shared.shutdown.is_cancelled() {
        // Shutting down: no new sessions; phoenix.js retries elsewhere/later.
        return empty(StatusCode::SERVICE_UNAVAILABLE);
    }
    let params = parse_query(req.uri().query());
    let serializer = match Serializer::from_vsn(params.get("vsn").and_then(|v| v.as_str())) {
        Ok(serializer) => serializer,
        Err(error) => {
            tracing::warn!(%error, "refusing longpoll: vsn");
            return status_only(403);
        }
    };
    let headers = req.headers();
    let auth_token = headers
        .get(HeaderName::from_static(AUTH_TOKEN_HEADER))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let info = ConnectInfo {
        params,
        auth_token,
        peer_addr: Some(peer),
        headers: headers.clone(),
        state: shared.state.clone(),
    };
    let Ok(connected) = (socket.connect)(info).await else {
        tracing::info!(%peer, "longpoll connect refused");
        return status_only(403);
    };
    let (id, token) = match token::SessionId::random().and_then(|id| Ok((id, token::sign(id)?))) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::error!(%error, "cannot start a longpoll session");
            return empty(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let expiry = expiry(socket.options.longpoll_window);
    let handle = crate::session::start(socket.clone(), shared, serializer, connected);
    let window = socket.options.longpoll_window;
    let session = session::register(id, socket, handle, expiry);
    if shared.pubsub.is_clustered() {
        // Requests for this session may arrive at other nodes.
        let listening = remote::listen(&shared.pubsub, id, &session, window);
        let closed = session.closed();
        let pubsub = shared.pubsub.clone();
        tokio::spawn(async move {
            closed.cancelled().await;
            remote::unlisten(&pubsub, listening);
        });
    }
    json(&Answer {
        status: 410,
        token: Some(&token),
        messages: Some(Vec::new()),
    })
}

/// POST: hand the body's frames to the session.
async fn publish<B: RequestBody>(
    req: Request<B>,
    socket: Arc<Socket>,
    shared: &Services,
) -> HttpResponse {
    let Some(found) = resume(&req, &socket, shared) else {
        return status_only(410);
    };
    let content_type = {
        let mut values = req.headers().get_all(header::CONTENT_TYPE).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok().map(str::to_owned),
            _ => None,
        }
    };
    let body = match crate::endpoint::read_body(req, MAX_BODY).await {
        Ok(body) => body,
        Err(error) => {
            tracing::info!(%error, "longpoll body refused");
            return empty(error.status());
        }
    };
    let frames = match body::frames(content_type.as_deref(), body) {
        Ok(frames) => frames,
        Err(error) => {
            tracing::info!(%error, "longpoll body refused");
            return empty(StatusCode::BAD_REQUEST);
        }
    };
    let window = socket.options.longpoll_window;
    let published = match found {
        Found::Here(session, _) => session.publish(frames, window).await,
        Found::Elsewhere(id, _) => remote::publish(&shared.pubsub, id, frames, window).await,
    };
    match published {
        Publish::Ok => status_only(200),
        Publish::Timeout => status_only(408),
        Publish::Gone => status_only(410),
    }
}

/// A session is closed when no GET reached it for this long.
fn expiry(window: Duration) -> Duration {
    window.saturating_mul(3) / 2
}

/// `{"status":N}`.
fn status_only(status: u16) -> HttpResponse {
    json(&Answer {
        status,
        token: None,
        messages: None,
    })
}

/// A JSON answer: HTTP 200, never cached.
fn json(answer: &Answer<'_>) -> HttpResponse {
    let body = match serde_json::to_vec(answer) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "longpoll answer not encodable");
            return empty(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_serialize_like_phoenix() {
        let body = |a: &Answer<'_>| serde_json::to_value(a).expect("json");
        assert_eq!(
            body(&Answer {
                status: 410,
                token: None,
                messages: None
            }),
            serde_json::json!({"status": 410})
        );
        assert_eq!(
            body(&Answer {
                status: 200,
                token: Some("t"),
                messages: Some(vec!["[1]"])
            }),
            serde_json::json!({"status": 200, "token": "t", "messages": ["[1]"]})
        );
    }

    #[test]
    fn expiry_is_one_and_a_half_windows() {
        assert_eq!(expiry(Duration::from_secs(10)), Duration::from_secs(15));
    }
}
