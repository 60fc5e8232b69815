//! The topic registry and broadcast fan-out ("fastlane").
//!
//! A broadcast is encoded at most once per serializer in use and the same
//! bytes are queued on every subscriber's session. Events a channel
//! intercepts go to that channel's task instead (`handle_out`). A socket
//! with an id subscribes to that id's topic so a `disconnect` broadcast
//! closes it. Subscribers are reached through `Deliver`, which the session
//! implements. With an [`Adapter`] (a cluster), a broadcast is also handed
//! to the adapter for the other nodes, and what other nodes publish arrives
//! through [`LocalNode`] and is delivered here only.

mod adapter;
mod deliver;
mod frame;
mod in_process;
pub mod redis;
mod registry;

use std::sync::Arc;

use fawkes_protocol::{Broadcast, Payload, Serializer};

use crate::metrics::Counters;

pub use adapter::{Adapter, LocalNode};
pub(crate) use deliver::Deliver;
pub use frame::WireFrame;
pub use in_process::InProcessCluster;
use registry::Registry;
pub(crate) use registry::{Subscriber, SubscriptionId};

/// The event that closes every socket subscribed to its id topic.
pub const DISCONNECT_EVENT: &str = "disconnect";

/// A handle to the endpoint's publish/subscribe registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct PubSub {
    inner: Arc<Inner>,
}

/// The registry, and the adapter to other nodes if this node is in a cluster.
#[derive(Default)]
struct Inner {
    registry: Registry,
    adapter: Option<Box<dyn Adapter>>,
    /// The endpoint's counters: every session and channel holds this
    /// pubsub, so they count here without a field of their own.
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("clustered", &self.inner.adapter.is_some())
            .finish_non_exhaustive()
    }
}

/// Where a subscriber's broadcasts go.
pub(crate) enum Target {
    /// A joined channel: fastlane to its session, or to the channel's
    /// `handle_out` for intercepted events.
    Channel {
        sink: Arc<dyn Deliver>,
        serializer: Serializer,
        intercepts: &'static [&'static str],
        channel_id: u64,
    },
    /// A socket listening on its id topic for `disconnect`.
    Socket { sink: Arc<dyn Deliver> },
    /// A function called with every broadcast on the topic (internal
    /// request/reply, e.g. a longpoll request routed to another node). It
    /// runs under the registry's read lock: it must neither wait nor
    /// subscribe.
    Handler(Handler),
}

/// The function of a [`Target::Handler`].
pub(crate) type Handler = Arc<dyn Fn(&Broadcast) + Send + Sync>;

impl PubSub {
    /// A new, empty registry for a node on its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty registry for a node in a cluster: `make` builds the
    /// adapter from the handle it uses to deliver other nodes' broadcasts.
    pub fn with_adapter<A: Adapter>(make: impl FnOnce(LocalNode) -> A) -> Self {
        let inner = Arc::new_cyclic(|weak| Inner {
            registry: Registry::default(),
            adapter: Some(Box::new(make(LocalNode(weak.clone())))),
            counters: Arc::default(),
        });
        Self { inner }
    }

    /// Send `event` with `payload` to every subscriber of `topic`, on every
    /// node of the cluster.
    pub fn broadcast(&self, topic: &str, event: &str, payload: Payload) {
        self.publish(topic, event, payload, None);
    }

    /// Like [`PubSub::broadcast`], but skip the subscription `from` (on
    /// other nodes every subscriber gets it).
    pub(crate) fn broadcast_from(
        &self,
        from: SubscriptionId,
        topic: &str,
        event: &str,
        payload: Payload,
    ) {
        self.publish(topic, event, payload, Some(from));
    }

    /// Send `event` with `payload` to the subscribers of `topic` on this node
    /// only (Phoenix's `local_broadcast`).
    pub fn local_broadcast(&self, topic: &str, event: &str, payload: Payload) {
        let broadcast = Broadcast {
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        };
        self.inner.dispatch_local(&broadcast, None);
    }

    /// Whether broadcasts also go to other nodes.
    pub fn is_clustered(&self) -> bool {
        self.inner.adapter.is_some()
    }

    /// The counters behind `/metrics` (see [`crate::metrics`]).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.inner.counters
    }

    /// Number of subscribers of `topic` on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.registry.count(topic)
    }

    /// Every topic with subscribers on this node, with their number, in no
    /// particular order. Walks the whole registry under its read lock: for
    /// an occasional look (the dashboard), never per message.
    pub fn topics(&self) -> Vec<(String, usize)> {
        self.inner.registry.topics()
    }

    pub(crate) fn subscribe(&self, topic: &str, subscriber: Subscriber) -> SubscriptionId {
        self.inner.registry.insert(topic, subscriber)
    }

    pub(crate) fn unsubscribe(&self, topic: &str, id: SubscriptionId) {
        self.inner.registry.remove(topic, id);
    }

    fn publish(&self, topic: &str, event: &str, payload: Payload, from: Option<SubscriptionId>) {
        let broadcast = Broadcast {
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        };
        self.inner.dispatch_local(&broadcast, from);
        if let Some(adapter) = &self.inner.adapter {
            adapter.publish(&broadcast);
        }
    }
}

impl Inner {
    fn dispatch_local(&self, broadcast: &Broadcast, from: Option<SubscriptionId>) {
        let event = broadcast.event.as_str();
        let mut encoded = EncodedOnce::new(broadcast);
        // Counted here and added once: no shared write per subscriber.
        let mut delivered = 0u64;
        let mut undeliverable = 0u64;
        self.registry.for_each(&broadcast.topic, |id, subscriber| {
            if Some(id) == from {
                return;
            }
            match &subscriber.target {
                Target::Channel {
                    sink,
                    serializer,
                    intercepts,
                    channel_id,
                } => {
                    if intercepts.contains(&event) {
                        sink.deliver_intercepted(*channel_id, broadcast);
                    } else if let Some(frame) = encoded.get(*serializer) {
                        // A full queue disconnects that client; others go on.
                        sink.deliver_frame(frame);
                        delivered += 1;
                    } else {
                        undeliverable += 1;
                    }
                }
                Target::Socket { sink } => {
                    if event == DISCONNECT_EVENT {
                        sink.deliver_disconnect();
                    }
                }
                Target::Handler(handler) => handler(broadcast),
            }
        });
        self.counters.broadcast(delivered);
        if undeliverable > 0 {
            self.counters.undeliverable(undeliverable);
        }
    }
}

/// Encodes a broadcast lazily, once per serializer.
struct EncodedOnce<'a> {
    broadcast: &'a Broadcast,
    v1: Option<Option<WireFrame>>,
    v2: Option<Option<WireFrame>>,
}

impl<'a> EncodedOnce<'a> {
    fn new(broadcast: &'a Broadcast) -> Self {
        Self {
            broadcast,
            v1: None,
            v2: None,
        }
    }

    fn get(&mut self, serializer: Serializer) -> Option<WireFrame> {
        let slot = match serializer {
            Serializer::V1 => &mut self.v1,
            Serializer::V2 => &mut self.v2,
        };
        let broadcast = self.broadcast;
        slot.get_or_insert_with(|| match serializer.encode_broadcast(broadcast) {
            Ok(frame) => Some(frame.into()),
            Err(error) => {
                tracing::warn!(topic = %broadcast.topic, event = %broadcast.event, %error, "broadcast not encodable for this serializer");
                None
            }
        })
        .clone()
    }
}
