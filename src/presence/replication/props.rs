//! Property tests of the replication protocol: three nodes (pure state
//! machines, real trackers, real wire encoding) under random local changes,
//! message loss, partitions, heals, crashes, restarts, graceful leaves and
//! stalls. After the network heals and time runs on, every running node
//! lists exactly what the running nodes track (no ghost, no lost presence),
//! and a client fed each node's diffs always shows that node's list.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::node::{Effects, Outgoing, Replicator, Timing};
use super::wire::Gossip;
use crate::presence::tracker::tracker_syncdiff::{as_sets, from_list, sync_diff, ClientState};
use crate::presence::tracker::{Meta, ReplicaId, Tracker};

const N: usize = 3;
const TOPICS: [&str; 2] = ["t0", "t1"];
const KEYS: [&str; 2] = ["k0", "k1"];
const PERIOD: Duration = Duration::from_millis(100);
/// Messages older than this when picked are lost (no network holds a
/// message for seconds).
const MAX_IN_FLIGHT: Duration = Duration::from_secs(1);

fn timing() -> Timing {
    Timing {
        broadcast_period: PERIOD,
        heartbeat_period: PERIOD * 5,
        down_period: Duration::from_secs(3),
        permdown_period: Duration::from_secs(20),
        transfer_timeout: Duration::from_secs(1),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Track {
        at: usize,
        owner: u64,
        topic: usize,
        key: usize,
    },
    Update {
        at: usize,
        owner: u64,
        topic: usize,
        key: usize,
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
    /// Time passes by `ms`; every running node ticks once.
    Advance {
        ms: u64,
    },
    /// The oldest message on link `from -> to` arrives (or is lost).
    Deliver {
        from: usize,
        to: usize,
        lose: bool,
    },
    Cut {
        a: usize,
        b: usize,
    },
    Heal {
        a: usize,
        b: usize,
    },
    /// The node dies without a word (it stays dead until restarted).
    Crash {
        at: usize,
    },
    /// The node shuts down gracefully (leave), and stays down.
    Leave {
        at: usize,
    },
    /// The node (dead or alive) boots again with a new incarnation.
    Restart {
        at: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..N;
    let owner = 0..3u64;
    prop_oneof![
        4 => (r.clone(), owner.clone(), 0..2usize, 0..2usize)
            .prop_map(|(at, owner, topic, key)| Op::Track { at, owner, topic, key }),
        2 => (r.clone(), owner.clone(), 0..2usize, 0..2usize)
            .prop_map(|(at, owner, topic, key)| Op::Update { at, owner, topic, key }),
        2 => (r.clone(), owner.clone(), 0..2usize, 0..2usize)
            .prop_map(|(at, owner, topic, key)| Op::Untrack { at, owner, topic, key }),
        1 => (r.clone(), owner).prop_map(|(at, owner)| Op::UntrackOwner { at, owner }),
        6 => prop_oneof![Just(50u64), Just(100), Just(400), Just(3500), Just(25_000)]
            .prop_map(|ms| Op::Advance { ms }),
        12 => (r.clone(), r.clone(), prop::bool::weighted(0.2))
            .prop_map(|(from, to, lose)| Op::Deliver { from, to, lose }),
        1 => (r.clone(), r.clone()).prop_map(|(a, b)| Op::Cut { a, b }),
        1 => (r.clone(), r.clone()).prop_map(|(a, b)| Op::Heal { a, b }),
        1 => r.clone().prop_map(|at| Op::Crash { at }),
        1 => r.clone().prop_map(|at| Op::Leave { at }),
        1 => r.prop_map(|at| Op::Restart { at }),
    ]
}

/// One running node: its tracker and replication state, and a client fed
/// every diff it publishes, per topic.
struct Node {
    tracker: Tracker,
    core: Replicator,
    client: BTreeMap<String, ClientState>,
}

/// (from, to) -> messages in flight, oldest first, with their send time.
type Links = BTreeMap<(usize, usize), VecDeque<(Instant, bytes::Bytes)>>;

struct Sim {
    nodes: Vec<Option<Node>>,
    boots: u64,
    now: Instant,
    links: Links,
    cut: BTreeSet<(usize, usize)>,
    refs: u64,
}

impl Sim {
    fn new() -> Sim {
        let mut sim = Sim {
            nodes: (0..N).map(|_| None).collect(),
            boots: 0,
            now: Instant::now(),
            links: Links::new(),
            cut: BTreeSet::new(),
            refs: 0,
        };
        for at in 0..N {
            sim.boot(at);
        }
        sim
    }

    fn boot(&mut self, at: usize) {
        self.boots += 1;
        let id = ReplicaId::new(format!("n{at}"), self.boots);
        self.nodes[at] = Some(Node {
            tracker: Tracker::new(id.clone()),
            core: Replicator::new(id, timing()),
            client: BTreeMap::new(),
        });
    }

    fn is_cut(&self, a: usize, b: usize) -> bool {
        self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Publishes diffs to the node's client and queues its messages.
    fn effects(&mut self, at: usize, effects: Effects) {
        let Some(node) = self.nodes[at].as_mut() else {
            return;
        };
        for diff in &effects.diffs {
            sync_diff(node.client.entry(diff.topic.clone()).or_default(), diff);
        }
        for out in effects.out {
            let (to, gossip) = match out {
                Outgoing::All(g) => (None, g),
                Outgoing::To(id, g) => (Some(id.node), g),
            };
            let bytes = gossip.encode().expect("encodable");
            for peer in (0..N).filter(|p| *p != at) {
                if to.as_ref().is_none_or(|to| *to == format!("n{peer}")) {
                    self.links
                        .entry((at, peer))
                        .or_default()
                        .push_back((self.now, bytes.clone()));
                }
            }
        }
    }

    fn local(
        &mut self,
        at: usize,
        f: impl FnOnce(&mut Tracker, String) -> Vec<crate::presence::tracker::Diff>,
    ) {
        self.refs += 1;
        let r = format!("ref{}", self.refs);
        let Some(node) = self.nodes[at].as_mut() else {
            return;
        };
        let diffs = f(&mut node.tracker, r);
        self.effects(at, Effects { diffs, out: vec![] });
    }

    fn tick_all(&mut self) {
        for at in 0..N {
            if let Some(node) = self.nodes[at].as_mut() {
                let effects = node.core.tick(&mut node.tracker, self.now);
                self.effects(at, effects);
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, lose: bool) {
        let Some((sent, bytes)) = self
            .links
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return;
        };
        let expired = self.now.saturating_duration_since(sent) > MAX_IN_FLIGHT;
        if lose || expired || self.is_cut(from, to) {
            return;
        }
        let Some(node) = self.nodes[to].as_mut() else {
            return;
        };
        let gossip = Gossip::decode(&bytes).expect("decodable");
        let effects = node.core.receive(&mut node.tracker, gossip, self.now);
        self.effects(to, effects);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Track {
                at,
                owner,
                topic,
                key,
            } => self.local(at, |t, r| {
                let o = t.owner(owner);
                t.track(o, TOPICS[topic], KEYS[key], meta(&r), r)
                    .into_iter()
                    .collect()
            }),
            Op::Update {
                at,
                owner,
                topic,
                key,
            } => self.local(at, |t, r| {
                let o = t.owner(owner);
                t.update(o, TOPICS[topic], KEYS[key], meta(&r), r)
                    .into_iter()
                    .collect()
            }),
            Op::Untrack {
                at,
                owner,
                topic,
                key,
            } => self.local(at, |t, _| {
                let o = t.owner(owner);
                vec![t.untrack(o, TOPICS[topic], KEYS[key])]
            }),
            Op::UntrackOwner { at, owner } => self.local(at, |t, _| {
                let o = t.owner(owner);
                t.untrack_owner(o)
            }),
            Op::Advance { ms } => {
                self.now += Duration::from_millis(ms);
                self.tick_all();
            }
            Op::Deliver { from, to, lose } => self.deliver(from, to, lose),
            Op::Cut { a, b } => {
                self.cut.insert((a.min(b), a.max(b)));
            }
            Op::Heal { a, b } => {
                self.cut.remove(&(a.min(b), a.max(b)));
            }
            Op::Crash { at } => self.nodes[at] = None,
            Op::Leave { at } => {
                if let Some(node) = self.nodes[at].as_ref() {
                    let leave = node.core.leave();
                    self.effects(
                        at,
                        Effects {
                            diffs: vec![],
                            out: vec![Outgoing::All(leave)],
                        },
                    );
                    self.nodes[at] = None;
                }
            }
            Op::Restart { at } => self.boot(at),
        }
    }

    /// Each running node's client shows exactly that node's list.
    fn check_clients(&self) {
        for node in self.nodes.iter().flatten() {
            for topic in TOPICS {
                let client = node.client.get(topic).cloned().unwrap_or_default();
                assert_eq!(
                    as_sets(&client),
                    as_sets(&from_list(&node.tracker.list(topic))),
                    "{} {topic}: client and list differ",
                    node.tracker.replica()
                );
            }
        }
    }

    /// Heals every link and runs the cluster without loss for a while.
    fn settle(&mut self) {
        self.cut.clear();
        let rounds = (timing().down_period.as_millis() / PERIOD.as_millis()) as usize + 30;
        for _ in 0..rounds {
            self.now += PERIOD;
            self.tick_all();
            let links: Vec<(usize, usize)> = self.links.keys().copied().collect();
            for (from, to) in links {
                while self.links.get(&(from, to)).is_some_and(|q| !q.is_empty()) {
                    self.deliver(from, to, false);
                }
            }
            self.check_clients();
        }
    }

    /// What every running node should list on `topic`: key -> refs of the
    /// presences the running nodes track themselves.
    fn truth(&self, topic: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut truth: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for node in self.nodes.iter().flatten() {
            let me = node.tracker.replica().clone();
            for key in KEYS {
                for owner in 0..3 {
                    let o = crate::presence::tracker::OwnerId::new(me.clone(), owner);
                    if let Some(m) = node.tracker.get(o, topic, key) {
                        truth.entry(key.to_owned()).or_default().insert(ref_of(m));
                    }
                }
            }
        }
        truth
    }
}

fn meta(r: &str) -> Meta {
    let mut m = Meta::new();
    m.insert("r".into(), r.into());
    m
}

fn ref_of(m: &Meta) -> String {
    m["phx_ref"].as_str().unwrap_or_default().to_owned()
}

fn listed(t: &Tracker, topic: &str) -> BTreeMap<String, BTreeSet<String>> {
    t.list(topic)
        .0
        .into_iter()
        .map(|(k, metas)| (k, metas.iter().map(ref_of).collect()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random loss, partitions, heals, crashes, restarts and leaves: once
    /// healed, every running node lists exactly the running nodes' presences.
    #[test]
    fn nodes_converge_with_no_ghost_and_no_lost_presence(ops in prop::collection::vec(op(), 0..150)) {
        let mut sim = Sim::new();
        for op in ops {
            sim.apply(op);
            sim.check_clients();
        }
        sim.settle();
        for topic in TOPICS {
            let truth = sim.truth(topic);
            for node in sim.nodes.iter().flatten() {
                prop_assert_eq!(&listed(&node.tracker, topic), &truth, "{} on {}", topic, node.tracker.replica());
            }
        }
    }
}
