//! Property tests for the tracker: random operations on two or three
//! replicas with deltas lost, duplicated, reordered and misdelivered; the
//! merge laws on full states; dropping a replica; and that the diffs (one by
//! one or batched) keep a phoenix.js client in step with the server. Metas
//! and refs collide: metas are often equal apart from their ref, and refs
//! repeat across keys, topics and replicas (within one key and topic a ref
//! stays unique, as phoenix.js identifies a key's metas by ref).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tracker_syncdiff::{as_sets, from_list, sync_diff, ClientState};
use super::*;

const TOPICS: [&str; 2] = ["t0", "t1"];
const KEYS: [&str; 3] = ["k0", "k1", "k2"];

/// One step of a random history. Replica indexes are taken modulo the
/// number of replicas.
#[derive(Clone, Debug)]
enum Op {
    Track {
        at: usize,
        owner: u64,
        topic: usize,
        key: usize,
        made: Made,
    },
    Update {
        at: usize,
        owner: u64,
        topic: usize,
        key: usize,
        made: Made,
    },
    Untrack {
        at: usize,
        owner: u64,
        topic: usize,
        key: usize,
    },
    UntrackOwner {
        at: usize,
        owner: u64,
    },
    /// `to` merges a delta cut for its current clock.
    Delta {
        from: usize,
        to: usize,
    },
    /// `to` merges `from`'s full state.
    Full {
        from: usize,
        to: usize,
    },
    /// A delta for `to`'s current clock is queued, to arrive later.
    Stash {
        from: usize,
        to: usize,
    },
    /// A queued delta arrives at its target; with `dup` it stays queued.
    Deliver {
        pick: usize,
        dup: bool,
    },
    /// A queued delta arrives at some other replica.
    Misdeliver {
        pick: usize,
        to: usize,
    },
    /// A replica flushes its diff batches.
    Flush {
        at: usize,
    },
}

/// How a new meta and its ref are made.
#[derive(Clone, Copy, Debug)]
struct Made {
    /// `Some(v)`: the application fields are `{"status": v}`, shared with
    /// every other meta made from `v`; `None`: unique fields.
    same_meta: Option<u8>,
    /// The ref repeats across keys, topics and replicas (`r<i>`, the i-th
    /// ref of this key and topic) instead of being unique everywhere.
    shared_ref: bool,
}

fn made() -> impl Strategy<Value = Made> {
    (prop::option::of(0..2u8), any::<bool>()).prop_map(|(same_meta, shared_ref)| Made {
        same_meta,
        shared_ref,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..3usize;
    let owner = 0..3u64;
    prop_oneof![
        4 => (r.clone(), owner.clone(), 0..2usize, 0..3usize, made())
            .prop_map(|(at, owner, topic, key, made)| Op::Track { at, owner, topic, key, made }),
        2 => (r.clone(), owner.clone(), 0..2usize, 0..3usize, made())
            .prop_map(|(at, owner, topic, key, made)| Op::Update { at, owner, topic, key, made }),
        2 => (r.clone(), owner.clone(), 0..2usize, 0..3usize)
            .prop_map(|(at, owner, topic, key)| Op::Untrack { at, owner, topic, key }),
        1 => (r.clone(), owner).prop_map(|(at, owner)| Op::UntrackOwner { at, owner }),
        2 => (r.clone(), r.clone()).prop_map(|(from, to)| Op::Delta { from, to }),
        1 => (r.clone(), r.clone()).prop_map(|(from, to)| Op::Full { from, to }),
        2 => (r.clone(), r.clone()).prop_map(|(from, to)| Op::Stash { from, to }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, dup)| Op::Deliver { pick, dup }),
        1 => (any::<usize>(), r.clone()).prop_map(|(pick, to)| Op::Misdeliver { pick, to }),
        1 => r.prop_map(|at| Op::Flush { at }),
    ]
}

/// A created entry: its triple and meta, by `(origin, event)`.
type Created = BTreeMap<(ReplicaId, u64), (u64, String, String, Meta)>;

/// Replicas plus, per replica and topic, a client fed every diff one by one
/// and a client fed the same diffs through a [`DiffBatch`].
struct Cluster {
    nodes: Vec<Tracker>,
    clients: Vec<BTreeMap<String, ClientState>>,
    batches: Vec<BTreeMap<String, DiffBatch>>,
    batched_clients: Vec<BTreeMap<String, ClientState>>,
    queue: Vec<(usize, Delta)>,
    refs: u64,
    /// Refs made so far per (topic, key), for [`Made::shared_ref`].
    key_refs: BTreeMap<(usize, usize), u64>,
    created: Created,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster {
            nodes: (0..n)
                .map(|i| Tracker::new(ReplicaId::new(format!("n{i}"), 7)))
                .collect(),
            clients: vec![BTreeMap::new(); n],
            batches: (0..n).map(|_| BTreeMap::new()).collect(),
            batched_clients: vec![BTreeMap::new(); n],
            queue: Vec::new(),
            refs: 0,
            key_refs: BTreeMap::new(),
            created: Created::new(),
        }
    }

    /// A new meta for `key` on `topic` and its ref, made as `made` says.
    fn meta(&mut self, topic: usize, key: usize, made: Made) -> (Meta, String) {
        self.refs += 1;
        let mut meta = Meta::new();
        match made.same_meta {
            Some(v) => meta.insert("status".into(), v.into()),
            None => meta.insert("n".into(), self.refs.into()),
        };
        let r = if made.shared_ref {
            let count = self.key_refs.entry((topic, key)).or_default();
            *count += 1;
            format!("r{count}")
        } else {
            format!("ref{}", self.refs)
        };
        (meta, r)
    }

    fn emit(&mut self, at: usize, diffs: Vec<Diff>) {
        for diff in diffs {
            let client = self.clients[at].entry(diff.topic.clone()).or_default();
            sync_diff(client, &diff);
            let topic = diff.topic.clone();
            self.batches[at]
                .entry(topic.clone())
                .or_insert_with(|| DiffBatch::new(topic))
                .push(diff);
        }
    }

    fn apply(&mut self, op: Op) {
        let n = self.nodes.len();
        match op {
            Op::Track {
                at,
                owner,
                topic,
                key,
                made,
            } => {
                let (at, (meta, r)) = (at % n, self.meta(topic, key, made));
                let owner = self.nodes[at].owner(owner);
                if let Ok(d) = self.nodes[at].track(owner, TOPICS[topic], KEYS[key], meta, r) {
                    self.emit(at, vec![d]);
                }
            }
            Op::Update {
                at,
                owner,
                topic,
                key,
                made,
            } => {
                let (at, (meta, r)) = (at % n, self.meta(topic, key, made));
                let owner = self.nodes[at].owner(owner);
                if let Ok(d) = self.nodes[at].update(owner, TOPICS[topic], KEYS[key], meta, r) {
                    self.emit(at, vec![d]);
                }
            }
            Op::Untrack {
                at,
                owner,
                topic,
                key,
            } => {
                let at = at % n;
                let owner = self.nodes[at].owner(owner);
                let d = self.nodes[at].untrack(owner, TOPICS[topic], KEYS[key]);
                self.emit(at, vec![d]);
            }
            Op::UntrackOwner { at, owner } => {
                let at = at % n;
                let owner = self.nodes[at].owner(owner);
                let diffs = self.nodes[at].untrack_owner(owner);
                self.emit(at, diffs);
            }
            Op::Delta { from, to } => {
                let (from, to) = (from % n, to % n);
                let delta = self.nodes[from].delta_since(&self.nodes[to].clock());
                let diffs = self.nodes[to].merge(delta);
                self.emit(to, diffs);
            }
            Op::Full { from, to } => self.full(from % n, to % n),
            Op::Stash { from, to } => {
                let (from, to) = (from % n, to % n);
                let delta = self.nodes[from].delta_since(&self.nodes[to].clock());
                self.queue.push((to, delta));
            }
            Op::Deliver { pick, dup } if !self.queue.is_empty() => {
                let i = pick % self.queue.len();
                let (to, delta) = if dup {
                    self.queue[i].clone()
                } else {
                    self.queue.remove(i)
                };
                let diffs = self.nodes[to].merge(delta);
                self.emit(to, diffs);
            }
            Op::Misdeliver { pick, to } if !self.queue.is_empty() => {
                let delta = self.queue[pick % self.queue.len()].1.clone();
                let diffs = self.nodes[to % n].merge(delta);
                self.emit(to % n, diffs);
            }
            Op::Deliver { .. } | Op::Misdeliver { .. } => {}
            Op::Flush { at } => self.flush(at % n),
        }
        self.record_created();
    }

    fn full(&mut self, from: usize, to: usize) {
        let state = self.nodes[from].full_state();
        let diffs = self.nodes[to].merge(state);
        self.emit(to, diffs);
    }

    fn flush(&mut self, at: usize) {
        for (topic, batch) in &mut self.batches[at] {
            let combined = batch.take();
            sync_diff(
                self.batched_clients[at].entry(topic.clone()).or_default(),
                &combined,
            );
        }
        let drop_empty = |m: &BTreeMap<String, ClientState>| {
            m.iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(t, s)| (t.clone(), s.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        // Batched in windows or applied one by one: the same client state, order included.
        assert_eq!(
            drop_empty(&self.batched_clients[at]),
            drop_empty(&self.clients[at])
        );
    }

    fn record_created(&mut self) {
        for node in &self.nodes {
            let me = node.replica();
            for (event, e) in node.entries.get(me).into_iter().flatten() {
                let row = (e.owner, e.topic.clone(), e.key.clone(), e.meta.clone());
                let old = self.created.insert((me.clone(), *event), row.clone());
                assert!(old.is_none_or(|o| o == row), "an event was reused");
            }
        }
    }

    /// Checks that hold after every step.
    fn check(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            check_indexes(node);
            for (origin, by_event) in &node.entries {
                for (event, e) in by_event {
                    // Everything held was created by its origin, as held.
                    let row = &self.created[&(origin.clone(), *event)];
                    assert_eq!(
                        row,
                        &(e.owner, e.topic.clone(), e.key.clone(), e.meta.clone())
                    );
                    assert!(node.context.contains(origin, *event));
                }
            }
            // Soundness: an observed event that is live at its origin is held.
            for origin in &self.nodes {
                let me = origin.replica();
                if node.dropped.contains(me) {
                    continue;
                }
                for event in origin
                    .entries
                    .get(me)
                    .into_iter()
                    .flatten()
                    .map(|(e, _)| *e)
                {
                    if node.context.contains(me, event) {
                        assert!(
                            node.entry(me, event).is_some(),
                            "node {i} lost {me}/{event}"
                        );
                    }
                }
            }
            // The client fed every diff shows what the server lists.
            for topic in TOPICS {
                let client = self.clients[i].get(topic).cloned().unwrap_or_default();
                assert_eq!(
                    as_sets(&client),
                    as_sets(&from_list(&node.list(topic))),
                    "node {i} {topic}"
                );
            }
        }
    }

    /// Every pair exchanges state (full states, or deltas cut for the
    /// receiver's current clock), then every batch is flushed.
    fn exchange_all(&mut self, full: bool) {
        let n = self.nodes.len();
        for to in 0..n {
            for from in 0..n {
                if from == to {
                    continue;
                }
                if full {
                    self.full(from, to);
                } else {
                    self.apply(Op::Delta { from, to });
                }
            }
        }
        for at in 0..n {
            self.flush(at);
        }
    }

    /// What every replica should list: each live entry at its origin.
    fn truth(&self, topic: &str) -> PresenceList {
        let mut keys: BTreeMap<String, BTreeMap<(ReplicaId, u64), Meta>> = BTreeMap::new();
        for node in &self.nodes {
            let me = node.replica();
            for e in node.entries.get(me).into_iter().flatten().map(|(_, e)| e) {
                if e.topic == topic {
                    keys.entry(e.key.clone())
                        .or_default()
                        .insert((me.clone(), e.since), e.meta.clone());
                }
            }
        }
        PresenceList(
            keys.into_iter()
                .map(|(k, m)| (k, m.into_values().collect()))
                .collect(),
        )
    }
}

/// The indexes agree with the entries, and `(owner, topic, key)` is unique.
fn check_indexes(t: &Tracker) {
    let mut owners = OwnerIndex::new();
    let mut topics = TopicIndex::new();
    for (origin, by_event) in &t.entries {
        assert!(!by_event.is_empty());
        for (event, e) in by_event {
            let slot = owners
                .entry(OwnerId::new(origin.clone(), e.owner))
                .or_default()
                .entry(e.topic.clone())
                .or_default()
                .insert(e.key.clone(), *event);
            assert!(slot.is_none(), "duplicate (owner, topic, key)");
            topics
                .entry(e.topic.clone())
                .or_default()
                .entry(e.key.clone())
                .or_default()
                .insert((origin.clone(), e.since), *event);
        }
    }
    assert_eq!(owners, t.owners);
    assert_eq!(topics, t.topics);
}

/// Observed event ranges and live entries, per origin replica.
type Content = (
    BTreeMap<ReplicaId, Vec<(u64, u64)>>,
    BTreeMap<ReplicaId, BTreeMap<u64, Entry>>,
);

/// The replicated content of a tracker, independent of whose it is.
fn content(t: &Tracker) -> Content {
    let observed = t.context.replicas().into_iter().map(|r| {
        let pairs = t.context.observed(&r).pairs();
        (r, pairs)
    });
    (observed.collect(), t.entries.clone())
}

fn run(n: usize, ops: Vec<Op>) -> Cluster {
    let mut cluster = Cluster::new(n);
    for op in ops {
        cluster.apply(op);
        cluster.check();
    }
    cluster
}

fn merged(into: &Tracker, from: &Tracker) -> Tracker {
    let mut t = into.clone();
    t.merge(from.full_state());
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Any interleaving converges once every replica has exchanged state
    /// with every other, and lists exactly the entries live at their origins.
    #[test]
    fn replicas_converge(n in 2..=3usize, ops in prop::collection::vec(op(), 0..80), full in any::<bool>()) {
        let mut cluster = run(n, ops);
        cluster.exchange_all(full);
        cluster.check();
        for topic in TOPICS {
            let truth = cluster.truth(topic);
            for node in &cluster.nodes {
                prop_assert_eq!(&node.list(topic), &truth);
            }
        }
        let clock = cluster.nodes[0].clock();
        for node in &cluster.nodes {
            prop_assert_eq!(&node.clock(), &clock);
            prop_assert!(node.delta_since(&clock).is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Merging full states is commutative, associative and idempotent.
    #[test]
    fn merge_is_a_join(ops in prop::collection::vec(op(), 0..60)) {
        let cluster = run(3, ops);
        let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
        prop_assert_eq!(content(&merged(a, b)), content(&merged(b, a)));
        prop_assert_eq!(content(&merged(&merged(a, b), c)), content(&merged(a, &merged(b, c))));
        prop_assert_eq!(content(&merged(a, &merged(c, b))), content(&merged(&merged(c, a), b)));
        let mut again = merged(a, b);
        let once = content(&again);
        prop_assert!(again.merge(b.full_state()).is_empty());
        prop_assert!(again.merge(a.full_state()).is_empty());
        prop_assert_eq!(content(&again), once);
        let mut same = a.clone();
        prop_assert!(same.merge(a.full_state()).is_empty());
        prop_assert_eq!(content(&same), content(a));
    }

    /// Dropping a replica removes exactly its entries, which stay gone.
    #[test]
    fn drop_replica_removes_exactly_that_replica(ops in prop::collection::vec(op(), 0..60), full in any::<bool>()) {
        let mut cluster = run(3, ops);
        let gone = cluster.nodes[2].replica().clone();
        let before: Vec<PresenceList> = TOPICS.iter().map(|t| cluster.nodes[0].list(t)).collect();
        let held = cluster.nodes[0].entries.get(&gone).cloned().unwrap_or_default();
        let diffs = cluster.nodes[0].drop_replica(&gone);
        for (i, topic) in TOPICS.iter().enumerate() {
            let mut expect = from_list(&before[i]);
            // Metas repeat across keys: what left is identified by key and meta.
            let left: Vec<(&String, &Meta)> = held.values().filter(|e| e.topic == *topic).map(|e| (&e.key, &e.meta)).collect();
            for (key, metas) in expect.iter_mut() {
                metas.retain(|m| !left.contains(&(key, m)));
            }
            expect.retain(|_, metas| !metas.is_empty());
            prop_assert_eq!(from_list(&cluster.nodes[0].list(topic)), expect);
            let leaves: usize = diffs.iter().filter(|d| d.topic == *topic).flat_map(|d| d.leaves.0.values()).map(Vec::len).sum();
            prop_assert_eq!(leaves, left.len());
        }
        prop_assert!(diffs.iter().all(|d| d.joins.is_empty()));
        prop_assert!(!cluster.nodes[0].entries.contains_key(&gone));
        let n0 = cluster.nodes[0].replica().clone();
        cluster.clients[0].clear();
        for topic in TOPICS {
            let list = cluster.nodes[0].list(topic);
            cluster.clients[0].insert(topic.to_owned(), from_list(&list));
        }
        cluster.batches[0].clear();
        cluster.batched_clients[0] = cluster.clients[0].clone();
        cluster.exchange_all(full);
        cluster.check();
        for topic in TOPICS {
            let mut truth = cluster.truth(topic);
            for (key, metas) in truth.0.iter_mut() {
                metas.retain(|m| !cluster.created.iter().any(|((o, _), row)| {
                    *o == gone && row.1 == topic && row.2 == *key && row.3 == *m
                }));
            }
            truth.0.retain(|_, metas| !metas.is_empty());
            prop_assert_eq!(&cluster.nodes[0].list(topic), &truth, "{} after exchange", n0);
            prop_assert_eq!(&cluster.nodes[1].list(topic), &cluster.truth(topic));
        }
    }
}
