//! End-to-end: a deploy on a 2-node cluster loses no presence. Two
//! `fawkes serve` nodes share a real `redis-server` (one per test, on a free
//! port). Clients tracked in presence on node A; A gets SIGTERM and drains
//! them in batches; each client, once closed, reconnects to node B the way
//! phoenix.js does (back-off 10, 50, 100 ms ...) and rejoins with the same
//! user. Afterwards every user is listed on B exactly once (one meta, the
//! one from B: no ghost left over from A), and stays listed after A has
//! gone: the leaves A sends while it shuts down remove A's metas only, never
//! the users that already rejoined on B.

#![cfg(unix)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::binary::{get, Fawkes};
use support::presence_sync::SyncGate;
use support::redis::RedisServer;
use support::watcher::SETTLE;
use support::Client;
use tokio_tungstenite::tungstenite::Message;

/// Clients on node A (the test's share of the 2,000-client benchmark).
const CLIENTS: usize = 24;
/// phoenix.js's default reconnect back-off, in ms.
const BACKOFF_MS: [u64; 9] = [10, 50, 100, 150, 200, 250, 500, 1000, 2000];

/// Node A drains 6 sessions every 400 ms; a peer is counted down only
/// after a minute of silence, so only A's own leaves (and goodbye) can make
/// its users leave B's list within this test.
const CLUSTER: &str = "[cluster]\ndown_period_ms = 60000\npermdown_period_ms = 120000\n\
                       [presence]\nbatch_window_ms = 0\n\
                       [drain]\nbatch_size = 6\nbatch_interval_ms = 400\nperiod_ms = 20000\n";

async fn node(redis: &RedisServer, name: &str) -> Fawkes {
    let url = redis.url();
    Fawkes::start(
        Some(CLUSTER),
        &[
            ("FAWKES_REDIS_URL", url.as_str()),
            ("FAWKES_NODE_NAME", name),
            ("NO_COLOR", "1"),
        ],
    )
    .await
}

/// A presence list as phoenix.js keeps it: user -> the `phx_ref`s of its
/// metas.
#[derive(Debug, Default, Clone, PartialEq)]
struct Presences {
    map: BTreeMap<String, BTreeSet<String>>,
    /// Diffs before the first state wait for it, as in phoenix.js.
    gate: SyncGate,
}

impl Presences {
    fn refs(entry: &Value) -> BTreeSet<String> {
        entry["metas"]
            .as_array()
            .map(|metas| {
                metas
                    .iter()
                    .filter_map(|m| m["phx_ref"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Take one server frame, in phoenix.js's order.
    fn apply(&mut self, frame: &Value) {
        for frame in self.gate.admit(frame) {
            self.sync(&frame);
        }
    }

    /// Apply one `presence_state` or `presence_diff`.
    fn sync(&mut self, frame: &Value) {
        let entries = |v: &Value| -> Vec<(String, BTreeSet<String>)> {
            v.as_object()
                .map(|o| o.iter().map(|(k, e)| (k.clone(), Self::refs(e))).collect())
                .unwrap_or_default()
        };
        match frame[3].as_str() {
            Some("presence_state") => self.map = entries(&frame[4]).into_iter().collect(),
            Some("presence_diff") => {
                for (user, refs) in entries(&frame[4]["joins"]) {
                    self.map.entry(user).or_default().extend(refs);
                }
                for (user, refs) in entries(&frame[4]["leaves"]) {
                    if let Some(mine) = self.map.get_mut(&user) {
                        mine.retain(|r| !refs.contains(r));
                        if mine.is_empty() {
                            self.map.remove(&user);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn users(&self) -> BTreeSet<String> {
        self.map.keys().cloned().collect()
    }

    /// Users listed with more than one meta.
    fn ghosts(&self) -> Vec<(&String, usize)> {
        self.map
            .iter()
            .filter(|(_, refs)| refs.len() != 1)
            .map(|(user, refs)| (user, refs.len()))
            .collect()
    }
}

/// A client of `room:lobby` that keeps its presence list.
struct Member {
    client: Client,
    list: Presences,
}

impl Member {
    async fn connect(port: u16, user: &str) -> Result<Member, String> {
        let url = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user={user}");
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async_with_config(url, None, true),
        )
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        let mut member = Member {
            client: Client { ws },
            list: Presences::default(),
        };
        member
            .client
            .send_json(json!(["1", "1", "room:lobby", "phx_join", {}]))
            .await;
        loop {
            match member.next().await? {
                Some(frame) if frame[3] == "phx_reply" && frame[1] == "1" => {
                    return match frame[4]["status"].as_str() {
                        Some("ok") => Ok(member),
                        _ => Err(format!("join refused: {frame}")),
                    };
                }
                Some(_) => {}
                None => return Err("closed while joining".into()),
            }
        }
    }

    /// The next text frame (applied to the list), `None` once closed, an
    /// error after 30 s of nothing.
    async fn next(&mut self) -> Result<Option<Value>, String> {
        loop {
            let next = tokio::time::timeout(SETTLE, self.client.ws.next())
                .await
                .map_err(|_| "nothing for 30 s".to_owned())?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    self.list.apply(&frame);
                    return Ok(Some(frame));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(None),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The close code the server sends, reading everything before it.
    async fn until_closed(&mut self) -> Result<Option<u16>, String> {
        loop {
            let next = tokio::time::timeout(SETTLE, self.client.ws.next())
                .await
                .map_err(|_| "not closed within 30 s".to_owned())?;
            match next {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Text(text))) => {
                    if let Ok(frame) = serde_json::from_str::<Value>(&text) {
                        self.list.apply(&frame);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ok(None),
            }
        }
    }

    /// Read until `done` holds on the list (at most `within`).
    async fn until(&mut self, within: Duration, done: impl Fn(&Presences) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !done(&self.list) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.next()).await {
                Ok(Ok(Some(_))) => {}
                _ => return false,
            }
        }
        true
    }
}

/// What one drained client went through.
struct Moved {
    user: String,
    close: Option<u16>,
    tries: usize,
    member: Member,
}

/// Wait for A to close `member`, then reconnect to B like phoenix.js.
async fn drained_then_rejoined(mut member: Member, user: String, b_port: u16) -> Moved {
    let close = member.until_closed().await.expect("closed by the drain");
    for tries in 0..20 {
        let wait = BACKOFF_MS.get(tries).copied().unwrap_or(5000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Ok(member) = Member::connect(b_port, &user).await {
            return Moved {
                user,
                close,
                tries: tries + 1,
                member,
            };
        }
    }
    panic!("{user} could not rejoin on node B");
}

#[tokio::test]
async fn drained_clients_rejoin_the_other_node_and_none_loses_presence() {
    let redis = RedisServer::start();
    let mut a = node(&redis, "node_a").await;
    let b = node(&redis, "node_b").await;
    let users: Vec<String> = (0..CLIENTS).map(|i| format!("u{i}")).collect();
    let mut everyone: BTreeSet<String> = users.iter().cloned().collect();
    everyone.insert("observer".into());

    // An observer on B, the clients on A; everyone sees everyone.
    let mut observer = Member::connect(b.port, "observer").await.expect("observer");
    let mut members = Vec::new();
    for user in &users {
        members.push(Member::connect(a.port, user).await.expect("join on A"));
    }
    assert!(
        observer
            .until(SETTLE, |list| list.users() == everyone)
            .await,
        "observer lists {:?}",
        observer.list.users()
    );
    let last = members.last_mut().expect("clients");
    assert!(last.until(SETTLE, |list| list.users() == everyone).await);
    let before: BTreeMap<String, BTreeSet<String>> = observer.list.map.clone();

    // Deploy: SIGTERM node A; the clients move to B as it drains them.
    let a_pid = a.pid().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &a_pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let tasks: Vec<_> = members
        .into_iter()
        .zip(users.iter().cloned())
        .map(|(member, user)| tokio::spawn(drained_then_rejoined(member, user, b.port)))
        .collect();
    let mut moved = Vec::new();
    for task in tasks {
        moved.push(task.await.expect("client task"));
    }
    let codes: BTreeSet<Option<u16>> = moved.iter().map(|m| m.close).collect();
    assert_eq!(codes, BTreeSet::from([Some(1012)]), "close codes");
    // Node A is gone for good: its shutdown (leaves, goodbye) is over.
    a.terminate().await;

    // On B, every user is listed once, with a meta that is not A's.
    let moved_to_b = |list: &Presences| {
        list.users() == everyone
            && list.ghosts().is_empty()
            && users.iter().all(|u| list.map[u].is_disjoint(&before[u]))
    };
    assert!(
        observer.until(SETTLE, moved_to_b).await,
        "observer on B: missing {:?}, ghosts {:?}, still with A's meta {:?}",
        everyone
            .difference(&observer.list.users())
            .collect::<Vec<_>>(),
        observer.list.ghosts(),
        users
            .iter()
            .filter(|u| observer
                .list
                .map
                .get(*u)
                .is_some_and(|r| !r.is_disjoint(&before[*u])))
            .collect::<Vec<_>>()
    );
    // It stays that way: nothing late from A's shutdown removes anyone.
    observer.until(Duration::from_secs(2), |_| false).await;
    assert_eq!(observer.list.users(), everyone, "after A's shutdown");
    assert!(
        observer.list.ghosts().is_empty(),
        "{:?}",
        observer.list.ghosts()
    );

    // Each moved client's own list (state on its rejoin, then diffs)
    // converges to the same users, each once.
    for m in &mut moved {
        let reached = m
            .member
            .until(SETTLE, |list| {
                list.users() == everyone && list.ghosts().is_empty()
            })
            .await;
        assert!(
            reached,
            "{} lists {:?} (ghosts {:?})",
            m.user,
            m.member.list.users(),
            m.member.list.ghosts()
        );
    }
    // The node's own count agrees: one entry per user.
    let (status, metrics) = get(b.port, "/metrics").await;
    assert_eq!(status, 200);
    let entries = metrics.lines().find_map(|l| {
        l.strip_prefix("fawkes_presence_entries ")?
            .parse::<u64>()
            .ok()
    });
    assert_eq!(
        entries,
        Some(everyone.len() as u64),
        "presence entries on B"
    );
    let tries: Vec<usize> = moved.iter().map(|m| m.tries).collect();
    println!("drained {CLIENTS} clients from A to B; connect attempts each: {tries:?}");
}
