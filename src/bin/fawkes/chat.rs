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
    Payload, PubSub, Reply, Socket,
};
use serde_json::{json, Value};

use crate::config::{Config, TopicRule};
use crate::static_files::StaticFiles;

/// Build the endpoint from `config` and serve until Ctrl-C or SIGTERM.
pub(crate) async fn serve(config: Config) -> std::io::Result<()> {
    let addr = SocketAddr::new(config.server.bind, config.server.port);
    let listener = fawkes::endpoint::bind(addr)?;
    let pubsub = match config.cluster.redis_options() {
        Some(options) => {
            fawkes::pubsub::redis::start(options)
                .map_err(std::io::Error::other)?
                .pubsub
        }
        None => PubSub::new(),
    };
    let endpoint = endpoint(&config, pubsub);
    tracing::info!("fawkes listening on http://{}", listener.local_addr()?);
    endpoint.serve(listener, shutdown_signal()).await
}

/// The endpoint `config` describes.
pub(crate) fn endpoint(config: &Config, pubsub: PubSub) -> Endpoint {
    let mut builder = Endpoint::builder()
        .pubsub_instance(pubsub)
        .presence(PresenceOptions {
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
    let files = Arc::new(StaticFiles::new(config.server.static_dir.clone()));
    builder
        .handler(move |req: HttpRequest| {
            let pubsub = pubsub.clone();
            let files = files.clone();
            async move {
                if req.uri().path() == "/api/broadcast" {
                    handle_broadcast(&pubsub, req).await
                } else {
                    files.serve(&req).await
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
