//! Routes one HTTP request: a socket transport, or the application handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;

use super::body::RequestBody;
use super::{HttpRequest, HttpResponse, Inner};
use crate::transport::{longpoll, websocket};

/// Answer one request of a connection the endpoint serves: its own routes
/// (see [`own_routes`]), else the application handler, else 404.
pub(super) async fn dispatch(
    inner: Arc<Inner>,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, Infallible> {
    match own_routes(&inner, req, peer).await {
        Ok(answer) => Ok(answer),
        Err(req) => match &inner.handler {
            Some(handler) => Ok(handler(req).await),
            None => Ok(empty(StatusCode::NOT_FOUND)),
        },
    }
}

/// Answer `req` if it is for one of the endpoint's own routes (health
/// checks, metrics, a mounted socket's transports); else give it back.
pub(super) async fn own_routes<B: RequestBody>(
    inner: &Arc<Inner>,
    req: hyper::Request<B>,
    peer: SocketAddr,
) -> Result<HttpResponse, hyper::Request<B>> {
    let path = req.uri().path().to_owned();
    if inner.health_checks {
        if let Some(answer) = super::health::answer(&path, &inner.shared) {
            return Ok(answer);
        }
    }
    if let Some(answer) = super::metrics::answer(&path, req.headers(), inner) {
        return Ok(answer);
    }
    for (mount, socket) in &inner.sockets {
        let Some(transport) = path.strip_prefix(mount.as_str()) else {
            continue;
        };
        if transport == "/websocket" && socket.options.websocket {
            return Ok(websocket::upgrade(
                req,
                socket.clone(),
                &inner.shared,
                &inner.connections,
                peer,
            )
            .await);
        }
        if transport == "/longpoll" && socket.options.longpoll {
            return Ok(longpoll::handle(req, socket.clone(), &inner.shared, peer).await);
        }
    }
    Err(req)
}

/// A response with a status and no body.
pub(crate) fn empty(status: StatusCode) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
