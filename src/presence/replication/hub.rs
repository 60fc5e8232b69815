//! [`GossipHub`]: an in-process medium for presence gossip, so a test can
//! run several presence services (several "nodes") in one process, and cut
//! or kill them, without Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{GossipSink, Replication};

/// Messages waiting for one node; past this the hub drops (as a lossy
/// network would) and replication recovers by transfer.
const QUEUE: usize = 4096;

/// Connects the presence replications of several in-process nodes. Each
/// node gets a sink ([`GossipHub::sink`]) and is attached once its
/// replication runs ([`GossipHub::attach`]); delivery is asynchronous and
/// in order per pair of nodes. Links can be cut and healed and a node
/// killed (its messages stop, as with `kill -9`). Cheap to clone.
#[derive(Clone, Default)]
pub struct GossipHub {
    state: Arc<Mutex<HubState>>,
}

#[derive(Default)]
struct HubState {
    inboxes: BTreeMap<String, mpsc::Sender<Bytes>>,
    killed: BTreeSet<String>,
    /// Cut links, as (smaller name, larger name).
    cut: BTreeSet<(String, String)>,
}

impl std::fmt::Debug for GossipHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipHub").finish_non_exhaustive()
    }
}

fn link(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl GossipHub {
    /// An empty hub.
    pub fn new() -> GossipHub {
        GossipHub::default()
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sink node `node` sends through.
    pub fn sink(&self, node: &str) -> Arc<dyn GossipSink> {
        Arc::new(HubSink {
            hub: self.clone(),
            node: node.to_owned(),
        })
    }

    /// Delivers what other nodes send to `node` to `replication` (in a task
    /// of the current runtime). Attaching a name again replaces the node
    /// (a restart) and revives it if it was killed.
    pub fn attach(&self, node: &str, replication: Replication) {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        {
            let mut state = self.state();
            state.killed.remove(node);
            state.inboxes.insert(node.to_owned(), tx);
        }
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let _ = replication.receive(&msg);
            }
        });
    }

    /// Stops every message from and to `node` at once, without a goodbye.
    pub fn kill(&self, node: &str) {
        let mut state = self.state();
        state.inboxes.remove(node);
        state.killed.insert(node.to_owned());
    }

    /// Stops messages between `a` and `b` (both ways).
    pub fn cut(&self, a: &str, b: &str) {
        self.state().cut.insert(link(a, b));
    }

    /// Restores the link between `a` and `b`.
    pub fn heal(&self, a: &str, b: &str) {
        self.state().cut.remove(&link(a, b));
    }

    fn deliver(&self, from: &str, to: Option<&str>, msg: &Bytes) {
        let state = self.state();
        if state.killed.contains(from) {
            return;
        }
        for (node, inbox) in &state.inboxes {
            if node == from || to.is_some_and(|to| to != node) {
                continue;
            }
            if state.cut.contains(&link(from, node)) {
                continue;
            }
            if inbox.try_send(msg.clone()).is_err() {
                tracing::warn!(from, to = %node, "gossip hub queue full: message dropped");
            }
        }
    }
}

/// One node's side of a [`GossipHub`].
struct HubSink {
    hub: GossipHub,
    node: String,
}

impl GossipSink for HubSink {
    fn broadcast(&self, msg: Bytes) {
        self.hub.deliver(&self.node, None, &msg);
    }

    fn send_to(&self, node: &str, msg: Bytes) {
        self.hub.deliver(&self.node, Some(node), &msg);
    }
}
