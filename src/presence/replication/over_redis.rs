//! Presence replication over the Redis engine: the engine's
//! [`GossipLink`] is the [`GossipSink`], and the replication is the link's
//! [`GossipReceiver`] (messages in, resyncs after a reconnection or an
//! overflow).

use std::sync::Arc;

use bytes::Bytes;

use super::{GossipSink, Replication, ReplicationError, ReplicationOptions};
use crate::presence::Presence;
use crate::pubsub::redis::gossip::{GossipLink, GossipReceiver};

impl GossipSink for GossipLink {
    fn broadcast(&self, msg: Bytes) {
        GossipLink::broadcast(self, &msg);
    }

    fn send_to(&self, node: &str, msg: Bytes) {
        GossipLink::send_to(self, node, &msg);
    }
}

impl GossipReceiver for Replication {
    fn receive(&self, msg: &[u8]) -> bool {
        Replication::receive(self, msg).is_ok()
    }

    fn resync(&self) {
        Replication::resync(self);
    }
}

impl Replication {
    /// Starts replicating `presence` over the Redis engine's `link`: what
    /// this node ships goes out through the link, and what the other
    /// nodes ship comes back to this replication. `options.node_name`
    /// should be the engine's node name ([`GossipLink::node`]).
    ///
    /// # Errors
    /// As [`Replication::start`].
    pub fn over_redis(
        presence: &Presence,
        options: ReplicationOptions,
        link: &GossipLink,
    ) -> Result<Replication, ReplicationError> {
        let replication = Replication::start(presence, options, Arc::new(link.clone()))?;
        link.attach(Arc::new(replication.clone()));
        Ok(replication)
    }
}
