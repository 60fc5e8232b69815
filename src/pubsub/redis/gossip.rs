//! Node-to-node messages of the Redis engine that are not broadcasts (the
//! presence replicas' gossip), on Redis channels of their own so that
//! phoenix_pubsub_redis listeners on the broadcast channel never see them.
//!
//! Every node subscribes to `fawkes:gossip:<PubSub>` (messages for every
//! node) and `fawkes:gossip:<PubSub>:<node>` (messages for it only). A
//! message is an envelope around opaque bytes: `b"FG"`, the envelope
//! version, the sender's name (one length byte, then the name), then the
//! bytes. The envelope lets a node skip its own echoes without looking
//! inside; decoding it never panics and allocates nothing.
//!
//! Outgoing messages are queued without waiting (bounded; full = dropped
//! and counted) for the engine's writer, which sends them before queued
//! broadcasts. Incoming ones wait in a bounded queue of their own, so a
//! flood of broadcasts never crowds out a heartbeat; when that queue
//! overflows, or after the connection to Redis came back, the receiver is
//! asked to resync (see [`GossipReceiver::resync`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Notify};

use super::budget::{ByteBudget, Held, Queued};
use super::{ClusterStats, StatsSnapshot};

/// First bytes of every envelope.
const MAGIC: &[u8; 2] = b"FG";
/// The envelope version this build writes and reads.
const VERSION: u8 = 1;
/// Gossip messages waiting to be sent; past this, new ones are dropped.
pub(super) const SEND_QUEUE: usize = 1024;
/// Gossip messages read from Redis waiting to be handled; past this, new
/// ones are dropped and a resync is due.
pub(super) const RECEIVE_QUEUE: usize = 1024;
/// Bytes of gossip waiting to be sent; past this, new messages are
/// dropped. Room for a full presence transfer (at most 64 MiB) and more.
pub(super) const SEND_BYTES: usize = 128 << 20;
/// Bytes of gossip read from Redis waiting to be handled; past this, new
/// messages are dropped and a resync is due.
pub(super) const RECEIVE_BYTES: usize = 128 << 20;

/// The channel every node's gossip goes to, for the PubSub named `pubsub`.
pub fn broadcast_channel(pubsub: &str) -> String {
    format!("fawkes:gossip:{pubsub}")
}

/// The channel of gossip for node `node` only.
pub fn node_channel(pubsub: &str, node: &str) -> String {
    format!("fawkes:gossip:{pubsub}:{node}")
}

/// Wraps `msg` from node `node` in an envelope. `node` is at most 255
/// bytes (the engine checks it at start).
pub fn encode(node: &str, msg: &[u8]) -> Bytes {
    let name = &node.as_bytes()[..node.len().min(u8::MAX as usize)];
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + name.len() + msg.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// Why bytes on a gossip channel are not an envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not a fawkes gossip envelope.
    #[error("not a gossip envelope")]
    NotGossip,
    /// An envelope version this build does not read.
    #[error("gossip envelope version {0} is not supported")]
    Version(u8),
    /// The sender's name is cut short or not UTF-8.
    #[error("gossip envelope with a malformed sender name")]
    Sender,
}

/// Splits an envelope into its sender's name and the message.
pub fn decode(bytes: &[u8]) -> Result<(&str, &[u8]), EnvelopeError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(EnvelopeError::NotGossip)?;
    let (&version, rest) = rest.split_first().ok_or(EnvelopeError::NotGossip)?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let (&len, rest) = rest.split_first().ok_or(EnvelopeError::Sender)?;
    let len = usize::from(len);
    if rest.len() < len || len == 0 {
        return Err(EnvelopeError::Sender);
    }
    let (name, msg) = rest.split_at(len);
    let name = std::str::from_utf8(name).map_err(|_| EnvelopeError::Sender)?;
    Ok((name, msg))
}

/// Whoever handles the gossip this node receives (the presence
/// replication).
pub trait GossipReceiver: Send + Sync + 'static {
    /// Handles one message from another node; `false` when the bytes are
    /// not a valid message (the engine counts it as garbage).
    fn receive(&self, msg: &[u8]) -> bool;

    /// Messages may have been lost (Redis came back after a disconnection,
    /// or this node fell behind and dropped some): ask the others for what
    /// is missing.
    fn resync(&self);
}

/// The queue of gossip read from Redis, for the gossip reader.
pub(super) type GossipIn = mpsc::Receiver<Queued<Vec<u8>>>;

/// What the writer is asked to do with the gossip queue.
pub(super) enum Outbound {
    /// Publish `bytes` on `channel`.
    Publish {
        /// The Redis channel.
        channel: Arc<str>,
        /// The envelope.
        bytes: Bytes,
        /// Its share of the send queue's byte bound (given back when the
        /// item is dropped, after publishing).
        _held: Held,
    },
    /// Answer once everything queued before has been handed to Redis.
    Flush(oneshot::Sender<()>),
}

/// A resync that is due once Redis answers again.
#[derive(Debug, Default)]
pub(super) struct ResyncDue {
    pending: AtomicBool,
    notify: Notify,
}

impl ResyncDue {
    /// Something may have been lost: resync once connected.
    pub(super) fn mark(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// Whether a resync is marked and not started yet.
    #[cfg(test)]
    pub(super) fn is_due(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Called when Redis answered: starts a marked resync.
    pub(super) fn connected(&self) {
        if self.pending.swap(false, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }
}

/// The engine's channels for gossip, for one node: send to every node or
/// to one, and attach the receiver of what the others send. Cheap to
/// clone.
#[derive(Clone)]
pub struct GossipLink {
    inner: Arc<LinkInner>,
}

struct LinkInner {
    node: Arc<str>,
    pubsub: String,
    everyone: Arc<str>,
    queue: mpsc::Sender<Outbound>,
    queue_bytes: Arc<ByteBudget>,
    incoming: Mutex<Option<GossipIn>>,
    resync: Arc<ResyncDue>,
    stats: Arc<ClusterStats>,
}

impl std::fmt::Debug for GossipLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipLink")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl GossipLink {
    pub(super) fn new(
        node: Arc<str>,
        pubsub: &str,
        (queue, queue_bytes): (mpsc::Sender<Outbound>, Arc<ByteBudget>),
        incoming: GossipIn,
        resync: Arc<ResyncDue>,
        stats: Arc<ClusterStats>,
    ) -> GossipLink {
        GossipLink {
            inner: Arc::new(LinkInner {
                node,
                pubsub: pubsub.to_owned(),
                everyone: broadcast_channel(pubsub).into(),
                queue,
                queue_bytes,
                incoming: Mutex::new(Some(incoming)),
                resync,
                stats,
            }),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Sends `msg` to every other node (never waits; dropped and counted
    /// when the queue is full).
    pub fn broadcast(&self, msg: &[u8]) {
        self.queue(self.inner.everyone.clone(), msg);
    }

    /// Sends `msg` to node `node` only.
    pub fn send_to(&self, node: &str, msg: &[u8]) {
        self.queue(node_channel(&self.inner.pubsub, node).into(), msg);
    }

    fn queue(&self, channel: Arc<str>, msg: &[u8]) {
        let bytes = encode(&self.inner.node, msg);
        let len = bytes.len();
        let queued = self
            .inner
            .queue_bytes
            .try_send(&self.inner.queue, len, |held| Outbound::Publish {
                channel,
                bytes,
                _held: held,
            });
        if !queued {
            ClusterStats::add(&self.inner.stats.gossip_send_failed, 1);
            tracing::warn!("cluster gossip queue full: message not sent");
        }
    }

    /// Waits (at most `within`) until every message queued so far has been
    /// handed to Redis; `false` if that did not happen in time. For a node
    /// that shuts down after its last word.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, flushed) = oneshot::channel();
        let queued = self.inner.queue.send(Outbound::Flush(done));
        tokio::time::timeout(within, async move {
            queued.await.is_ok() && flushed.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Hands what the other nodes send to `receiver`, from a task of the
    /// current runtime. Only the first receiver attached is used.
    pub fn attach(&self, receiver: Arc<dyn GossipReceiver>) {
        let incoming = self
            .inner
            .incoming
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(incoming) = incoming else {
            tracing::warn!("a gossip receiver is already attached");
            return;
        };
        tokio::spawn(read(
            incoming,
            receiver,
            self.inner.node.clone(),
            self.inner.resync.clone(),
            self.inner.stats.clone(),
        ));
    }

    /// The engine's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }
}

/// Hands incoming gossip to `receiver`: garbage is dropped with a log line
/// and counted, this node's own echoes are skipped, and a due resync is
/// started between two messages.
async fn read(
    mut incoming: GossipIn,
    receiver: Arc<dyn GossipReceiver>,
    node: Arc<str>,
    resync: Arc<ResyncDue>,
    stats: Arc<ClusterStats>,
) {
    loop {
        // `_held` goes back to the budget once the message is handled.
        let (bytes, _held) = tokio::select! {
            biased;
            () = resync.notify.notified() => {
                ClusterStats::add(&stats.resyncs, 1);
                tracing::info!("presence resync: messages may have been lost");
                receiver.resync();
                continue;
            }
            bytes = incoming.recv() => match bytes {
                Some(bytes) => bytes,
                None => return,
            },
        };
        match decode(&bytes) {
            Ok((from, _)) if from == &*node => ClusterStats::add(&stats.own_echoes, 1),
            Ok((_, msg)) => {
                if receiver.receive(msg) {
                    ClusterStats::add(&stats.gossip_received, 1);
                } else {
                    ClusterStats::add(&stats.gossip_garbage, 1);
                }
            }
            Err(error) => {
                ClusterStats::add(&stats.gossip_garbage, 1);
                tracing::warn!(%error, len = bytes.len(), "dropping undecodable cluster gossip");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_and_binary_is_kept() {
        let msg = [0u8, 255, b'P', 1, 0, 0xc3];
        let bytes = encode("node_a", &msg);
        assert_eq!(decode(&bytes), Ok(("node_a", &msg[..])));
        assert_eq!(decode(&encode("n", b"")), Ok(("n", &b""[..])));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(decode(b""), Err(EnvelopeError::NotGossip));
        assert_eq!(decode(b"F"), Err(EnvelopeError::NotGossip));
        assert_eq!(decode(b"FG"), Err(EnvelopeError::NotGossip));
        assert_eq!(decode(b"FG\x02\x01a"), Err(EnvelopeError::Version(2)));
        assert_eq!(decode(b"FG\x01"), Err(EnvelopeError::Sender));
        assert_eq!(decode(b"FG\x01\x00"), Err(EnvelopeError::Sender));
        assert_eq!(decode(b"FG\x01\xffabc"), Err(EnvelopeError::Sender));
        assert_eq!(decode(b"FG\x01\x02\xff\xfe"), Err(EnvelopeError::Sender));
    }

    #[test]
    fn channels_never_collide_with_the_broadcast_channel() {
        let broadcast = super::super::wire::channel_name("Fawkes.PubSub");
        assert_ne!(broadcast_channel("Fawkes.PubSub"), broadcast);
        assert_ne!(node_channel("Fawkes.PubSub", "a"), broadcast);
        assert_ne!(
            node_channel("Fawkes.PubSub", "a"),
            broadcast_channel("Fawkes.PubSub")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut bytes = b"FG\x01".to_vec();
            bytes.extend(&body);
            let _ = decode(&bytes);
            let _ = decode(&body);
        }
    }
}
