//! Presence: the CRDT tracker (pure, in [`tracker`]) and the service
//! channels call (`track`/`update`/`untrack`/`list`), which turns tracker
//! changes into `presence_diff` broadcasts, optionally batched per topic.
//! [`replication`] makes the service one replica of a cluster.

mod batch;
mod channel;
mod list_cache;
mod phx_ref;
pub mod replication;
pub mod tracker;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fawkes_protocol::Payload;

pub use channel::ChannelPresence;
use phx_ref::RefGenerator;
pub(crate) use tracker::Diff;
use tracker::{Meta, OwnerId, ReplicaId, TrackError, Tracker};

use crate::pubsub::PubSub;

/// The event carrying presence changes to subscribers.
pub const DIFF_EVENT: &str = "presence_diff";

/// Presence settings.
#[derive(Debug, Clone, Default)]
pub struct PresenceOptions {
    /// Changes to one topic within this window go out as one
    /// `presence_diff`. Zero sends one diff per change, as Phoenix does.
    pub batch_window: Duration,
}

/// The presence service of an endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

/// The tracker and the encoded lists derived from it, changed together.
struct State {
    tracker: Tracker,
    lists: list_cache::ListCache,
}

struct Inner {
    state: Mutex<State>,
    /// Set once replication has named this replica.
    replicating: std::sync::atomic::AtomicBool,
    refs: RefGenerator,
    pubsub: PubSub,
    batches: batch::Batches,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").finish_non_exhaustive()
    }
}

impl Presence {
    /// A presence service broadcasting diffs through `pubsub`.
    pub fn new(pubsub: PubSub, options: PresenceOptions) -> Self {
        let incarnation = next_incarnation();
        let replica = ReplicaId::new("fawkes", incarnation);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    tracker: Tracker::new(replica),
                    lists: list_cache::ListCache::default(),
                }),
                replicating: std::sync::atomic::AtomicBool::new(false),
                refs: RefGenerator::new((incarnation & 0xffff) as u16),
                pubsub: pubsub.clone(),
                batches: batch::Batches::new(pubsub, options.batch_window),
            }),
        }
    }

    /// Presence entries held now (this node's and, in a cluster, the
    /// other replicas').
    pub fn entry_count(&self) -> usize {
        self.state().tracker.entry_count()
    }

    /// This service's replica id (node `fawkes` until replication names it).
    pub fn replica(&self) -> ReplicaId {
        self.state().tracker.replica().clone()
    }

    /// Renames this replica to node `node` (same incarnation), for
    /// replication; only while nothing was ever tracked or merged.
    fn become_node(&self, node: &str) -> Result<ReplicaId, replication::ReplicationError> {
        let mut state = self.state();
        let current = state.tracker.replica().clone();
        let pristine = state.tracker.clock() == tracker::Clock::default();
        let replicating = &self.inner.replicating;
        if !pristine || replicating.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Err(replication::ReplicationError::AlreadyStarted);
        }
        let replica = ReplicaId::new(node, current.incarnation);
        state.tracker = Tracker::new(replica.clone());
        Ok(replica)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Track `key` on `topic` for `owner` with `meta`; returns the new
    /// `phx_ref`.
    pub fn track(
        &self,
        owner: u64,
        topic: &str,
        key: &str,
        meta: Meta,
    ) -> Result<String, TrackError> {
        self.track_to(owner, topic, key, meta, &Publish::Now)
    }

    /// Replace the meta of `owner`'s `key` on `topic`; returns the new
    /// `phx_ref` (the meta gets `phx_ref_prev`).
    pub fn update(
        &self,
        owner: u64,
        topic: &str,
        key: &str,
        meta: Meta,
    ) -> Result<String, TrackError> {
        self.update_to(owner, topic, key, meta, &Publish::Now)
    }

    /// Stop tracking `owner`'s `key` on `topic` (no-op if absent).
    pub fn untrack(&self, owner: u64, topic: &str, key: &str) {
        self.untrack_to(owner, topic, key, &Publish::Now)
    }

    pub(crate) fn track_to(
        &self,
        owner: u64,
        topic: &str,
        key: &str,
        meta: Meta,
        to: &Publish<'_>,
    ) -> Result<String, TrackError> {
        self.with_new_ref(owner, to, |tracker, owner_id, phx_ref| {
            tracker.track(owner_id, topic, key, meta, phx_ref)
        })
    }

    pub(crate) fn update_to(
        &self,
        owner: u64,
        topic: &str,
        key: &str,
        meta: Meta,
        to: &Publish<'_>,
    ) -> Result<String, TrackError> {
        self.with_new_ref(owner, to, |tracker, owner_id, phx_ref| {
            tracker.update(owner_id, topic, key, meta, phx_ref)
        })
    }

    /// Apply a change that mints a new `phx_ref`, publish its diff, and
    /// return the ref.
    fn with_new_ref(
        &self,
        owner: u64,
        to: &Publish<'_>,
        change: impl FnOnce(&mut Tracker, OwnerId, String) -> Result<Diff, TrackError>,
    ) -> Result<String, TrackError> {
        let phx_ref = self.inner.refs.next();
        let mut state = self.state();
        let owner = state.tracker.owner(owner);
        let diff = change(&mut state.tracker, owner, phx_ref.clone())?;
        self.changed(&mut state, vec![diff], to);
        Ok(phx_ref)
    }

    pub(crate) fn untrack_to(&self, owner: u64, topic: &str, key: &str, to: &Publish<'_>) {
        let mut state = self.state();
        let owner = state.tracker.owner(owner);
        let diff = state.tracker.untrack(owner, topic, key);
        self.changed(&mut state, vec![diff], to);
    }

    /// Stop tracking everything `owner` tracks (its channel ended).
    pub(crate) fn untrack_owner(&self, owner: u64) {
        let mut state = self.state();
        let owner = state.tracker.owner(owner);
        let diffs = state.tracker.untrack_owner(owner);
        self.changed(&mut state, diffs, &Publish::Now);
    }

    /// The current meta of `owner`'s `key` on `topic`.
    pub fn get(&self, owner: u64, topic: &str, key: &str) -> Option<Meta> {
        let state = self.state();
        state
            .tracker
            .get(state.tracker.owner(owner), topic, key)
            .cloned()
    }

    /// Everyone on `topic`: `{key: {"metas": [...]}}`, as `Presence.list`.
    /// The list is encoded once per change of the topic and shared.
    pub fn list(&self, topic: &str) -> Payload {
        let mut state = self.state();
        let State { tracker, lists } = &mut *state;
        Payload::RawJson(lists.list(tracker, topic))
    }

    /// Everyone on `topic` with the node each presence lives on: `(key,
    /// node name, meta)`, in [`Presence::list`] order. A copy, for an
    /// occasional look (the dashboard).
    pub fn presences(&self, topic: &str) -> Vec<(String, String, Meta)> {
        let state = self.state();
        state
            .tracker
            .presences(topic)
            .into_iter()
            .map(|(key, replica, meta)| (key.to_owned(), replica.node.clone(), meta.clone()))
            .collect()
    }

    /// Refresh cached lists for `diffs`, then broadcast (or batch) them now
    /// or hold them for a channel callback to flush after its reply. Called
    /// with the state locked, so diffs leave in the order changes happened.
    fn changed(&self, state: &mut State, diffs: Vec<Diff>, to: &Publish<'_>) {
        let diffs: Vec<Diff> = diffs.into_iter().filter(|d| !d.is_empty()).collect();
        for diff in &diffs {
            state.lists.changed(&state.tracker, diff);
        }
        match to {
            Publish::Now => diffs
                .into_iter()
                .for_each(|diff| self.inner.batches.publish(&self.inner.pubsub, diff)),
            Publish::After(held) => held.hold(&mut diffs.into_iter()),
        }
    }

    /// Publish a diff a channel callback held back.
    pub(crate) fn publish_held(&self, diff: Diff) {
        self.inner.batches.publish(&self.inner.pubsub, diff);
    }
}

/// A per-boot version for a new replica: microseconds since the epoch,
/// made strictly increasing within the process so that services started in
/// the same microsecond (tests) never share one.
fn next_incarnation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default();
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or_default();
    now.max(previous + 1)
}

/// Where a channel keeps the diffs one of its callbacks produced until the
/// callback has replied, then hands them to [`Presence::publish_held`]:
/// Phoenix's tracker broadcasts asynchronously, so a client sees the reply
/// to its `track`/`update` push before the `presence_diff` it caused.
pub(crate) trait HoldDiffs: Sync {
    /// Keep `diffs`, in order, after those already held.
    fn hold(&self, diffs: &mut dyn Iterator<Item = Diff>);
}

/// Where a change's diff goes.
pub(crate) enum Publish<'a> {
    /// Broadcast (or batch) at once.
    Now,
    /// Hold until the current channel callback has replied.
    After(&'a dyn HoldDiffs),
}
