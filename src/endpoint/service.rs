//! The endpoint as a tower [`Service`](tower_service::Service), so an axum
//! (or any tower-based) application serves fawkes's socket transports next
//! to its own routes, middleware and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::StatusCode;

use super::body::{BodyReadTimeout, RequestBody};
use super::http::{empty, own_routes};
use super::{HttpResponse, Inner};

/// Where a request's client address is found in its extensions.
type PeerLookup = Arc<dyn Fn(&hyper::http::Extensions) -> Option<SocketAddr> + Send + Sync>;

/// The client address of a request, put in its extensions by the
/// application (or a middleware) for an [`EndpointService`] to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// An [`Endpoint`](super::Endpoint) as a tower service, made by
/// [`Endpoint::into_service`](super::Endpoint::into_service).
///
/// It answers the endpoint's own routes (the mounted sockets' `websocket`
/// and `longpoll` transports, the health checks and metrics when enabled)
/// at the paths it receives, and 404 to every other request: the
/// application's router does the job of [`EndpointBuilder::handler`]
/// (which this service never calls). Nested with axum's
/// `nest_service("/socket", service)` it receives paths without `/socket`,
/// so mount the socket at `"/"`; as a `fallback_service` it receives whole
/// paths, so mount it at `"/socket"`.
///
/// The request body may be of any type with [`bytes::Bytes`] chunks (axum's
/// `Body`, hyper's `Incoming`); longpoll reads it with the same size limit
/// and [`HttpLimits::body_read_timeout`](super::HttpLimits) as
/// [`Endpoint::serve`](super::Endpoint::serve). Websocket upgrades need the
/// server to keep hyper's upgrade in the request (axum's `serve` does).
///
/// [`EndpointBuilder::handler`]: super::EndpointBuilder::handler
#[derive(Clone)]
pub struct EndpointService {
    inner: Arc<Inner>,
    peer: PeerLookup,
}

impl std::fmt::Debug for EndpointService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointService")
            .field("sockets", &self.inner.sockets)
            .finish_non_exhaustive()
    }
}

impl EndpointService {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        EndpointService {
            inner,
            peer: Arc::new(|extensions| extensions.get::<PeerAddr>().map(|p| p.0)),
        }
    }

    /// Find each request's client address with `lookup` (the connect
    /// callback's [`ConnectInfo::peer_addr`](crate::ConnectInfo), the
    /// per-address websocket count), e.g. from axum's `ConnectInfo`:
    /// `.peer_addr(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))`.
    /// By default it reads a [`PeerAddr`] extension; a request without an
    /// address is taken as coming from `0.0.0.0:0`.
    pub fn peer_addr<F>(mut self, lookup: F) -> Self
    where
        F: Fn(&hyper::http::Extensions) -> Option<SocketAddr> + Send + Sync + 'static,
    {
        self.peer = Arc::new(lookup);
        self
    }
}

impl<B: RequestBody> tower_service::Service<hyper::Request<B>> for EndpointService {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: hyper::Request<B>) -> Self::Future {
        let peer = (self.peer)(req.extensions())
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        let timeout = BodyReadTimeout(self.inner.http_limits.body_read_timeout);
        req.extensions_mut().insert(timeout);
        let inner = self.inner.clone();
        Box::pin(async move {
            match own_routes(&inner, req, peer).await {
                Ok(answer) => Ok(answer),
                Err(_) => Ok(empty(StatusCode::NOT_FOUND)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower_service::Service;

    use super::*;
    use crate::{Connected, Endpoint, Socket, SocketOptions};

    /// A service for a socket mounted at the root (as when nested), with
    /// longpoll on; the connect callback records the peer it was given.
    fn service() -> (EndpointService, Arc<Mutex<Vec<Option<SocketAddr>>>>) {
        let peers = Arc::new(Mutex::new(Vec::new()));
        let seen = peers.clone();
        let socket = Socket::new()
            .connect(move |info: crate::ConnectInfo| {
                seen.lock().unwrap().push(info.peer_addr);
                async { Ok(Connected::new()) }
            })
            .options(SocketOptions {
                longpoll: true,
                ..SocketOptions::default()
            });
        let endpoint = Endpoint::builder().socket("/", socket).build();
        (endpoint.into_service(), peers)
    }

    /// The JSON body of a service answer.
    async fn json_of(response: HttpResponse) -> serde_json::Value {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    fn get(uri: &str) -> hyper::Request<Full<Bytes>> {
        hyper::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn longpoll_through_the_service_with_a_body_type_other_than_incoming() {
        let (mut service, peers) = service();
        let peer: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let mut listen = get("/longpoll?vsn=2.0.0");
        listen.extensions_mut().insert(PeerAddr(peer));
        let answer = json_of(service.call(listen).await.unwrap()).await;
        assert_eq!(answer["status"], 410);
        let token = answer["token"].as_str().unwrap().to_owned();
        assert_eq!(*peers.lock().unwrap(), vec![Some(peer)]);

        // POST: the frames come from a `Full` body, read by the transport.
        let heartbeat = r#"["1","1","phoenix","heartbeat",{}]"#;
        let publish = hyper::Request::post(format!("/longpoll?vsn=2.0.0&token={token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(heartbeat)))
            .unwrap();
        let answer = json_of(service.call(publish).await.unwrap()).await;
        assert_eq!(answer, serde_json::json!({"status": 200}));

        // The heartbeat's reply is waiting for the next GET.
        let poll = get(&format!("/longpoll?vsn=2.0.0&token={token}"));
        let answer = json_of(service.call(poll).await.unwrap()).await;
        assert_eq!(answer["status"], 200);
        let reply: serde_json::Value =
            serde_json::from_str(answer["messages"][0].as_str().unwrap()).unwrap();
        assert_eq!(reply[3], "phx_reply");
        assert_eq!(reply[4]["status"], "ok");
    }

    #[tokio::test]
    async fn other_paths_get_404_and_a_custom_peer_lookup_is_used() {
        let (service, peers) = service();
        let mut service = service.peer_addr(|ext| {
            ext.get::<SocketAddr>().copied().map(|mut p| {
                p.set_port(9);
                p
            })
        });
        let response = service.call(get("/elsewhere")).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);

        let mut listen = get("/longpoll?vsn=2.0.0");
        listen
            .extensions_mut()
            .insert("127.0.0.2:1000".parse::<SocketAddr>().unwrap());
        let answer = json_of(service.call(listen).await.unwrap()).await;
        assert_eq!(answer["status"], 410);
        let expected: SocketAddr = "127.0.0.2:9".parse().unwrap();
        assert_eq!(*peers.lock().unwrap(), vec![Some(expected)]);

        // Without an address: the unspecified one.
        let answer = json_of(service.call(get("/longpoll?vsn=2.0.0")).await.unwrap()).await;
        assert_eq!(answer["status"], 410);
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(peers.lock().unwrap()[1], Some(unspecified));
    }
}
