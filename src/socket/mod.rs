//! A mounted socket's configuration: the connect callback (with the socket
//! id), the channel routes, and transport options. Built like
//! `Phoenix.Socket` with `channel "room:*", RoomChannel`.

mod limit_counters;
mod options;
mod origin;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::session::RateLimit;
pub use limit_counters::LimitCounters;
pub use options::SocketOptions;
pub use origin::{CheckOrigin, OriginError};

use crate::channel::{Channel, Router};

/// Connect params and connection facts handed to the connect callback.
#[derive(Debug, Clone, Default)]
pub struct ConnectInfo {
    /// Every query param (including `vsn`), as JSON strings.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The token phoenix.js sends with `authToken` (websocket subprotocol or
    /// the longpoll `X-Phoenix-AuthToken` header).
    pub auth_token: Option<String>,
    /// The client's address.
    pub peer_addr: Option<SocketAddr>,
    /// The HTTP request headers.
    pub headers: hyper::HeaderMap,
}

impl ConnectInfo {
    /// A param as a string, if present and a string.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(|v| v.as_str())
    }
}

/// A connect callback's acceptance.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    /// Socket assigns, visible to every channel of the connection.
    pub assigns: serde_json::Map<String, serde_json::Value>,
    /// The socket id: a `disconnect` broadcast on this topic closes every
    /// socket with this id.
    pub id: Option<String>,
}

/// A connect callback's refusal (HTTP 403, as Phoenix answers `:error`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("connection refused")]
pub struct ConnectRefused;

type ConnectFuture = Pin<Box<dyn Future<Output = Result<Connected, ConnectRefused>> + Send>>;
type ConnectFn = Arc<dyn Fn(ConnectInfo) -> ConnectFuture + Send + Sync>;

/// A socket to mount on an endpoint path.
#[derive(Clone)]
pub struct Socket {
    pub(crate) connect: ConnectFn,
    pub(crate) router: Router,
    pub(crate) options: SocketOptions,
    pub(crate) limit_counters: Arc<LimitCounters>,
}

/// What a session needs of its socket.
pub(crate) type SocketConfig = Socket;

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("routes", &self.router)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for Socket {
    fn default() -> Self {
        Self::new()
    }
}

impl Socket {
    /// A socket that accepts every connection, with default options and no
    /// channels.
    pub fn new() -> Self {
        Self {
            connect: Arc::new(|_| Box::pin(async { Ok(Connected::default()) })),
            router: Router::default(),
            options: SocketOptions::default(),
            limit_counters: Arc::default(),
        }
    }

    /// Set the connect callback (Phoenix's `connect/3` and `id/1`).
    pub fn connect<F, Fut>(mut self, connect: F) -> Self
    where
        F: Fn(ConnectInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Connected, ConnectRefused>> + Send + 'static,
    {
        self.connect = Arc::new(move |info| Box::pin(connect(info)));
        self
    }

    /// Route topics matching `pattern` to channels made by `factory`.
    pub fn channel<F, C>(mut self, pattern: impl Into<String>, factory: F) -> Self
    where
        F: Fn() -> C + Send + Sync + 'static,
        C: Channel,
    {
        self.router.route(pattern, factory);
        self
    }

    /// Replace the options.
    pub fn options(mut self, options: SocketOptions) -> Self {
        self.options = options;
        self
    }

    /// The current options.
    pub fn get_options(&self) -> &SocketOptions {
        &self.options
    }

    /// How often this socket's clients hit its limits.
    pub fn limit_counters(&self) -> Arc<LimitCounters> {
        self.limit_counters.clone()
    }
}
