//! The seam to other nodes: an [`Adapter`] carries what this node publishes
//! to every other node, and hands what other nodes publish to
//! [`LocalNode::dispatch`], which delivers it on this node only.
//!
//! Without an adapter (a single node) the broadcast path checks one
//! `Option` and nothing else.

use std::sync::Weak;

use fawkes_protocol::Broadcast;

/// Carries broadcasts between the nodes of a cluster.
///
/// `publish` is called on the broadcasting task after local delivery; it
/// must not wait (queue the work, count what fails).
pub trait Adapter: Send + Sync + 'static {
    /// Send `broadcast`, already delivered on this node, to every other node.
    fn publish(&self, broadcast: &Broadcast);
}

/// A handle an adapter uses to deliver what another node published to the
/// subscribers of this node, and only to them (it is never published
/// again). It does not keep the pubsub alive.
#[derive(Clone)]
pub struct LocalNode(pub(super) Weak<super::Inner>);

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode").finish_non_exhaustive()
    }
}

impl LocalNode {
    /// Deliver a broadcast from another node to this node's subscribers.
    /// Returns `false` once this node's pubsub is gone.
    pub fn dispatch(&self, broadcast: &Broadcast) -> bool {
        match self.0.upgrade() {
            Some(inner) => {
                inner.dispatch_local(broadcast, None);
                true
            }
            None => false,
        }
    }
}
