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
//! [`ClusterStats`], never claimed delivered. Presence gossip travels on
//! channels of its own ([`gossip`]), through the same connection.

mod budget;
pub mod gossip;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fawkes_protocol::Broadcast;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use budget::{ByteBudget, Queued};
use gossip::{GossipLink, Outbound, ResyncDue};

use super::{Adapter, LocalNode, PubSub};

/// The PubSub name fawkes-only clusters use (the Redis channel is
/// `phx:Elixir.Fawkes.PubSub.Adapter`).
pub const DEFAULT_PUBSUB_NAME: &str = "Fawkes.PubSub";

/// Broadcasts waiting to be published; past this, new ones are dropped
/// and counted.
const PUBLISH_QUEUE: usize = 4096;
/// Bytes of broadcasts waiting to be published; past this, new ones are
/// dropped and counted.
const PUBLISH_BYTES: usize = 64 << 20;
/// Messages read from Redis waiting to be delivered; past this, new ones
/// are dropped and counted (a node that falls behind keeps bounded memory).
const RECEIVE_QUEUE: usize = 4096;
/// Bytes of broadcasts read from Redis waiting to be dispatched; past
/// this, new ones are dropped and counted.
const RECEIVE_BYTES: usize = 64 << 20;
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
    gossip_sent: AtomicU64,
    gossip_send_failed: AtomicU64,
    gossip_received: AtomicU64,
    gossip_garbage: AtomicU64,
    gossip_dropped: AtomicU64,
    resyncs: AtomicU64,
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
    /// Gossip messages Redis accepted.
    pub gossip_sent: u64,
    /// Gossip messages not sent (queue full, Redis unreachable).
    pub gossip_send_failed: u64,
    /// Gossip messages from other nodes handled.
    pub gossip_received: u64,
    /// Bytes on the gossip channels that were not a valid message: dropped.
    pub gossip_garbage: u64,
    /// Gossip messages dropped because this node fell behind reading them
    /// (each overflow makes a resync due).
    pub gossip_dropped: u64,
    /// Resyncs started (after a reconnection or an overflow).
    pub resyncs: u64,
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
            gossip_sent: get(&self.gossip_sent),
            gossip_send_failed: get(&self.gossip_send_failed),
            gossip_received: get(&self.gossip_received),
            gossip_garbage: get(&self.gossip_garbage),
            gossip_dropped: get(&self.gossip_dropped),
            resyncs: get(&self.resyncs),
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
    /// The channels for presence gossip between the nodes.
    pub gossip: GossipLink,
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
    let (gossip_tx, gossip_rx) = mpsc::channel(gossip::SEND_QUEUE);
    let (gossip_in_tx, gossip_in_rx) = mpsc::channel(gossip::RECEIVE_QUEUE);
    let resync = Arc::new(ResyncDue::default());
    let link = GossipLink::new(
        node.clone(),
        &options.pubsub_name,
        (gossip_tx, ByteBudget::new(gossip::SEND_BYTES)),
        gossip_in_rx,
        resync.clone(),
        stats.clone(),
    );
    let channels = Channels {
        broadcast: channel.clone(),
        gossip: vec![
            gossip::broadcast_channel(&options.pubsub_name),
            gossip::node_channel(&options.pubsub_name, &node),
        ],
    };
    let pubsub = PubSub::with_adapter(|local| {
        let (push_tx, push_rx) = mpsc::channel(RECEIVE_QUEUE);
        tokio::spawn(read(push_rx, local, node.clone(), stats.clone()));
        let writer = Writer {
            client,
            channels,
            stats: stats.clone(),
            resync,
        };
        let queues = Queues {
            broadcasts: publish_rx,
            gossip: gossip_rx,
        };
        let incoming = Incoming {
            pushes: push_tx,
            push_bytes: ByteBudget::new(RECEIVE_BYTES),
            gossip: gossip_in_tx,
            gossip_bytes: ByteBudget::new(gossip::RECEIVE_BYTES),
        };
        tokio::spawn(writer.run(queues, incoming));
        RedisAdapter {
            node: node.clone(),
            encoding,
            queue: publish_tx,
            budget: ByteBudget::new(PUBLISH_BYTES),
            stats: stats.clone(),
        }
    });
    tracing::info!(node = %node, channel = %channel, "cluster over redis");
    Ok(RedisCluster {
        pubsub,
        stats,
        gossip: link,
    })
}

/// The Redis channels a node publishes on and listens to.
struct Channels {
    /// phoenix_pubsub_redis's broadcast channel.
    broadcast: String,
    /// The gossip channels: every node's, then this node's own.
    gossip: Vec<String>,
}

/// What the writer publishes.
struct Queues {
    broadcasts: mpsc::Receiver<Queued<Vec<u8>>>,
    gossip: mpsc::Receiver<Outbound>,
}

/// Where what is read from Redis goes: broadcasts to the reader that
/// dispatches them, gossip to the presence replication; each queue bounded
/// by count and by bytes.
#[derive(Clone)]
struct Incoming {
    pushes: mpsc::Sender<Queued<PushInfo>>,
    push_bytes: Arc<ByteBudget>,
    gossip: mpsc::Sender<Queued<Vec<u8>>>,
    gossip_bytes: Arc<ByteBudget>,
}

/// The adapter half that runs on the broadcasting task.
struct RedisAdapter {
    node: Arc<str>,
    encoding: fawkes_etf::EncodeOptions,
    queue: mpsc::Sender<Queued<Vec<u8>>>,
    budget: Arc<ByteBudget>,
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
        let len = bytes.len();
        if !self.budget.try_send(&self.queue, len, |held| (bytes, held)) {
            ClusterStats::add(&self.stats.publish_failed, 1);
            tracing::warn!(topic = %broadcast.topic, "cluster publish queue full: broadcast not sent to other nodes");
        }
    }
}

/// Owns the connection: connects, subscribes, checks it, publishes.
struct Writer {
    client: redis::Client,
    channels: Channels,
    stats: Arc<ClusterStats>,
    resync: Arc<ResyncDue>,
}

impl Writer {
    async fn run(self, mut queues: Queues, incoming: Incoming) {
        let mut conn = tokio::select! {
            conn = self.connect(incoming) => conn,
            // The node went away before Redis came up.
            () = drain_failed(&mut queues.broadcasts, &self.stats) => return,
        };
        let mut subscribed = self.subscribe(&mut conn).await;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        let mut gossip_batch = Vec::new();
        let mut gossip_open = true;
        loop {
            tokio::select! {
                // Gossip first: a flood of broadcasts must not delay the
                // heartbeats that keep this node up on the others.
                biased;
                n = queues.gossip.recv_many(&mut gossip_batch, PUBLISH_BATCH), if gossip_open => {
                    if n == 0 {
                        gossip_open = false;
                        continue;
                    }
                    self.publish_gossip(&mut conn, &mut gossip_batch).await;
                }
                n = queues.broadcasts.recv_many(&mut batch, PUBLISH_BATCH) => {
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
                    if alive && subscribed {
                        self.resync.connected();
                    }
                }
            }
        }
    }

    /// Connect, retrying with back-off until Redis answers.
    async fn connect(&self, incoming: Incoming) -> ConnectionManager {
        let stats = self.stats.clone();
        let resync = self.resync.clone();
        let broadcast: Arc<str> = self.channels.broadcast.as_str().into();
        let config = ConnectionManagerConfig::new()
            .set_automatic_resubscription()
            .set_push_sender(move |info: PushInfo| {
                match info.kind {
                    PushKind::Message => route(info, &broadcast, &incoming, &stats, &resync),
                    // Whatever was published meanwhile is lost to us.
                    PushKind::Disconnection => resync.mark(),
                    _ => {}
                }
                Ok::<(), redis::aio::SendError>(())
            })
            // One retry, after redis 0.32's fixed first delay (1 s plus
            // jitter; factor and maximum only shape later ones): a command
            // waits on a reconnect 1–2 s at most, then fails and is
            // counted, and the writer's next command (at worst the next
            // heartbeat) starts a fresh reconnect.
            .set_number_of_retries(1)
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
        let mut channels = vec![self.channels.broadcast.clone()];
        channels.extend(self.channels.gossip.iter().cloned());
        match conn.subscribe(channels).await {
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
    async fn publish(&self, conn: &mut ConnectionManager, batch: &mut Vec<Queued<Vec<u8>>>) {
        let n = batch.len() as u64;
        let mut pipe = redis::pipe();
        // The bytes are copied into the pipeline: each goes back to the
        // budget as it is.
        for (bytes, _held) in batch.drain(..) {
            pipe.cmd("PUBLISH")
                .arg(&self.channels.broadcast)
                .arg(bytes)
                .ignore();
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

    /// Publish queued gossip in one round trip, then answer the flushes
    /// that were queued behind it.
    async fn publish_gossip(&self, conn: &mut ConnectionManager, batch: &mut Vec<Outbound>) {
        let mut pipe = redis::pipe();
        let mut n = 0;
        let mut flushed = Vec::new();
        for item in batch.drain(..) {
            match item {
                Outbound::Publish { channel, bytes, .. } => {
                    pipe.cmd("PUBLISH").arg(&*channel).arg(&bytes[..]).ignore();
                    n += 1;
                }
                Outbound::Flush(done) => flushed.push(done),
            }
        }
        if n > 0 {
            match pipe.query_async::<()>(conn).await {
                Ok(()) => ClusterStats::add(&self.stats.gossip_sent, n),
                Err(error) => {
                    ClusterStats::add(&self.stats.gossip_send_failed, n);
                    self.set_connected(false);
                    tracing::warn!(%error, lost = n, "cluster gossip not sent");
                }
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }

    fn set_connected(&self, now: bool) {
        let before = self.stats.connected.swap(now, Ordering::Relaxed);
        if before != now {
            if now {
                tracing::info!("connected to redis");
            } else {
                self.resync.mark();
                tracing::warn!("lost redis; serving local clients, reconnecting");
            }
        }
    }
}

/// Sends a message read from Redis to the broadcast reader or, when it came
/// on a gossip channel, to the gossip reader. A full queue (by count or by
/// bytes) drops it and counts it; a dropped gossip message makes a resync
/// due.
fn route(
    info: PushInfo,
    broadcast: &str,
    incoming: &Incoming,
    stats: &ClusterStats,
    resync: &ResyncDue,
) {
    let on_broadcast =
        matches!(info.data.first(), Some(Value::BulkString(c)) if c == broadcast.as_bytes());
    if on_broadcast {
        let len = match info.data.get(1) {
            Some(Value::BulkString(bytes)) => bytes.len(),
            _ => 0,
        };
        if !incoming
            .push_bytes
            .try_send(&incoming.pushes, len, |held| (info, held))
        {
            ClusterStats::add(&stats.receive_dropped, 1);
        }
        return;
    }
    let Some(Value::BulkString(bytes)) = info.data.into_iter().nth(1) else {
        ClusterStats::add(&stats.gossip_garbage, 1);
        tracing::warn!("dropping cluster gossip that is not a string");
        return;
    };
    let len = bytes.len();
    if !incoming
        .gossip_bytes
        .try_send(&incoming.gossip, len, |held| (bytes, held))
    {
        ClusterStats::add(&stats.gossip_dropped, 1);
        resync.mark();
    }
}

/// Count every queued broadcast as failed until the queue closes.
async fn drain_failed(queue: &mut mpsc::Receiver<Queued<Vec<u8>>>, stats: &ClusterStats) {
    while queue.recv().await.is_some() {
        ClusterStats::add(&stats.publish_failed, 1);
    }
}

/// Deliver what other nodes publish, on this node only.
async fn read(
    mut pushes: mpsc::Receiver<Queued<PushInfo>>,
    local: LocalNode,
    node: Arc<str>,
    stats: Arc<ClusterStats>,
) {
    // `_held` goes back to the budget once the broadcast is dispatched.
    while let Some((push, _held)) = pushes.recv().await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel: &str, bytes: &[u8]) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![
                Value::BulkString(channel.as_bytes().to_vec()),
                Value::BulkString(bytes.to_vec()),
            ],
        }
    }

    /// Queues of `count` items and `bytes` bytes each way.
    fn incoming(
        count: usize,
        bytes: usize,
    ) -> (Incoming, mpsc::Receiver<Queued<PushInfo>>, gossip::GossipIn) {
        let (pushes, broadcasts) = mpsc::channel(count);
        let (gossip, gossip_rx) = mpsc::channel(count);
        let incoming = Incoming {
            pushes,
            push_bytes: ByteBudget::new(bytes),
            gossip,
            gossip_bytes: ByteBudget::new(bytes),
        };
        (incoming, broadcasts, gossip_rx)
    }

    #[test]
    fn messages_are_routed_by_channel_and_a_gossip_overflow_makes_a_resync_due() {
        let (incoming, mut broadcasts, mut gossip_rx) = incoming(1, 1 << 20);
        let stats = ClusterStats::default();
        let resync = ResyncDue::default();
        let to = |info| route(info, "phx:b", &incoming, &stats, &resync);
        to(message("phx:b", b"a broadcast"));
        to(message("fawkes:gossip:x", b"one"));
        assert!(!resync.is_due());
        to(message("fawkes:gossip:x", b"two"));
        assert_eq!(stats.snapshot().gossip_dropped, 1);
        assert_eq!(stats.snapshot().receive_dropped, 0);
        assert!(resync.is_due(), "a dropped gossip message is a gap");
        assert_eq!(
            gossip_rx.try_recv().ok().map(|(b, _)| b),
            Some(b"one".to_vec())
        );
        assert!(gossip_rx.try_recv().is_err());
        assert!(broadcasts.try_recv().is_ok());
        assert!(broadcasts.try_recv().is_err());
        resync.connected();
        assert!(!resync.is_due(), "started once Redis answers");
    }

    #[test]
    fn a_node_behind_on_reading_holds_at_most_its_byte_bound_and_resyncs() {
        // Room for 100 items by count, 1,000 bytes by size: the fourth
        // 300-byte message of each kind is dropped, counted, and a dropped
        // gossip message makes a resync due.
        let (incoming, mut broadcasts, mut gossip_rx) = incoming(100, 1000);
        let stats = ClusterStats::default();
        let resync = ResyncDue::default();
        let to = |info| route(info, "phx:b", &incoming, &stats, &resync);
        for _ in 0..4 {
            to(message("phx:b", &[0; 300]));
            to(message("fawkes:gossip:x", &[0; 300]));
        }
        assert_eq!(stats.snapshot().receive_dropped, 1);
        assert_eq!(stats.snapshot().gossip_dropped, 1);
        assert!(resync.is_due());
        assert_eq!(incoming.push_bytes.used(), 900);
        // Handled messages give their bytes back.
        let (_, held) = gossip_rx.try_recv().expect("queued gossip");
        drop(held);
        assert_eq!(incoming.gossip_bytes.used(), 600);
        to(message("fawkes:gossip:x", &[0; 300]));
        assert_eq!(stats.snapshot().gossip_dropped, 1, "room again");
        drop(broadcasts.try_recv());
        assert_eq!(incoming.push_bytes.used(), 600);
    }

    #[tokio::test]
    async fn broadcasts_past_the_publish_byte_bound_are_counted_as_not_sent() {
        let (queue, mut published) = mpsc::channel(100);
        let stats = Arc::new(ClusterStats::default());
        let encoding = wire::encode_options(None).expect("no compression");
        let big = Broadcast::new(
            "room:x",
            "msg",
            fawkes_protocol::Payload::Json(serde_json::json!({"body": "x".repeat(400)})),
        );
        let len = wire::encode_with("a", &big, &encoding)
            .expect("encodes")
            .len();
        // Room for two and a half of them: the third is refused.
        let adapter = RedisAdapter {
            node: "a".into(),
            encoding,
            queue,
            budget: ByteBudget::new(len * 5 / 2),
            stats: stats.clone(),
        };
        for _ in 0..3 {
            adapter.publish(&big);
        }
        assert_eq!(
            stats.snapshot().publish_failed,
            1,
            "the third is past the bound"
        );
        drop(published.recv().await);
        adapter.publish(&big);
        assert_eq!(
            stats.snapshot().publish_failed,
            1,
            "a published one made room"
        );
    }
}
