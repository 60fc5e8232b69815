//! The HTTP server: mounts sockets at paths, serves their transports, hands
//! other requests to an application handler, and shuts down gracefully.

mod api;
mod bearer;
pub(crate) mod body;
mod health;
pub(crate) mod http;
pub(crate) mod limits;
mod metrics;
mod query;
#[cfg(feature = "tower")]
mod service;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::session::DrainOptions;
pub use api::{handle_broadcast, json};
pub use bearer::{BearerSecret, BearerSecretError};
pub use body::{read_body, BodyError};
pub use health::{HEALTH_PATH, READY_PATH};
pub use limits::{ConnectionRefused, HttpLimits};
pub use metrics::{MetricsOptions, METRICS_PATH};
pub use query::parse_query;
#[cfg(feature = "tower")]
pub use service::{EndpointService, PeerAddr};

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
    http_limits: HttpLimits,
    health_checks: bool,
    metrics: MetricsOptions,
    redis: Option<metrics::RedisStats>,
    drain: DrainOptions,
    state: crate::state::AppState,
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

    /// Give the application's `value` to every connect callback
    /// ([`crate::ConnectInfo::state`]) and channel
    /// ([`crate::ChannelSocket::state`]), found by its type. Call it once
    /// per type (a second value of a type replaces the first).
    pub fn state<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.state = self.state.with(value);
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

    /// Answer [`HEALTH_PATH`] and [`READY_PATH`] (on by default).
    pub fn health_checks(mut self, enabled: bool) -> Self {
        self.health_checks = enabled;
        self
    }

    /// Serve `/metrics` (off by default in the library; the `fawkes`
    /// binary turns it on).
    pub fn metrics(mut self, options: MetricsOptions) -> Self {
        self.metrics = options;
        self
    }

    /// How sessions are closed at shutdown (default: Phoenix's drainer,
    /// [`DrainOptions::default`]).
    pub fn drain(mut self, options: DrainOptions) -> Self {
        self.drain = options;
        self
    }

    /// Report this Redis link in `/metrics` (`fawkes_redis_connected`).
    pub fn redis_stats(mut self, stats: Arc<crate::pubsub::redis::ClusterStats>) -> Self {
        self.redis = Some(stats);
        self
    }

    /// Limits on HTTP connections (defaults: [`HttpLimits::default`]).
    pub fn http_limits(mut self, limits: HttpLimits) -> Self {
        self.http_limits = limits;
        self
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
                http_limits: self.http_limits,
                health_checks: self.health_checks,
                metrics: self.metrics,
                redis: self.redis,
                drain: self.drain,
                connections: limits::ConnectionCounter::new(self.http_limits),
                shared: Services {
                    pubsub: self.pubsub,
                    presence,
                    shutdown: CancellationToken::new(),
                    drain: Default::default(),
                    tasks: TaskTracker::new(),
                    state: self.state,
                },
            }),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) sockets: Vec<(String, Arc<Socket>)>,
    pub(crate) handler: Option<Handler>,
    pub(crate) http_limits: HttpLimits,
    pub(crate) health_checks: bool,
    pub(crate) metrics: MetricsOptions,
    pub(crate) redis: Option<metrics::RedisStats>,
    pub(crate) drain: DrainOptions,
    pub(crate) connections: Arc<limits::ConnectionCounter>,
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
            http_limits: HttpLimits::default(),
            health_checks: true,
            metrics: MetricsOptions::default(),
            redis: None,
            drain: DrainOptions::default(),
            state: Default::default(),
        }
    }

    /// What the endpoint is made of, for in-process clients.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The endpoint's pubsub (`Endpoint.broadcast`).
    pub fn pubsub(&self) -> &PubSub {
        &self.inner.shared.pubsub
    }

    /// The endpoint's presence, if enabled.
    pub fn presence(&self) -> Option<&Presence> {
        self.inner.shared.presence.as_ref()
    }

    /// Connections open now (HTTP and upgraded websockets).
    pub fn open_connections(&self) -> usize {
        self.inner.connections.open()
    }

    /// What `/metrics` answers now (whether or not it is served).
    pub fn metrics_text(&self) -> String {
        metrics::scrape(&self.inner)
    }

    /// Connections refused so far by [`HttpLimits`].
    pub fn refused_connections(&self) -> u64 {
        self.inner.connections.refused()
    }

    /// Serve connections from `listener` until `shutdown` resolves; then
    /// drain: stop accepting (the listener is closed, `/ready` answers 503),
    /// close the sessions in batches as [`DrainOptions`] says (websockets
    /// with 1012, so phoenix.js reconnects, elsewhere), and wait briefly
    /// for connections to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => self.accept(accepted).await,
            }
        }
        let drain = self.start_shutdown();
        tokio::pin!(drain);
        // Still answering HTTP while draining, so `/ready` is seen as 503.
        loop {
            tokio::select! {
                _ = &mut drain => break,
                accepted = listener.accept() => self.accept(accepted).await,
            }
        }
        // Stop accepting: connection attempts are refused from now on.
        drop(listener);
        self.finish_shutdown().await;
        Ok(())
    }

    /// The endpoint as a tower service, to serve its sockets inside an
    /// application that owns the listener (an axum `Router`, see
    /// [`EndpointService`] for the paths it answers). Shut it down with
    /// [`Endpoint::shutdown`] inside the application's graceful shutdown.
    #[cfg(feature = "tower")]
    pub fn into_service(self) -> EndpointService {
        EndpointService::new(self.inner)
    }

    /// Drain and stop the endpoint's sessions as [`Endpoint::serve`] does
    /// after its shutdown signal (`/ready` answers 503, new sessions are
    /// refused, sessions close in batches as [`DrainOptions`] says), then
    /// wait briefly for its connections to finish. For an endpoint served
    /// by the application ([`Endpoint::serve_connection`], a service):
    /// call it when the application starts its graceful shutdown.
    pub async fn shutdown(&self) {
        self.start_shutdown().await;
        self.finish_shutdown().await;
    }

    /// Refuse new sessions; the returned future drains the open ones.
    fn start_shutdown(&self) -> impl Future<Output = ()> + '_ {
        tracing::info!("shutting down: draining sessions");
        // From now on: `/ready` answers 503, new sessions are refused (503,
        // phoenix.js retries), HTTP connections close after their request.
        self.inner.shared.shutdown.cancel();
        let counters = self.inner.shared.pubsub.counters();
        let open = counters.connections(crate::metrics::Transport::WebSocket)
            + counters.connections(crate::metrics::Transport::LongPoll);
        let open = usize::try_from(open).unwrap_or(0);
        self.inner.shared.drain.run(open, self.inner.drain)
    }

    /// Wait, at most [`SHUTDOWN_GRACE`], for the endpoint's tasks to end.
    async fn finish_shutdown(&self) {
        let tracker = &self.inner.shared.tasks;
        tracker.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await;
    }

    /// Serve one accepted connection in a tracked task of its own.
    async fn accept(
        &self,
        accepted: std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
    ) {
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        self.serve_connection(stream, peer);
    }

    /// Serve one connection the application accepted itself (from a
    /// listener it wraps, after a TLS handshake...), from `peer`, in a task
    /// of its own: HTTP/1.1 with the socket transports, the handler, the
    /// [`HttpLimits`] and the drain of [`Endpoint::serve`]. Returns at once.
    /// Must be called inside a Tokio runtime.
    pub fn serve_connection<S>(&self, stream: S, peer: std::net::SocketAddr)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.inner.http_limits;
        // Over a limit: closed at once, before any byte is read.
        let permit = match self.inner.connections.try_open(peer.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                tracing::debug!(%peer, %refused, "connection refused");
                return;
            }
        };
        let inner = self.inner.clone();
        self.inner.shared.tasks.spawn(async move {
            let shutdown = inner.shared.shutdown.clone();
            // Accepted while draining: one request, then close.
            let keep_alive = !shutdown.is_cancelled();
            let body_timeout = body::BodyReadTimeout(limits.body_read_timeout);
            // Held until the HTTP connection ends; a websocket it becomes
            // takes a place of its own (`ConnectionCounter::hand_over`).
            let _permit = permit;
            let service = service_fn(move |mut req: HttpRequest| {
                req.extensions_mut().insert(body_timeout);
                http::dispatch(inner.clone(), req, peer)
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(keep_alive)
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let ended = if keep_alive {
                tokio::select! {
                    ended = conn.as_mut() => ended,
                    _ = shutdown.cancelled() => {
                        // Finish the request in flight, then close the
                        // connection instead of serving more keep-alive requests.
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                }
            } else {
                conn.await
            };
            if let Err(error) = ended {
                tracing::debug!(%error, "http connection ended with an error");
            }
        });
    }
}

/// Sign LongPoll tokens with a key derived from `secret` (the same on every
/// node of a cluster, so a request may reach any node). Process-wide; call
/// it before serving. Returns `false` if tokens already use another key.
pub fn share_longpoll_secret(secret: &str) -> bool {
    crate::transport::longpoll::share_secret(secret)
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what a deploy or an
/// orchestrator sends): the usual `shutdown` for [`Endpoint::serve`], which
/// then drains the sockets. If SIGTERM cannot be watched, Ctrl-C alone.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
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
