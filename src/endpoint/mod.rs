//! The HTTP server: mounts sockets at paths, serves their transports, hands
//! other requests to an application handler, and shuts down gracefully.

mod api;
pub(crate) mod http;
mod query;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::{handle_broadcast, json};
pub use query::parse_query;

use crate::presence::{Presence, PresenceOptions};
use crate::pubsub::PubSub;
use crate::session::Services;
use crate::socket::Socket;

/// An HTTP request as the endpoint receives it.
pub type HttpRequest = hyper::Request<Incoming>;
/// An HTTP response an application handler returns.
pub type HttpResponse = hyper::Response<Full<Bytes>>;
type HandlerFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;
type Handler = Arc<dyn Fn(HttpRequest) -> HandlerFuture + Send + Sync>;

/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Builds an [`Endpoint`].
pub struct EndpointBuilder {
    sockets: Vec<(String, Arc<Socket>)>,
    handler: Option<Handler>,
    pubsub: PubSub,
    presence: Option<PresenceOptions>,
}

impl std::fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("sockets", &self.sockets)
            .finish_non_exhaustive()
    }
}

impl EndpointBuilder {
    /// Mount `socket` at `path` (e.g. `"/socket"`): its transports are served
    /// at `<path>/websocket` and, when enabled, `<path>/longpoll`.
    pub fn socket(mut self, path: impl Into<String>, socket: Socket) -> Self {
        let path = path.into().trim_end_matches('/').to_owned();
        self.sockets.push((path, Arc::new(socket)));
        self
    }

    /// Handle every request that is not a socket transport (static files,
    /// APIs). Without one, such requests get 404.
    pub fn handler<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HttpResponse> + Send + 'static,
    {
        self.handler = Some(Arc::new(move |req| Box::pin(handler(req))));
        self
    }

    /// Enable presence with these options.
    pub fn presence(mut self, options: PresenceOptions) -> Self {
        self.presence = Some(options);
        self
    }

    /// Use `pubsub` (e.g. one joined to a cluster) instead of a fresh
    /// single-node one. Call it before taking [`EndpointBuilder::pubsub`].
    pub fn pubsub_instance(mut self, pubsub: PubSub) -> Self {
        self.pubsub = pubsub;
        self
    }

    /// The endpoint's pubsub, for handlers that broadcast.
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// Finish building.
    pub fn build(self) -> Endpoint {
        let presence = self
            .presence
            .map(|options| Presence::new(self.pubsub.clone(), options));
        Endpoint {
            inner: Arc::new(Inner {
                sockets: self.sockets,
                handler: self.handler,
                shared: Services {
                    pubsub: self.pubsub,
                    presence,
                    shutdown: CancellationToken::new(),
                },
            }),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) sockets: Vec<(String, Arc<Socket>)>,
    pub(crate) handler: Option<Handler>,
    pub(crate) shared: Services,
}

/// A configured server: sockets, handler, pubsub and presence.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("sockets", &self.inner.sockets)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Start building an endpoint.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder {
            sockets: Vec::new(),
            handler: None,
            pubsub: PubSub::new(),
            presence: None,
        }
    }

    /// The endpoint's pubsub (`Endpoint.broadcast`).
    pub fn pubsub(&self) -> &PubSub {
        &self.inner.shared.pubsub
    }

    /// The endpoint's presence, if enabled.
    pub fn presence(&self) -> Option<&Presence> {
        self.inner.shared.presence.as_ref()
    }

    /// Serve connections from `listener` until `shutdown` resolves; then
    /// close every session (websockets with 1012, so clients reconnect
    /// elsewhere) and wait briefly for connections to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let tracker = TaskTracker::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let inner = self.inner.clone();
            tracker.spawn(async move {
                let shutdown = inner.shared.shutdown.clone();
                let service = service_fn(move |req| http::dispatch(inner.clone(), req, peer));
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::pin!(conn);
                let ended = tokio::select! {
                    ended = conn.as_mut() => ended,
                    _ = shutdown.cancelled() => {
                        // Finish the request in flight, then close the
                        // connection instead of serving more keep-alive requests.
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(error) = ended {
                    tracing::debug!(%error, "http connection ended with an error");
                }
            });
        }
        tracing::info!("shutting down");
        self.inner.shared.shutdown.cancel();
        tracker.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await;
        Ok(())
    }
}

/// Sign LongPoll tokens with a key derived from `secret` (the same on every
/// node of a cluster, so a request may reach any node). Process-wide; call
/// it before serving. Returns `false` if tokens already use another key.
pub fn share_longpoll_secret(secret: &str) -> bool {
    crate::transport::longpoll::share_secret(secret)
}

/// How many connections may wait to be accepted; the OS default (128) drops
/// connection bursts.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Bind a listener on `addr` with a backlog of [`LISTEN_BACKLOG`] and
/// `SO_REUSEADDR`, ready for [`Endpoint::serve`].
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
