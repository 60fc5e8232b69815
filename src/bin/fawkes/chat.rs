//! The default application: config-driven topics whose clients' events are
//! relayed to each other, with presence, plus the chat page and the
//! broadcast API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fawkes::endpoint::{handle_broadcast, HttpRequest};
use fawkes::presence::PresenceOptions;
use fawkes::{
    Channel, ChannelSocket, ConnectInfo, Connected, Endpoint, HandleResult, Info, JoinResult,
    Payload, Reply, Socket,
};
use serde_json::{json, Value};

use crate::config::{Config, TopicRule};
use crate::static_files::StaticFiles;

/// Build the endpoint from `config` and serve until Ctrl-C or SIGTERM.
pub(crate) async fn serve(config: Config) -> Result<(), ServeError> {
    let addr = config.server.addr();
    let listener =
        fawkes::endpoint::bind(addr).map_err(|source| ServeError::Listen { addr, source })?;
    let endpoint = endpoint(&config);
    for socket in &config.sockets {
        let patterns: Vec<&str> = socket.topics.iter().map(|t| t.pattern.as_str()).collect();
        tracing::info!(
            path = %socket.path,
            websocket = socket.websocket,
            longpoll = socket.longpoll,
            topics = ?patterns,
            "socket mounted"
        );
    }
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    tracing::info!("fawkes listening on http://{local}");
    endpoint
        .serve(listener, shutdown_signal())
        .await
        .map_err(ServeError::Serve)
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The address could not be bound (busy port, no permission, unknown address).
    #[error("cannot listen on {addr}: {source}{hint}", hint = listen_hint(source))]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

fn listen_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another program is using this port: stop it, or choose another with --port)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges: try --port 4000)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (this machine has no such address: check --bind)",
        _ => "",
    }
}

/// The endpoint `config` describes.
pub(crate) fn endpoint(config: &Config) -> Endpoint {
    let mut builder = Endpoint::builder().presence(PresenceOptions {
        batch_window: Duration::from_millis(config.presence.batch_window_ms),
    });
    for socket_config in &config.sockets {
        let mut socket = Socket::new()
            .connect(|info: ConnectInfo| async move { Ok(connect(&info)) })
            .options(socket_config.options());
        for rule in &socket_config.topics {
            let rule = Arc::new(rule.clone());
            socket = socket.channel(rule.pattern.clone(), move || {
                RelayChannel::new(rule.clone())
            });
        }
        builder = builder.socket(socket_config.path.clone(), socket);
    }
    let pubsub = builder.pubsub().clone();
    let static_dir = &config.server.static_dir;
    let files = Arc::new(
        (!static_dir.as_os_str().is_empty()).then(|| StaticFiles::new(static_dir.clone())),
    );
    builder
        .handler(move |req: HttpRequest| {
            let pubsub = pubsub.clone();
            let files = files.clone();
            async move {
                if req.uri().path() == "/api/broadcast" {
                    handle_broadcast(&pubsub, req).await
                } else if let Some(files) = files.as_ref() {
                    files.serve(&req).await
                } else {
                    crate::static_files::not_found()
                }
            }
        })
        .build()
}

/// Every connection is accepted; its `user` param becomes an assign.
fn connect(info: &ConnectInfo) -> Connected {
    let mut connected = Connected::default();
    if let Some(user) = info.param("user").filter(|u| !u.is_empty()) {
        connected
            .assigns
            .insert("user".into(), Value::String(user.to_owned()));
    }
    connected
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Tracks the client after the join reply, then pushes the presence list.
struct AfterJoin {
    key: String,
}

/// A channel configured by a [`TopicRule`]: relays the listed events to the
/// other subscribers, and tracks presence when enabled.
struct RelayChannel {
    rule: Arc<TopicRule>,
}

impl RelayChannel {
    fn new(rule: Arc<TopicRule>) -> Self {
        Self { rule }
    }
}

impl Channel for RelayChannel {
    async fn join(
        &mut self,
        _topic: &str,
        params: Payload,
        socket: &mut ChannelSocket,
    ) -> JoinResult {
        if self.rule.presence {
            let from_join = match &params {
                Payload::Json(Value::Object(map)) => map
                    .get("user")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty()),
                _ => None,
            };
            let key = from_join
                .or(socket.assign_str("user"))
                .unwrap_or("anonymous")
                .to_owned();
            if socket.send_info(AfterJoin { key }).is_err() {
                return JoinResult::Error(Payload::Json(json!({"reason": "busy"})));
            }
        }
        JoinResult::Ok(Payload::empty())
    }

    async fn handle_info(&mut self, info: Info, socket: &mut ChannelSocket) -> HandleResult {
        let Ok(AfterJoin { key }) = info.downcast::<AfterJoin>() else {
            return HandleResult::NoReply;
        };
        let Some(presence) = socket.presence() else {
            return HandleResult::NoReply;
        };
        let online_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut meta = serde_json::Map::new();
        meta.insert("online_at".into(), json!(online_at));
        if let Err(error) = presence.track(&key, meta) {
            tracing::warn!(%error, key, "presence track failed");
        }
        let list = presence.list();
        if let Err(error) = socket.push("presence_state", list) {
            tracing::warn!(%error, "presence_state not pushed");
        }
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        if self.rule.relay.iter().any(|e| e == event) {
            socket.broadcast_from(event, payload);
            HandleResult::Reply(Reply::ok_empty())
        } else {
            HandleResult::Reply(Reply::error(json!({"reason": "unknown event"})))
        }
    }
}
