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
use crate::state::AppState;
use fawkes_protocol::{Payload, PayloadError};

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
    /// The endpoint's application state ([`crate::EndpointBuilder::state`]).
    pub state: AppState,
}

impl ConnectInfo {
    /// A param as a string, if present and a string.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(|v| v.as_str())
    }

    /// The params read as a `T` (serde), e.g. a
    /// `#[derive(Deserialize)] struct Params { token: String }`. Every
    /// param is a string (they come from the query string); unknown ones
    /// (such as `vsn`) are ignored unless `T` denies them.
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, PayloadError> {
        Payload::Json(serde_json::Value::Object(self.params.clone())).deserialize()
    }

    /// The application's value of type `T`, if the endpoint was given one.
    pub fn state<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.state.get::<T>()
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

impl Connected {
    /// Accept with no id and no assigns (`{:ok, socket}`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Give the socket an id (Phoenix's `id/1`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Add an assign (Phoenix's `assign/3`), read by channels with
    /// [`crate::ChannelSocket::assign`].
    pub fn assign(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.assigns.insert(key.into(), value.into());
        self
    }
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

    /// Route topics matching `pattern` (an exact topic, or a prefix ending
    /// in `*`) to channels made by `factory`, one per join.
    pub fn channel<F, C, I>(mut self, pattern: impl Into<String>, factory: F) -> Self
    where
        F: Fn() -> C + Send + Sync + 'static,
        C: Channel<I>,
        I: Send + 'static,
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
