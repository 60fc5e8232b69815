//! An adapter that wires several nodes living in one process, for tests and
//! embedding: a broadcast on one node is delivered, on the publishing task,
//! to the subscribers of every other node.

use std::sync::{Arc, Mutex};

use fawkes_protocol::Broadcast;

use super::{Adapter, LocalNode, PubSub};

/// A cluster of nodes in this process. Cheap to clone; every clone is the
/// same cluster.
#[derive(Clone, Default)]
pub struct InProcessCluster {
    nodes: Arc<Mutex<Vec<(u64, LocalNode)>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for InProcessCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessCluster").finish_non_exhaustive()
    }
}

impl InProcessCluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new node's pubsub, joined to this cluster.
    pub fn node(&self) -> PubSub {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PubSub::with_adapter(|local| {
            self.lock().push((id, local));
            Member {
                id,
                cluster: self.clone(),
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, LocalNode)>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One node's adapter in an [`InProcessCluster`].
struct Member {
    id: u64,
    cluster: InProcessCluster,
}

impl Adapter for Member {
    fn publish(&self, broadcast: &Broadcast) {
        // Never deliver while holding the lock: a node may join meanwhile.
        let others: Vec<LocalNode> = self
            .cluster
            .lock()
            .iter()
            .filter(|(id, _)| *id != self.id)
            .map(|(_, node)| node.clone())
            .collect();
        for node in others {
            node.dispatch(broadcast);
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let id = self.id;
        self.cluster.lock().retain(|(other, _)| *other != id);
    }
}
