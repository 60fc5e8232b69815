//! The default application: config-driven topics whose clients' events are
//! relayed to each other, with presence, plus the chat page and the
//! broadcast API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fawkes::endpoint::{handle_broadcast, HttpRequest};
use fawkes::metrics::Counters;
use fawkes::presence::replication::Replication;
use fawkes::presence::PresenceOptions;
use fawkes::socket::CheckOrigin;
use fawkes::{ConnectInfo, Endpoint, PubSub, Socket};

use crate::api::{ApiConfigError, ApiGuard, SECRET_ENV};
use crate::auth::{Auth, AuthConfigError, SECRET_KEY_BASE_ENV};
use crate::config::Config;
use crate::connect::SocketGate;
use crate::dashboard::Dashboard;
use crate::relay::{RelayChannel, TopicApp};
use crate::webhook::{self, SocketHooks, WebhookConfigError};

/// Why the configured application cannot start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartupError {
    /// `[api]` is unusable.
    #[error(transparent)]
    Api(#[from] ApiConfigError),
    /// A `[socket.auth]` section is unusable.
    #[error("socket {socket}: {source}")]
    Auth {
        /// The socket's path.
        socket: String,
        /// What is wrong.
        source: AuthConfigError,
    },
    /// `[dashboard]` is unusable.
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::AccessError),
    /// `[metrics]` is unusable.
    #[error(transparent)]
    Metrics(#[from] crate::operations::MetricsConfigError),
    /// A `webhook` section is unusable.
    #[error("socket {socket}: {source}")]
    Webhook {
        /// The socket's path.
        socket: String,
        /// What is wrong.
        source: WebhookConfigError,
    },
}
use crate::static_files::StaticFiles;

/// Build the endpoint from `config` and serve until Ctrl-C or SIGTERM.
pub(crate) async fn serve(config: Config) -> Result<(), ServeError> {
    let addr = config.server.addr();
    let api =
        ApiGuard::new(&config.api, std::env::var(SECRET_ENV).ok()).map_err(StartupError::from)?;
    let listener =
        fawkes::endpoint::bind(addr).map_err(|source| ServeError::Listen { addr, source })?;
    if let Some(secret) = &config.cluster.secret_key_base {
        fawkes::endpoint::share_longpoll_secret(secret);
    } else if config.cluster.redis_url.is_some() {
        tracing::warn!(
            "no [cluster] secret_key_base: a longpoll client must keep reaching the same node"
        );
    }
    let mut redis_stats = None;
    let mut node_name = None;
    let (pubsub, cluster) = match config.cluster.options() {
        Some((redis, replication)) => {
            node_name = Some(redis.node_name.clone());
            let cluster = fawkes::pubsub::redis::start(redis).map_err(ServeError::Cluster)?;
            redis_stats = Some(cluster.stats);
            (cluster.pubsub, Some((cluster.gossip, replication)))
        }
        None => (PubSub::new(), None),
    };
    let counters = pubsub.counters().clone();
    let (endpoint, dashboard) = endpoint(&config, api, pubsub, redis_stats, node_name)?;
    // Presence is one replica of the cluster's: started before anything
    // is tracked, and it leaves the cluster when the node shuts down.
    let replication = match (cluster, endpoint.presence()) {
        (Some((link, options)), Some(presence)) => {
            tracing::info!(
                broadcast_period = ?options.broadcast_period,
                down_period = ?options.down_period,
                "presence replicated across the cluster"
            );
            let replication = Replication::over_redis(presence, options, &link)
                .map_err(ServeError::Replication)?;
            if let Some(dashboard) = &dashboard {
                dashboard.attach_replication(&replication);
            }
            Some((replication, link))
        }
        _ => None,
    };
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
    if let Some((replication, _)) = &replication {
        tokio::spawn(report_peers(replication.clone(), counters));
    }
    let leaving = replication
        .as_ref()
        .map(|(replication, _)| replication.clone());
    let shutdown = async move {
        fawkes::endpoint::shutdown_signal().await;
        // The others drop this node's presences now, not after down_period.
        if let Some(replication) = leaving {
            replication.leave();
        }
    };
    let served = endpoint.serve(listener, shutdown).await;
    if let Some((_, link)) = replication {
        if !link.flush(LEAVE_FLUSH).await {
            tracing::warn!("the cluster may not have heard this node leave");
        }
    }
    served.map_err(ServeError::Serve)
}

/// Every second, the cluster gauges of `/metrics`: peer nodes up, and the
/// gossip lag (how long the stalest up peer has been silent).
async fn report_peers(replication: Replication, counters: Arc<Counters>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let peers = replication.peer_states();
        let up = peers.iter().filter(|p| p.up);
        let lag = up.clone().map(|p| p.silent_for).max().unwrap_or_default();
        counters.cluster.set_peer_nodes_up(up.count());
        counters
            .cluster
            .set_gossip_lag_ms(u64::try_from(lag.as_millis()).unwrap_or(u64::MAX));
    }
}

/// Longest wait, at shutdown, for the goodbye to reach Redis.
const LEAVE_FLUSH: Duration = Duration::from_secs(2);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The address could not be bound (busy port, no permission, unknown address).
    #[error("cannot listen on {addr}: {source}{hint}", hint = listen_hint(source))]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The configuration cannot be served (secrets, webhooks).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The `[cluster]` settings are not usable.
    #[error("cannot join the cluster: {0}")]
    Cluster(fawkes::pubsub::redis::ClusterError),
    /// The `[cluster]` periods are not usable.
    #[error("cannot replicate presence: {0}")]
    Replication(fawkes::presence::replication::ReplicationError),
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
pub(crate) fn endpoint(
    config: &Config,
    api: ApiGuard,
    pubsub: PubSub,
    redis_stats: Option<Arc<fawkes::pubsub::redis::ClusterStats>>,
    node_name: Option<String>,
) -> Result<(Endpoint, Option<Arc<Dashboard>>), StartupError> {
    if api.is_enabled() {
        tracing::info!("POST /api/broadcast is on (bearer secret required)");
    } else {
        tracing::info!(
            "POST /api/broadcast is off: set [api] broadcast_secret or {SECRET_ENV} to enable it"
        );
    }
    let metrics = config
        .metrics
        .options(std::env::var(crate::operations::METRICS_SECRET_ENV).ok())?;
    if metrics.enabled {
        let guarded = if metrics.secret.is_some() {
            " (bearer secret required)"
        } else {
            ""
        };
        tracing::info!("GET /metrics is on{guarded}");
    }
    let mut builder = Endpoint::builder()
        .pubsub_instance(pubsub)
        .metrics(metrics)
        .drain(config.drain.options())
        .presence(PresenceOptions {
            batch_window: Duration::from_millis(config.presence.batch_window_ms),
        })
        .http_limits(config.limits.http_limits());
    for socket_config in &config.sockets {
        if socket_config.options().check_origin == CheckOrigin::Any {
            tracing::warn!(
                socket = %socket_config.path,
                "check_origin is off: any web page can open this socket in its visitors' browsers"
            );
        }
        let webhook_error = |source| StartupError::Webhook {
            socket: socket_config.path.clone(),
            source,
        };
        let env_secret = std::env::var(webhook::SECRET_ENV).ok();
        let hooks = socket_config
            .webhook
            .as_ref()
            .map(|config| SocketHooks::new(config, env_secret.as_deref()))
            .transpose()
            .map_err(webhook_error)?;
        let env_key_base = std::env::var(SECRET_KEY_BASE_ENV).ok();
        let auth = socket_config
            .auth
            .as_ref()
            .map(|config| Auth::new(config, env_key_base.as_deref()))
            .transpose()
            .map_err(|source| StartupError::Auth {
                socket: socket_config.path.clone(),
                source,
            })?;
        let gate = Arc::new(SocketGate {
            path: socket_config.path.clone(),
            auth,
            hooks: hooks.clone(),
        });
        let mut socket = Socket::new()
            .connect(move |info: ConnectInfo| {
                let gate = gate.clone();
                async move { gate.connect(info).await }
            })
            .options(socket_config.options());
        for rule in &socket_config.topics {
            let topic_hooks = match (&rule.webhook, &hooks) {
                (None, _) => None,
                (Some(config), Some(hooks)) => {
                    Some(hooks.topic(&rule.pattern, config).map_err(webhook_error)?)
                }
                (Some(_), None) => return Err(webhook_error(webhook::orphan_topic(&rule.pattern))),
            };
            let topic = Arc::new(TopicApp {
                rule: rule.clone(),
                hooks: topic_hooks,
            });
            socket = socket.channel(rule.pattern.clone(), move || RelayChannel {
                topic: topic.clone(),
            });
        }
        builder = builder.socket(socket_config.path.clone(), socket);
    }
    let dashboard = Dashboard::new(
        &config.dashboard,
        std::env::var(crate::dashboard::SECRET_ENV).ok(),
        builder.pubsub(),
        redis_stats.clone(),
        node_name,
    )?
    .map(Arc::new);
    match &dashboard {
        Some(dashboard) => {
            tracing::info!("GET /dashboard is on (user admin, the [dashboard] secret)");
            builder = builder.socket(crate::dashboard::SOCKET_PATH, dashboard.socket());
        }
        None => tracing::info!(
            "GET /dashboard is off: set [dashboard] secret or {} to enable it",
            crate::dashboard::SECRET_ENV
        ),
    }
    if let Some(stats) = redis_stats {
        builder = builder.redis_stats(stats);
    }
    let pubsub = builder.pubsub().clone();
    let static_dir = &config.server.static_dir;
    let files = Arc::new(
        (!static_dir.as_os_str().is_empty()).then(|| StaticFiles::new(static_dir.clone())),
    );
    let page = dashboard.clone();
    let endpoint = builder
        .handler(move |req: HttpRequest| {
            let pubsub = pubsub.clone();
            let files = files.clone();
            let api = api.clone();
            let dashboard = page.clone();
            async move {
                if let Some(answer) = dashboard.as_ref().and_then(|d| d.answer(&req)) {
                    answer
                } else if req.uri().path() == "/api/broadcast" {
                    if let Some(refused) = api.refuse(&req) {
                        return refused;
                    }
                    handle_broadcast(&pubsub, req).await
                } else if let Some(files) = files.as_ref() {
                    files.serve(&req).await
                } else {
                    crate::static_files::not_found()
                }
            }
        })
        .build();
    if let Some(dashboard) = &dashboard {
        dashboard.attach(endpoint.presence());
    }
    Ok((endpoint, dashboard))
}
