//! The Redis engine: an [`Adapter`] that carries broadcasts between nodes
//! over one Redis pub/sub channel (Redis >= 6, RESP3).
//!
//! A broadcast is encoded for the wire once ([`wire`]: phoenix_pubsub_redis's
//! format, so Phoenix nodes can share the channel) and queued for the
//! writer task, which publishes what is queued in one pipelined round trip.
//! One connection manager (the `redis` crate's: reconnects with back-off,
//! resubscribes after a reconnect) carries publishes and the subscription;
//! its pushes go through a bounded queue to the reader task, which drops
//! garbage with a log line, ignores this node's own echoes and delivers
//! the rest on this node only. While Redis is unreachable, local clients
//! are served as usual; what cannot be published is logged and counted in
//! [`ClusterStats`], never claimed delivered.

pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fawkes_protocol::Broadcast;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::{Adapter, LocalNode, PubSub};

/// The PubSub name fawkes-only clusters use (the Redis channel is
/// `phx:Elixir.Fawkes.PubSub.Adapter`).
pub const DEFAULT_PUBSUB_NAME: &str = "Fawkes.PubSub";

/// Broadcasts waiting to be published; past this, new ones are dropped
/// and counted.
const PUBLISH_QUEUE: usize = 4096;
/// Messages read from Redis waiting to be delivered; past this, new ones
/// are dropped and counted (a node that falls behind keeps bounded memory).
const RECEIVE_QUEUE: usize = 4096;
/// Most broadcasts published in one pipelined round trip.
const PUBLISH_BATCH: usize = 256;
/// How often the connection is checked (a failed check reconnects it).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Longest wait for Redis to answer one command or one connection attempt.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between two attempts to connect.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How to join a cluster over Redis.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// `redis://host:port/db`.
    pub url: String,
    /// This node's name, unique in the cluster.
    pub node_name: String,
    /// The PubSub name (the channel is `phx:Elixir.<name>.Adapter`): the
    /// Elixir app's PubSub module (e.g. `MyApp.PubSub`) to join its nodes.
    pub pubsub_name: String,
    /// zlib level 1..=9 for what this node publishes (`None` or 0:
    /// uncompressed, phoenix_pubsub_redis's default).
    pub compression: Option<u32>,
}

impl RedisOptions {
    /// Options for `url`, with `node_name` and the default PubSub name.
    pub fn new(url: impl Into<String>, node_name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_name: node_name.into(),
            pubsub_name: DEFAULT_PUBSUB_NAME.to_owned(),
            compression: None,
        }
    }
}

/// Why the Redis engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("invalid redis url: {0}")]
    Url(#[source] redis::RedisError),
    /// The node name is empty or longer than an Erlang atom allows.
    #[error("the node name must have 1 to 255 bytes")]
    NodeName,
    /// The PubSub name is not an Elixir module name.
    #[error("{0}")]
    PubSubName(#[from] wire::PubSubNameError),
    /// The compression level is not 0..=9.
    #[error("compression level {0} is not in 0..=9")]
    Compression(u32),
}

/// What the engine did, readable while it runs.
#[derive(Debug, Default)]
pub struct ClusterStats {
    published: AtomicU64,
    publish_failed: AtomicU64,
    received: AtomicU64,
    own_echoes: AtomicU64,
    garbage: AtomicU64,
    no_json_form: AtomicU64,
    receive_dropped: AtomicU64,
    connected: AtomicBool,
}

/// A copy of [`ClusterStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Broadcasts Redis accepted for the other nodes.
    pub published: u64,
    /// Broadcasts not published (Redis unreachable, error, or the queue
    /// full): the other nodes did not get them.
    pub publish_failed: u64,
    /// Broadcasts from other nodes delivered on this node.
    pub received: u64,
    /// This node's own broadcasts read back from Redis, and direct
    /// broadcasts for other nodes (ignored).
    pub own_echoes: u64,
    /// Messages on the channel that were not broadcasts for fawkes
    /// (garbage, other versions, Phoenix.Tracker traffic): dropped.
    pub garbage: u64,
    /// Broadcasts from other nodes dropped because their payload holds a
    /// term with no JSON form (pid, reference, port, fun, tuple other than
    /// `{:binary, bytes}`, non-UTF-8 binary...): each is logged as a warning.
    pub no_json_form: u64,
    /// Messages dropped because this node fell behind reading them.
    pub receive_dropped: u64,
    /// Whether the last check of the connection succeeded.
    pub connected: bool,
}

impl ClusterStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            published: get(&self.published),
            publish_failed: get(&self.publish_failed),
            received: get(&self.received),
            own_echoes: get(&self.own_echoes),
            garbage: get(&self.garbage),
            no_json_form: get(&self.no_json_form),
            receive_dropped: get(&self.receive_dropped),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A pubsub joined to a Redis cluster, and the engine's counters.
#[derive(Clone, Debug)]
pub struct RedisCluster {
    /// The node's pubsub: hand it to the endpoint builder.
    pub pubsub: PubSub,
    /// The engine's counters.
    pub stats: Arc<ClusterStats>,
}

/// Start the engine (needs a tokio runtime) and return the node's pubsub.
/// Never waits for Redis: a node whose Redis is down serves its local
/// clients and keeps trying to connect.
pub fn start(options: RedisOptions) -> Result<RedisCluster, ClusterError> {
    if options.node_name.is_empty() || options.node_name.len() > wire::MAX_NODE_NAME {
        return Err(ClusterError::NodeName);
    }
    wire::check_pubsub_name(&options.pubsub_name)?;
    let encoding = wire::encode_options(options.compression)
        .ok_or(ClusterError::Compression(options.compression.unwrap_or(0)))?;
    let mut info = options
        .url
        .as_str()
        .into_connection_info()
        .map_err(ClusterError::Url)?;
    // Pushes (the subscription's messages) need RESP3.
    info.redis.protocol = ProtocolVersion::RESP3;
    let client = redis::Client::open(info).map_err(ClusterError::Url)?;
    let stats = Arc::new(ClusterStats::default());
    let node: Arc<str> = options.node_name.into();
    let channel = wire::channel_name(&options.pubsub_name);
    let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
    let pubsub = PubSub::with_adapter(|local| {
        let (push_tx, push_rx) = mpsc::channel(RECEIVE_QUEUE);
        tokio::spawn(read(push_rx, local, node.clone(), stats.clone()));
        let writer = Writer {
            client,
            channel: channel.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(writer.run(publish_rx, push_tx));
        RedisAdapter {
            node: node.clone(),
            encoding,
            queue: publish_tx,
            stats: stats.clone(),
        }
    });
    tracing::info!(node = %node, channel = %channel, "cluster over redis");
    Ok(RedisCluster { pubsub, stats })
}

/// The adapter half that runs on the broadcasting task.
struct RedisAdapter {
    node: Arc<str>,
    encoding: fawkes_etf::EncodeOptions,
    queue: mpsc::Sender<Vec<u8>>,
    stats: Arc<ClusterStats>,
}

impl Adapter for RedisAdapter {
    fn publish(&self, broadcast: &Broadcast) {
        let bytes = match wire::encode_with(&self.node, broadcast, &self.encoding) {
            Ok(bytes) => bytes,
            Err(error) => {
                ClusterStats::add(&self.stats.publish_failed, 1);
                tracing::warn!(topic = %broadcast.topic, %error, "broadcast not encodable for other nodes");
                return;
            }
        };
        if self.queue.try_send(bytes).is_err() {
            ClusterStats::add(&self.stats.publish_failed, 1);
            tracing::warn!(topic = %broadcast.topic, "cluster publish queue full: broadcast not sent to other nodes");
        }
    }
}

/// Owns the connection: connects, subscribes, checks it, publishes.
struct Writer {
    client: redis::Client,
    channel: String,
    stats: Arc<ClusterStats>,
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<Vec<u8>>, pushes: mpsc::Sender<PushInfo>) {
        let mut conn = tokio::select! {
            conn = self.connect(pushes) => conn,
            // The node went away before Redis came up.
            () = drain_failed(&mut queue, &self.stats) => return,
        };
        let mut subscribed = self.subscribe(&mut conn).await;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        loop {
            tokio::select! {
                n = queue.recv_many(&mut batch, PUBLISH_BATCH) => {
                    if n == 0 {
                        return;
                    }
                    self.publish(&mut conn, &mut batch).await;
                }
                _ = heartbeat.tick() => {
                    let alive = redis::cmd("PING").query_async::<()>(&mut conn).await.is_ok();
                    self.set_connected(alive);
                    if alive && !subscribed {
                        subscribed = self.subscribe(&mut conn).await;
                    }
                }
            }
        }
    }

    /// Connect, retrying with back-off until Redis answers.
    async fn connect(&self, pushes: mpsc::Sender<PushInfo>) -> ConnectionManager {
        let stats = self.stats.clone();
        let config = ConnectionManagerConfig::new()
            .set_automatic_resubscription()
            .set_push_sender(move |info: PushInfo| {
                if matches!(info.kind, PushKind::Message) && pushes.try_send(info).is_err() {
                    ClusterStats::add(&stats.receive_dropped, 1);
                }
                Ok::<(), redis::aio::SendError>(())
            })
            .set_factor(50)
            .set_exponent_base(2)
            .set_number_of_retries(4)
            .set_max_delay(MAX_BACKOFF.as_millis() as u64)
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT);
        let mut backoff = Duration::from_millis(50);
        loop {
            match ConnectionManager::new_with_config(self.client.clone(), config.clone()).await {
                Ok(conn) => return conn,
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot reach redis");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn subscribe(&self, conn: &mut ConnectionManager) -> bool {
        match conn.subscribe(&self.channel).await {
            Ok(()) => {
                self.set_connected(true);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to the cluster channel yet");
                false
            }
        }
    }

    /// Publish `batch` in one round trip, counting what Redis did not take.
    async fn publish(&self, conn: &mut ConnectionManager, batch: &mut Vec<Vec<u8>>) {
        let n = batch.len() as u64;
        let mut pipe = redis::pipe();
        for bytes in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(&self.channel).arg(bytes).ignore();
        }
        match pipe.query_async::<()>(conn).await {
            Ok(()) => ClusterStats::add(&self.stats.published, n),
            Err(error) => {
                ClusterStats::add(&self.stats.publish_failed, n);
                self.set_connected(false);
                tracing::warn!(%error, lost = n, "cluster publish failed: broadcasts not sent to other nodes");
            }
        }
    }

    fn set_connected(&self, now: bool) {
        let before = self.stats.connected.swap(now, Ordering::Relaxed);
        if before != now {
            if now {
                tracing::info!("connected to redis");
            } else {
                tracing::warn!("lost redis; serving local clients, reconnecting");
            }
        }
    }
}

/// Count every queued broadcast as failed until the queue closes.
async fn drain_failed(queue: &mut mpsc::Receiver<Vec<u8>>, stats: &ClusterStats) {
    while queue.recv().await.is_some() {
        ClusterStats::add(&stats.publish_failed, 1);
    }
}

/// Deliver what other nodes publish, on this node only.
async fn read(
    mut pushes: mpsc::Receiver<PushInfo>,
    local: LocalNode,
    node: Arc<str>,
    stats: Arc<ClusterStats>,
) {
    while let Some(push) = pushes.recv().await {
        let Some(Value::BulkString(bytes)) = push.data.get(1) else {
            ClusterStats::add(&stats.garbage, 1);
            tracing::warn!("dropping a cluster message that is not a string");
            continue;
        };
        let broadcast = match wire::decode(bytes, &node) {
            Ok(wire::Incoming::Broadcast(broadcast)) => broadcast,
            Ok(wire::Incoming::NotForUs) => {
                ClusterStats::add(&stats.own_echoes, 1);
                continue;
            }
            Err(error @ wire::Rejected::NoJsonForm { .. }) => {
                ClusterStats::add(&stats.no_json_form, 1);
                tracing::warn!(%error, "dropping a broadcast from another node");
                continue;
            }
            Err(error) => {
                ClusterStats::add(&stats.garbage, 1);
                if error.is_quiet() {
                    tracing::debug!(%error, "skipping a cluster message");
                } else {
                    tracing::warn!(%error, len = bytes.len(), "dropping an undecodable cluster message");
                }
                continue;
            }
        };
        if !local.dispatch(&broadcast) {
            return;
        }
        ClusterStats::add(&stats.received, 1);
    }
}

/// A node name unlikely to collide: `fawkes-<random hex>`.
pub fn random_node_name() -> String {
    let mut bytes = [0u8; 6];
    // Without entropy the name still works, it is only less unique.
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("fawkes-{hex}")
}
