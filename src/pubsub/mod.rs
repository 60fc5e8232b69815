//! The topic registry and broadcast fan-out ("fastlane").
//!
//! A broadcast is encoded at most once per serializer in use and the same
//! bytes are queued on every subscriber's session. Events a channel
//! intercepts go to that channel's task instead (`handle_out`). A socket
//! with an id subscribes to that id's topic so a `disconnect` broadcast
//! closes it.

mod registry;

use std::sync::Arc;

use fawkes_protocol::{Broadcast, Payload, Serializer};

use registry::Registry;
pub(crate) use registry::{Subscriber, SubscriptionId};

use crate::session::{Outbound, SessionControl, WireFrame};

/// The event that closes every socket subscribed to its id topic.
pub const DISCONNECT_EVENT: &str = "disconnect";

/// A handle to the endpoint's publish/subscribe registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct PubSub {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub").finish_non_exhaustive()
    }
}

/// Where a subscriber's broadcasts go.
pub(crate) enum Target {
    /// A joined channel: fastlane to its session's outbound queue, or to
    /// the channel's `handle_out` for intercepted events.
    Channel {
        outbound: Outbound,
        serializer: Serializer,
        intercepts: &'static [&'static str],
        channel_id: u64,
    },
    /// A socket listening on its id topic for `disconnect`.
    Socket { control: SessionControl },
}

impl PubSub {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Send `event` with `payload` to every subscriber of `topic`.
    pub fn broadcast(&self, topic: &str, event: &str, payload: Payload) {
        self.dispatch(topic, event, payload, None);
    }

    /// Like [`PubSub::broadcast`], but skip the subscription `from`.
    pub(crate) fn broadcast_from(
        &self,
        from: SubscriptionId,
        topic: &str,
        event: &str,
        payload: Payload,
    ) {
        self.dispatch(topic, event, payload, Some(from));
    }

    /// Number of subscribers of `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.registry.count(topic)
    }

    pub(crate) fn subscribe(&self, topic: &str, subscriber: Subscriber) -> SubscriptionId {
        self.registry.insert(topic, subscriber)
    }

    pub(crate) fn unsubscribe(&self, topic: &str, id: SubscriptionId) {
        self.registry.remove(topic, id);
    }

    fn dispatch(&self, topic: &str, event: &str, payload: Payload, from: Option<SubscriptionId>) {
        let broadcast = Broadcast {
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        };
        let mut encoded = EncodedOnce::new(&broadcast);
        self.registry.for_each(topic, |id, subscriber| {
            if Some(id) == from {
                return;
            }
            match &subscriber.target {
                Target::Channel {
                    outbound,
                    serializer,
                    intercepts,
                    channel_id,
                } => {
                    if intercepts.contains(&event) {
                        crate::channel::send_intercepted(
                            outbound.control(),
                            *channel_id,
                            &broadcast,
                        );
                    } else if let Some(frame) = encoded.get(*serializer) {
                        // A full queue disconnects that client; others go on.
                        let _ = outbound.deliver(frame);
                    }
                }
                Target::Socket { control } => {
                    if event == DISCONNECT_EVENT {
                        control.disconnect();
                    }
                }
            }
        });
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
