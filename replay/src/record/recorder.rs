//! Turning proxied traffic into transcripts: grouping the connections that
//! interact, ordering actions and observations, marking pipelined actions
//! and server-initiated pushes, cutting at the size bound, and writing the
//! files.
//!
//! Grouping is by time window by default: a transcript starts with the
//! first event while no transcript is open, takes every connection and HTTP
//! exchange that happens while it is open, and ends once all its websockets
//! are closed and nothing happened for the idle gap. So a broadcast one
//! client receives is in the same file as the push of the client that
//! caused it. With [`Grouping::Topic`], every connection starts a
//! transcript of its own and transcripts merge when their connections (or
//! HTTP exchanges) share a topic; each ends on its own idle gap.
//!
//! Everything here runs in the recorder task; the proxy only hands it
//! events through a bounded queue and never waits for it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::sync::mpsc::Receiver;

use super::filter::{binary_topic, text_topic, Filter};
use super::grouping::{body_topics, links, longpoll_session, Grouping};
use crate::transcript::{
    HttpRequestSpec, RawClose, RawClosed, RawConnect, RawConnected, RawFrame, RawHttpResponse,
    RawRecv, RawStep, Transcript,
};

/// A frame as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// What the proxy reports to the recorder.
#[derive(Debug, Clone)]
pub enum Event {
    /// A websocket handshake was answered by the upstream (101 or a refusal).
    Connect {
        /// Proxy-wide connection id.
        id: u64,
        /// Endpoint path.
        path: String,
        /// Query parameters in order.
        query: Vec<(String, String)>,
        /// The upstream's answer.
        status: u16,
    },
    /// The client sent a frame.
    ClientFrame {
        /// Connection id.
        id: u64,
        /// The frame.
        frame: Payload,
    },
    /// The client started the closing handshake.
    ClientClose {
        /// Connection id.
        id: u64,
        /// Its close code.
        code: u16,
    },
    /// The upstream sent a frame.
    ServerFrame {
        /// Connection id.
        id: u64,
        /// The frame.
        frame: Payload,
    },
    /// The upstream closed (code `None`: the TCP connection dropped).
    ServerClose {
        /// Connection id.
        id: u64,
        /// The close code.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// Both sides of a websocket are done.
    Gone {
        /// Connection id.
        id: u64,
    },
    /// A recorded HTTP exchange, reported when its response is complete.
    Http {
        /// When the request arrived: the exchange is placed there, before
        /// what the request caused while its response was on its way.
        sent_at: Instant,
        /// The request as forwarded.
        request: HttpRequestSpec,
        /// The response status.
        status: u16,
        /// The response body (lossy UTF-8).
        body: String,
    },
}

/// How transcripts are cut and timed.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Where transcripts are written.
    pub out: PathBuf,
    /// The settle window written into transcripts and used to tell
    /// pipelined actions and server-initiated pushes.
    pub settle: Duration,
    /// A transcript with no open websocket ends after this long without events.
    pub idle_gap: Duration,
    /// Pauses longer than the settle window by at least this become `sleep_ms`.
    pub min_pause: Duration,
    /// Longest `sleep_ms` written.
    pub max_pause: Duration,
    /// A transcript is cut once its JSON would exceed this many bytes.
    pub max_file_bytes: usize,
    /// Redaction and topic filter.
    pub filter: Filter,
    /// Which connections share a transcript.
    pub grouping: Grouping,
}

/// What a transcript holds before it is written: its actions and
/// observations with their times. Steps (with their `pipelined`,
/// `server_initiated` and pause marks) are made when it is written, so that
/// two transcripts can be merged when topic grouping finds they interact.
struct Group {
    seq: u64,
    entries: Vec<Entry>,
    /// Connections whose websocket is open.
    open: HashSet<u64>,
    /// Every connection of the transcript.
    conns: HashSet<u64>,
    /// Connections whose client started the closing handshake.
    closing: HashSet<u64>,
    /// Time of the last action or observation kept.
    last_event: Instant,
    /// Whether an action has been kept yet.
    has_action: bool,
    /// Size of the steps so far (pause steps aside).
    bytes: usize,
    started: SystemTime,
}

struct Entry {
    at: Instant,
    /// The connection (proxy id) the steps belong to; `None` for HTTP.
    conn: Option<u64>,
    kind: EntryKind,
}

enum EntryKind {
    /// A client action: its step and the step paired with it.
    Action(Vec<RawStep>),
    /// Something the server sent; `may_be_unprompted` is false for replies.
    Observation {
        recv: RawRecv,
        may_be_unprompted: bool,
    },
}

impl Group {
    fn new(seq: u64, at: Instant) -> Self {
        Self {
            seq,
            entries: Vec::new(),
            open: HashSet::new(),
            conns: HashSet::new(),
            closing: HashSet::new(),
            last_event: at,
            has_action: false,
            bytes: 0,
            started: SystemTime::now(),
        }
    }

    fn push(&mut self, at: Instant, conn: Option<u64>, kind: EntryKind) {
        self.bytes += match &kind {
            EntryKind::Action(steps) => steps.iter().map(step_bytes).sum(),
            EntryKind::Observation { recv, .. } => step_bytes(&RawStep {
                recv: Some(recv.clone()),
                ..empty_step()
            }),
        };
        self.has_action |= matches!(kind, EntryKind::Action(_));
        self.last_event = self.last_event.max(at);
        self.entries.push(Entry { at, conn, kind });
    }

    /// Takes `other` in: its entries, connections and times.
    fn absorb(&mut self, other: Group) {
        self.entries.extend(other.entries);
        self.open.extend(other.open);
        self.conns.extend(other.conns);
        self.closing.extend(other.closing);
        self.last_event = self.last_event.max(other.last_event);
        self.has_action |= other.has_action;
        self.bytes += other.bytes;
        self.started = self.started.min(other.started);
    }
}

/// The recorder's state; [`Recorder::run`] drives it from the event queue.
pub struct Recorder {
    config: RecorderConfig,
    /// Open transcripts by id (at most one with time grouping).
    groups: HashMap<u64, Group>,
    /// The open transcript of each recorded connection.
    conn_group: HashMap<u64, u64>,
    /// Topic grouping: the open transcript of each topic.
    topic_group: HashMap<String, u64>,
    /// Topic grouping: the open transcript of each LongPoll session.
    session_group: HashMap<String, u64>,
    /// Connections of a cut or dropped transcript: not recorded any more.
    detached: HashSet<u64>,
    next_seq: u64,
    written: Vec<PathBuf>,
}

impl Recorder {
    /// A recorder writing into `config.out`.
    pub fn new(config: RecorderConfig) -> Self {
        Self {
            config,
            groups: HashMap::new(),
            conn_group: HashMap::new(),
            topic_group: HashMap::new(),
            session_group: HashMap::new(),
            detached: HashSet::new(),
            next_seq: 1,
            written: Vec::new(),
        }
    }

    /// Files written so far.
    pub fn written(&self) -> &[PathBuf] {
        &self.written
    }

    /// Consumes events until the queue closes or `stop` resolves, ending
    /// transcripts when they go idle; `lost` tells whether the proxy had to
    /// drop an event (the open transcripts are then dropped, never the
    /// traffic).
    pub async fn run(
        mut self,
        mut events: Receiver<(Instant, Event)>,
        lost: std::sync::Arc<std::sync::atomic::AtomicU64>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Vec<PathBuf> {
        let mut seen_lost = 0;
        tokio::pin!(stop);
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            let deadline = self.idle_deadline().unwrap_or(far);
            let next = tokio::select! {
                next = events.recv() => next,
                () = tokio::time::sleep_until(deadline.into()) => {
                    self.finish_idle(Instant::now());
                    continue;
                }
                () = &mut stop => break,
            };
            let Some((at, event)) = next else { break };
            let now_lost = lost.load(std::sync::atomic::Ordering::SeqCst);
            if now_lost != seen_lost {
                seen_lost = now_lost;
                tracing::warn!("recording queue overflowed: the open transcripts are dropped");
                self.drop_groups();
            }
            self.handle(at, event);
        }
        self.finish();
        self.written
    }

    fn deadline_of(&self, group: &Group) -> Option<Instant> {
        group
            .open
            .is_empty()
            .then(|| group.last_event + self.config.idle_gap)
    }

    /// The earliest time an open transcript goes idle.
    fn idle_deadline(&self) -> Option<Instant> {
        self.groups
            .values()
            .filter_map(|g| self.deadline_of(g))
            .min()
    }

    /// Writes every transcript that is idle at `now`.
    fn finish_idle(&mut self, now: Instant) {
        let mut idle: Vec<(u64, u64)> = self
            .groups
            .iter()
            .filter(|(_, g)| self.deadline_of(g).is_some_and(|d| now >= d))
            .map(|(&id, g)| (g.seq, id))
            .collect();
        idle.sort_unstable();
        for (_, id) in idle {
            self.finish_group(id);
        }
    }

    /// Processes one event stamped `at`.
    pub fn handle(&mut self, at: Instant, event: Event) {
        self.finish_idle(at);
        let touched = match event {
            Event::Connect {
                id,
                path,
                query,
                status,
            } => {
                let query = self.config.filter.redact_pairs(query);
                let gid = match self.config.grouping {
                    Grouping::Time => self.current_group(at),
                    Grouping::Topic => self.new_group(at),
                };
                self.conn_group.insert(id, gid);
                let group = self.groups.get_mut(&gid);
                let Some(group) = group else { return };
                group.conns.insert(id);
                if status == 101 {
                    group.open.insert(id);
                }
                let connect = RawStep {
                    connect: Some(RawConnect { path, query }),
                    ..empty_step()
                };
                let connected = RawStep {
                    connected: Some(RawConnected { status }),
                    ..empty_step()
                };
                group.push(at, Some(id), EntryKind::Action(vec![connect, connected]));
                Some(gid)
            }
            Event::ClientFrame { id, frame } => {
                if !self.keeps(&frame) {
                    return;
                }
                if self.config.grouping == Grouping::Topic {
                    if let Some(topic) = frame_topic(&frame).filter(|t| links(t)) {
                        self.link_conn(id, &topic);
                    }
                }
                let frame = self.redact(frame);
                let Some((gid, group)) = self.conn(id) else {
                    return;
                };
                let send = RawStep {
                    send: Some(raw_frame(&frame)),
                    ..empty_step()
                };
                group.push(at, Some(id), EntryKind::Action(vec![send]));
                Some(gid)
            }
            Event::ClientClose { id, code } => {
                let Some((gid, group)) = self.conn(id) else {
                    return;
                };
                group.closing.insert(id);
                let close = RawStep {
                    close: Some(RawClose { code: Some(code) }),
                    ..empty_step()
                };
                group.push(at, Some(id), EntryKind::Action(vec![close]));
                Some(gid)
            }
            Event::ServerFrame { id, frame } => {
                if !self.keeps(&frame) {
                    return;
                }
                let frame = self.redact(frame);
                let is_reply = matches!(&frame, Payload::Text(t) if is_reply_text(t))
                    || matches!(&frame, Payload::Binary(b) if b.first() == Some(&1));
                let Some((gid, group)) = self.conn(id) else {
                    return;
                };
                // A browser drops what arrives after it called close().
                if group.closing.contains(&id) {
                    return;
                }
                let recv = match frame {
                    Payload::Text(text) => RawRecv {
                        text: Some(text),
                        binary_b64: None,
                        closed: None,
                    },
                    Payload::Binary(data) => RawRecv {
                        text: None,
                        binary_b64: Some(base64::engine::general_purpose::STANDARD.encode(data)),
                        closed: None,
                    },
                };
                group.push(
                    at,
                    Some(id),
                    EntryKind::Observation {
                        recv,
                        may_be_unprompted: !is_reply,
                    },
                );
                Some(gid)
            }
            Event::ServerClose { id, code, reason } => {
                let Some((gid, group)) = self.conn(id) else {
                    return;
                };
                let recv = RawRecv {
                    text: None,
                    binary_b64: None,
                    closed: Some(RawClosed { code, reason }),
                };
                group.push(
                    at,
                    Some(id),
                    EntryKind::Observation {
                        recv,
                        may_be_unprompted: true,
                    },
                );
                Some(gid)
            }
            Event::Gone { id } => {
                self.detached.remove(&id);
                if let Some(group) = self
                    .conn_group
                    .get(&id)
                    .and_then(|gid| self.groups.get_mut(gid))
                {
                    group.open.remove(&id);
                }
                None
            }
            Event::Http {
                sent_at,
                request,
                status,
                body,
            } => {
                // A LongPoll poll is placed where it completed: it waits
                // for what later actions cause. Anything else (a LongPoll
                // POST too) where it was sent: what it causes (a broadcast
                // to a websocket, a reply buffered for the next poll) may
                // reach the recorder before its response does.
                let poll = request.method.eq_ignore_ascii_case("GET");
                let placed = if is_longpoll(&request.path) && poll {
                    at
                } else {
                    sent_at.min(at)
                };
                Some(self.http(placed, request, status, body))
            }
        };
        if let Some(gid) = touched {
            self.cut_if_too_big(gid);
        }
    }

    /// Records an HTTP exchange; returns its transcript.
    fn http(
        &mut self,
        at: Instant,
        mut request: HttpRequestSpec,
        status: u16,
        body: String,
    ) -> u64 {
        let gid = match self.config.grouping {
            Grouping::Time => self.current_group(at),
            Grouping::Topic => {
                // Keys taken before redaction, which may hide the token.
                let session = longpoll_session(&request.path, &body);
                let mut topics = body_topics(&request.body);
                topics.extend(body_topics(&body));
                let mut found: Vec<u64> = session
                    .iter()
                    .filter_map(|s| self.session_group.get(s))
                    .chain(topics.iter().filter_map(|t| self.topic_group.get(t)))
                    .copied()
                    .collect();
                found.sort_unstable();
                found.dedup();
                let gid = match found.split_first() {
                    Some((&first, rest)) => rest.iter().fold(first, |a, &b| self.merge(a, b)),
                    None => self.new_group(at),
                };
                if let Some(session) = session {
                    self.session_group.insert(session, gid);
                }
                for topic in topics {
                    self.topic_group.insert(topic, gid);
                }
                gid
            }
        };
        request.path = self.config.filter.redact_path(&request.path);
        request.body = self.config.filter.redact_text(&request.body);
        for (k, v) in &mut request.headers {
            if self
                .config
                .filter
                .redact
                .iter()
                .any(|r| r.eq_ignore_ascii_case(k))
            {
                *v = super::filter::REDACTED.to_owned();
            }
        }
        let body = self.config.filter.redact_text(&body);
        if let Some(group) = self.groups.get_mut(&gid) {
            let http = RawStep {
                http: Some(request),
                ..empty_step()
            };
            let response = RawStep {
                http_response: Some(RawHttpResponse { status, body }),
                ..empty_step()
            };
            group.push(at, None, EntryKind::Action(vec![http, response]));
        }
        gid
    }

    /// Topic grouping: ties connection `id` to `topic`, merging its
    /// transcript with the one already holding the topic.
    fn link_conn(&mut self, id: u64, topic: &str) {
        if self.detached.contains(&id) {
            return;
        }
        let Some(&gid) = self.conn_group.get(&id) else {
            return;
        };
        let gid = match self.topic_group.get(topic) {
            Some(&other) if other != gid => self.merge(other, gid),
            _ => gid,
        };
        self.topic_group.insert(topic.to_owned(), gid);
    }

    /// Merges transcripts `a` and `b` into the older one; returns its id.
    fn merge(&mut self, a: u64, b: u64) -> u64 {
        if a == b {
            return a;
        }
        let (keep, gone) = (a.min(b), a.max(b));
        let Some(other) = self.groups.remove(&gone) else {
            return keep;
        };
        let Some(group) = self.groups.get_mut(&keep) else {
            self.groups.insert(gone, other);
            return gone;
        };
        group.absorb(other);
        for map in [&mut self.topic_group, &mut self.session_group] {
            map.values_mut()
                .filter(|g| **g == gone)
                .for_each(|g| *g = keep);
        }
        self.conn_group
            .values_mut()
            .filter(|g| **g == gone)
            .for_each(|g| *g = keep);
        keep
    }

    fn keeps(&self, frame: &Payload) -> bool {
        if self.config.filter.topics.is_empty() {
            return true;
        }
        frame_topic(frame).is_some_and(|t| self.config.filter.keeps_topic(&t))
    }

    fn redact(&self, frame: Payload) -> Payload {
        match frame {
            Payload::Text(t) => Payload::Text(self.config.filter.redact_text(&t)),
            other => other,
        }
    }

    /// The open transcript of connection `id`, unless the connection is not
    /// recorded (cut, dropped, or unknown).
    fn conn(&mut self, id: u64) -> Option<(u64, &mut Group)> {
        if self.detached.contains(&id) {
            return None;
        }
        let gid = *self.conn_group.get(&id)?;
        Some((gid, self.groups.get_mut(&gid)?))
    }

    /// Time grouping: the open transcript, or a new one.
    fn current_group(&mut self, at: Instant) -> u64 {
        match self.groups.keys().next() {
            Some(&gid) => gid,
            None => self.new_group(at),
        }
    }

    fn new_group(&mut self, at: Instant) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.groups.insert(seq, Group::new(seq, at));
        seq
    }

    fn cut_if_too_big(&mut self, gid: u64) {
        if self
            .groups
            .get(&gid)
            .is_some_and(|g| g.bytes > self.config.max_file_bytes)
        {
            tracing::info!("transcript reached the size bound: cut");
            self.finish_group(gid);
        }
    }

    /// Removes transcript `gid` and everything pointing at it; its open
    /// connections are no longer recorded.
    fn take_group(&mut self, gid: u64) -> Option<Group> {
        let group = self.groups.remove(&gid)?;
        self.detached.extend(group.open.iter().copied());
        for conn in &group.conns {
            self.conn_group.remove(conn);
        }
        self.topic_group.retain(|_, g| *g != gid);
        self.session_group.retain(|_, g| *g != gid);
        Some(group)
    }

    fn drop_groups(&mut self) {
        let ids: Vec<u64> = self.groups.keys().copied().collect();
        for gid in ids {
            self.take_group(gid);
        }
    }

    /// Ends every open transcript and writes it; their connections still
    /// open are not recorded any further.
    pub fn finish(&mut self) {
        let mut ids: Vec<u64> = self.groups.keys().copied().collect();
        ids.sort_unstable();
        for gid in ids {
            self.finish_group(gid);
        }
    }

    /// Ends transcript `gid` and writes it.
    fn finish_group(&mut self, gid: u64) {
        let Some(group) = self.take_group(gid) else {
            return;
        };
        if !group.has_action {
            return;
        }
        let secs = group
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let scenario = format!("recorded-{secs}-{:04}", group.seq);
        let connections = group.conns.len();
        let pauses = (self.config.min_pause, self.config.max_pause);
        let steps = build_steps(group.entries, self.config.settle, pauses);
        let transcript = Transcript {
            scenario: scenario.clone(),
            description: format!("recorded by fawkes record: {connections} connection(s)"),
            server: serde_json::Value::Null,
            settle_ms: Some(u64::try_from(self.config.settle.as_millis()).unwrap_or(u64::MAX)),
            steps,
        };
        let path = self.config.out.join(format!("{scenario}.json"));
        let written = transcript
            .to_json()
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(&path, json).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                tracing::info!(path = %path.display(), "transcript written");
                self.written.push(path);
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "transcript not written: dropped")
            }
        }
    }
}

/// Whether an HTTP path (with its query) is a LongPoll endpoint.
fn is_longpoll(path: &str) -> bool {
    path.split('?')
        .next()
        .unwrap_or(path)
        .ends_with("/longpoll")
}

/// The topic of a frame, if it has one.
fn frame_topic(frame: &Payload) -> Option<String> {
    match frame {
        Payload::Text(t) => text_topic(t),
        Payload::Binary(b) => binary_topic(b),
    }
}

/// The steps of a transcript from its entries in time order: connections
/// named `c1`, `c2`, … in order of appearance, actions marked pipelined or
/// preceded by pauses, late pushes marked server-initiated.
fn build_steps(
    mut entries: Vec<Entry>,
    settle: Duration,
    pauses: (Duration, Duration),
) -> Vec<RawStep> {
    entries.sort_by_key(|e| e.at);
    let Some(first) = entries.first() else {
        return Vec::new();
    };
    let mut timeline = Timeline {
        steps: Vec::new(),
        last_event: first.at,
        has_action: false,
        observed_since_action: false,
    };
    let mut names: HashMap<u64, String> = HashMap::new();
    for entry in entries {
        let name = entry.conn.map(|id| {
            let next = format!("c{}", names.len() + 1);
            names.entry(id).or_insert(next).clone()
        });
        match entry.kind {
            EntryKind::Action(mut steps) => {
                for step in &mut steps {
                    step.conn.clone_from(&name);
                }
                push_action(&mut timeline, entry.at, settle, pauses, steps);
            }
            EntryKind::Observation {
                recv,
                may_be_unprompted,
            } => {
                let step = RawStep {
                    conn: name,
                    recv: Some(recv),
                    ..empty_step()
                };
                push_observation(
                    &mut timeline,
                    entry.at,
                    settle,
                    pauses,
                    step,
                    may_be_unprompted,
                );
            }
        }
    }
    timeline.steps
}

/// Steps being laid out in time order.
struct Timeline {
    steps: Vec<RawStep>,
    /// Time of the last action or observation.
    last_event: Instant,
    /// Whether an action has been laid out yet.
    has_action: bool,
    /// Whether something arrived since the last action: an action after it
    /// may be a reaction to it (the client may have waited for a frame on
    /// any of its connections), so it is never pipelined.
    observed_since_action: bool,
}

fn is_reply_text(text: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => items.len() == 5 && items[3] == "phx_reply",
        Ok(serde_json::Value::Object(map)) => map.get("event").is_some_and(|e| e == "phx_reply"),
        _ => false,
    }
}

fn raw_frame(frame: &Payload) -> RawFrame {
    match frame {
        Payload::Text(t) => RawFrame {
            text: Some(t.clone()),
            binary_b64: None,
        },
        Payload::Binary(b) => RawFrame {
            text: None,
            binary_b64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
        },
    }
}

fn empty_step() -> RawStep {
    RawStep {
        conn: None,
        connect: None,
        connected: None,
        send: None,
        recv: None,
        close: None,
        http: None,
        http_response: None,
        sleep_ms: None,
        pipelined: false,
        server_initiated: false,
    }
}

fn step_bytes(step: &RawStep) -> usize {
    serde_json::to_string(step).map_or(0, |s| s.len() + 4)
}

/// A `sleep_ms` step for a pause longer than the settle window, if any.
fn pause_step(gap: Duration, settle: Duration, pauses: (Duration, Duration)) -> Option<RawStep> {
    let (min, max) = pauses;
    let extra = gap.checked_sub(settle)?;
    if extra < min {
        return None;
    }
    let ms = u64::try_from(extra.min(max).as_millis()).unwrap_or(u64::MAX);
    Some(RawStep {
        sleep_ms: Some(ms),
        ..empty_step()
    })
}

/// Appends an action (its step and paired step): `pipelined` when it came
/// within the settle window of the previous event with nothing received
/// since the previous action (the client did not wait for an answer),
/// preceded by a pause when it came long after the previous event.
fn push_action(
    timeline: &mut Timeline,
    at: Instant,
    settle: Duration,
    pauses: (Duration, Duration),
    mut steps: Vec<RawStep>,
) {
    let gap = at.saturating_duration_since(timeline.last_event);
    if timeline.has_action {
        if gap < settle {
            if let Some(first) = steps
                .first_mut()
                .filter(|_| !timeline.observed_since_action)
            {
                first.pipelined = true;
            }
        } else if let Some(sleep) = pause_step(gap, settle, pauses) {
            timeline.steps.push(sleep);
        }
    }
    timeline.steps.extend(steps);
    timeline.has_action = true;
    timeline.observed_since_action = false;
    timeline.last_event = timeline.last_event.max(at);
}

/// Appends an observation: a push (not a reply) arriving more than the
/// settle window after everything else is marked server-initiated, after a
/// pause step that lets replay wait for it; a late reply gets no pause, so
/// it stays with its action.
fn push_observation(
    timeline: &mut Timeline,
    at: Instant,
    settle: Duration,
    pauses: (Duration, Duration),
    mut step: RawStep,
    may_be_unprompted: bool,
) {
    let gap = at.saturating_duration_since(timeline.last_event);
    let late = gap > settle;
    // A late reply still belongs to the action it answers: no pause that
    // would part them.
    if late && timeline.has_action && may_be_unprompted {
        if let Some(sleep) = pause_step(gap, settle, pauses) {
            timeline.steps.push(sleep);
        }
    }
    step.server_initiated = late && may_be_unprompted;
    timeline.observed_since_action = true;
    timeline.steps.push(step);
    timeline.last_event = timeline.last_event.max(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> RecorderConfig {
        RecorderConfig {
            out: dir.to_owned(),
            settle: Duration::from_millis(300),
            idle_gap: Duration::from_millis(1000),
            min_pause: Duration::from_millis(50),
            max_pause: Duration::from_secs(10),
            max_file_bytes: 1 << 20,
            filter: Filter::default(),
            grouping: Grouping::Time,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fawkes-rec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn text(t: &str) -> Payload {
        Payload::Text(t.to_owned())
    }

    const JOIN: &str = r#"["1","1","room:a","phx_join",{}]"#;
    const REPLY: &str = r#"["1","1","room:a","phx_reply",{"status":"ok","response":{}}]"#;
    const PUSH: &str = r#"["1",null,"room:a","tick",{}]"#;

    fn connect(r: &mut Recorder, at: Instant, id: u64) {
        r.handle(
            at,
            Event::Connect {
                id,
                path: "/socket/websocket".into(),
                query: vec![("vsn".into(), "2.0.0".into())],
                status: 101,
            },
        );
    }

    #[test]
    fn marks_pipelined_actions_late_pushes_and_pauses() {
        let dir = tmp("marks");
        let mut r = Recorder::new(config(&dir));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        connect(&mut r, t0, 1);
        r.handle(
            ms(1),
            Event::ClientFrame {
                id: 1,
                frame: text(JOIN),
            },
        );
        r.handle(
            ms(3),
            Event::ServerFrame {
                id: 1,
                frame: text(REPLY),
            },
        );
        // 2 s later, unprompted: a pause, then a server-initiated push.
        r.handle(
            ms(2003),
            Event::ServerFrame {
                id: 1,
                frame: text(PUSH),
            },
        );
        // A late reply is never server-initiated, and stays with its action
        // (no pause before it).
        r.handle(
            ms(4003),
            Event::ServerFrame {
                id: 1,
                frame: text(REPLY),
            },
        );
        // Right after something arrived: a reaction, not pipelined.
        r.handle(
            ms(4010),
            Event::ClientFrame {
                id: 1,
                frame: text(PUSH),
            },
        );
        r.handle(ms(4020), Event::Gone { id: 1 });
        r.finish();
        let files = r.written().to_vec();
        assert_eq!(files.len(), 1);
        let t = Transcript::load(&files[0]).expect("loads");
        let kinds: Vec<String> = t
            .steps
            .iter()
            .map(|s| serde_json::to_string(s).expect("json"))
            .collect();
        assert!(kinds[2].contains("\"pipelined\":true"), "{kinds:?}");
        assert_eq!(t.steps[4].sleep_ms, Some(1700));
        assert!(t.steps[5].server_initiated);
        assert!(t.steps[6].recv.is_some() && !t.steps[6].server_initiated);
        assert!(t.steps[7].send.is_some() && !t.steps[7].pipelined);
        assert_eq!(
            t.steps.len(),
            8,
            "no pause before the reply or the reaction"
        );
        t.plan().expect("plans");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_action_after_a_frame_on_any_connection_is_not_pipelined() {
        let dir = tmp("pipelined");
        let mut r = Recorder::new(config(&dir));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        connect(&mut r, t0, 1);
        connect(&mut r, ms(1), 2);
        let frame = |id, t: &str| Event::ClientFrame { id, frame: text(t) };
        r.handle(ms(2), frame(1, JOIN));
        r.handle(
            ms(4),
            Event::ServerFrame {
                id: 1,
                frame: text(REPLY),
            },
        );
        // The client may have waited for connection 1's reply before
        // acting on connection 2: not pipelined.
        r.handle(ms(5), frame(2, JOIN));
        // Sent right after, with nothing received in between: pipelined.
        r.handle(ms(6), frame(2, PUSH));
        r.finish();
        let t = Transcript::load(&r.written()[0]).expect("loads");
        let sends: Vec<bool> = t
            .steps
            .iter()
            .filter(|s| s.send.is_some())
            .map(|s| s.pipelined)
            .collect();
        assert_eq!(sends, [true, false, true]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn places_http_and_drops_what_arrives_after_a_client_close() {
        let dir = tmp("placing");
        let mut r = Recorder::new(config(&dir));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let exchange = |path: &str, sent_at| Event::Http {
            sent_at,
            request: HttpRequestSpec {
                method: if path.contains("longpoll") {
                    "GET"
                } else {
                    "POST"
                }
                .into(),
                path: path.into(),
                headers: vec![],
                body: String::new(),
            },
            status: 200,
            body: "{}".into(),
        };
        connect(&mut r, t0, 1);
        r.handle(
            ms(10),
            Event::ClientFrame {
                id: 1,
                frame: text(JOIN),
            },
        );
        r.handle(
            ms(20),
            Event::ServerFrame {
                id: 1,
                frame: text(REPLY),
            },
        );
        // A broadcast request sent at 500 ms whose push came before its
        // response: the request goes first.
        r.handle(
            ms(510),
            Event::ServerFrame {
                id: 1,
                frame: text(PUSH),
            },
        );
        r.handle(ms(520), exchange("/api/broadcast", ms(500)));
        // A poll completing at 900 ms, held open since 600 ms: placed at 900.
        r.handle(
            ms(800),
            Event::ClientFrame {
                id: 1,
                frame: text(JOIN),
            },
        );
        r.handle(ms(900), exchange("/socket/longpoll?token=x", ms(600)));
        // A LongPoll POST sent at 910 whose broadcast reached the websocket
        // (at 920) before the POST's response (at 930): the POST goes first.
        r.handle(
            ms(920),
            Event::ServerFrame {
                id: 1,
                frame: text(PUSH),
            },
        );
        r.handle(
            ms(930),
            Event::Http {
                sent_at: ms(910),
                request: HttpRequestSpec {
                    method: "POST".into(),
                    path: "/socket/longpoll?token=x".into(),
                    headers: vec![],
                    body: String::new(),
                },
                status: 200,
                body: "{\"status\":200}".into(),
            },
        );
        r.handle(ms(1000), Event::ClientClose { id: 1, code: 1000 });
        r.handle(
            ms(1001),
            Event::ServerFrame {
                id: 1,
                frame: text(PUSH),
            },
        );
        r.handle(ms(1002), Event::Gone { id: 1 });
        r.finish();
        let t = Transcript::load(&r.written()[0]).expect("loads");
        let kinds: Vec<&str> = t
            .steps
            .iter()
            .filter_map(|s| {
                if let Some(h) = &s.http {
                    Some(match (h.path.contains("longpoll"), h.method.as_str()) {
                        (true, "GET") => "poll",
                        (true, _) => "post",
                        _ => "api",
                    })
                } else if s.send.is_some() {
                    Some("send")
                } else if s.recv.is_some() {
                    Some("recv")
                } else if s.close.is_some() {
                    Some("close")
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            kinds,
            ["send", "recv", "api", "recv", "send", "poll", "post", "recv", "close"],
            "nothing recorded after the close"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn groups_overlapping_connections_and_splits_idle_ones() {
        let dir = tmp("groups");
        let mut r = Recorder::new(config(&dir));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        connect(&mut r, t0, 1);
        connect(&mut r, ms(500), 2);
        r.handle(ms(600), Event::Gone { id: 1 });
        r.handle(ms(700), Event::Gone { id: 2 });
        // After the idle gap, a new transcript.
        connect(&mut r, ms(5000), 3);
        r.handle(ms(5100), Event::Gone { id: 3 });
        r.finish();
        let files = r.written().to_vec();
        assert_eq!(files.len(), 2);
        let first = Transcript::load(&files[0]).expect("loads");
        let conns: HashSet<_> = first.steps.iter().filter_map(|s| s.conn.clone()).collect();
        assert_eq!(conns.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cuts_at_the_size_bound_and_stops_recording_cut_connections() {
        let dir = tmp("cut");
        let mut cfg = config(&dir);
        cfg.max_file_bytes = 400;
        let mut r = Recorder::new(cfg);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        connect(&mut r, t0, 1);
        for i in 0..20 {
            r.handle(
                ms(400 * (i + 1)),
                Event::ClientFrame {
                    id: 1,
                    frame: text(JOIN),
                },
            );
        }
        connect(&mut r, ms(20_000), 2);
        r.handle(ms(20_001), Event::Gone { id: 2 });
        r.finish();
        let files = r.written().to_vec();
        assert_eq!(files.len(), 2, "{files:?}");
        for f in &files {
            let len = std::fs::metadata(f).expect("meta").len();
            assert!(len < 1000, "{} is {len} bytes", f.display());
        }
        let second = Transcript::load(&files[1]).expect("loads");
        assert!(second
            .steps
            .iter()
            .all(|s| s.conn.as_deref() != Some("c2") || s.send.is_none()));
        assert!(
            second.steps.iter().all(|s| s.send.is_none()),
            "conn 1 is no longer recorded"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_folder_drops_the_transcript_only() {
        let dir = tmp("unwritable");
        let file = dir.join("not-a-dir");
        std::fs::write(&file, "x").expect("write");
        let mut r = Recorder::new(config(&file));
        connect(&mut r, Instant::now(), 1);
        r.finish();
        assert!(r.written().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
    fn join(topic: &str) -> Payload {
        text(&format!(r#"["1","1","{topic}","phx_join",{{}}]"#))
    }

    fn topic_recorder(dir: &std::path::Path) -> Recorder {
        let mut cfg = config(dir);
        cfg.grouping = Grouping::Topic;
        Recorder::new(cfg)
    }

    /// The connections of each written transcript, by the topics they sent to.
    fn topics_per_file(files: &[PathBuf]) -> Vec<Vec<String>> {
        files
            .iter()
            .map(|f| {
                let t = Transcript::load(f).expect("loads");
                let mut topics: Vec<String> = t
                    .steps
                    .iter()
                    .filter_map(|s| {
                        let sent = s.send.as_ref().and_then(|f| f.text.clone());
                        let posted = s.http.as_ref().map(|h| h.body.clone());
                        sent.or(posted).as_deref().and_then(text_topic).or_else(|| {
                            s.http
                                .as_ref()
                                .and_then(|h| body_topics(&h.body).first().cloned())
                        })
                    })
                    .collect();
                topics.sort();
                topics.dedup();
                topics
            })
            .collect()
    }

    #[test]
    fn topic_grouping_keeps_connections_of_a_topic_together() {
        let dir = tmp("by-topic");
        let mut r = topic_recorder(&dir);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // Interleaved in time: 1 and 3 on room:a, 2 on room:b.
        connect(&mut r, t0, 1);
        connect(&mut r, ms(10), 2);
        connect(&mut r, ms(20), 3);
        let send = |r: &mut Recorder, at, id, frame| r.handle(at, Event::ClientFrame { id, frame });
        send(&mut r, ms(30), 1, join("room:a"));
        send(&mut r, ms(40), 2, join("room:b"));
        send(&mut r, ms(50), 3, join("room:a"));
        // A broadcast API request naming room:b belongs with connection 2.
        r.handle(
            ms(60),
            Event::Http {
                sent_at: ms(60),
                request: HttpRequestSpec {
                    method: "POST".into(),
                    path: "/api/broadcast".into(),
                    headers: vec![],
                    body: r#"{"topic":"room:b","event":"e","payload":{}}"#.into(),
                },
                status: 200,
                body: "{}".into(),
            },
        );
        // A LongPoll session: its first poll has no topic; its token ties
        // the later POST (joining room:a) to it.
        let poll = |path: &str, body: &str, response: &str| Event::Http {
            sent_at: t0,
            request: HttpRequestSpec {
                method: if body.is_empty() { "GET" } else { "POST" }.into(),
                path: path.into(),
                headers: vec![],
                body: body.into(),
            },
            status: 200,
            body: response.into(),
        };
        r.handle(
            ms(70),
            poll(
                "/socket/longpoll?vsn=2.0.0",
                "",
                r#"{"status":410,"token":"T1"}"#,
            ),
        );
        r.handle(
            ms(80),
            poll(
                "/socket/longpoll?vsn=2.0.0&token=T1",
                r#"["1","1","room:a","phx_join",{}]"#,
                r#"{"status":200}"#,
            ),
        );
        for id in 1..=3 {
            r.handle(ms(100), Event::Gone { id });
        }
        r.finish();
        let files = r.written().to_vec();
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(
            topics_per_file(&files),
            vec![vec!["room:a".to_owned()], vec!["room:b".to_owned()]]
        );
        let a = Transcript::load(&files[0]).expect("loads");
        let conns: HashSet<_> = a.steps.iter().filter_map(|s| s.conn.clone()).collect();
        assert_eq!(conns.len(), 2, "connections 1 and 3");
        let polls = a.steps.iter().filter(|s| s.http.is_some()).count();
        assert_eq!(polls, 2, "both polls of the session are with room:a");
        let b = Transcript::load(&files[1]).expect("loads");
        assert!(b.steps.iter().any(|s| s.http.is_some()), "the broadcast");
        a.plan().expect("plans");
        b.plan().expect("plans");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn topic_grouping_merges_in_time_order_and_ends_groups_on_their_own() {
        let dir = tmp("merge");
        let mut r = topic_recorder(&dir);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let send = |r: &mut Recorder, at, id, frame| r.handle(at, Event::ClientFrame { id, frame });
        connect(&mut r, t0, 1);
        send(&mut r, ms(10), 1, join("room:a"));
        connect(&mut r, ms(20), 2);
        send(&mut r, ms(30), 2, join("room:b"));
        connect(&mut r, ms(40), 4);
        send(&mut r, ms(50), 4, join("room:c"));
        // Connection 2 also joins room:a: its transcript merges with 1's.
        send(&mut r, ms(60), 2, join("room:a"));
        // room:c's connection goes away and stays idle: written on its own
        // while the others are still open.
        r.handle(ms(70), Event::Gone { id: 4 });
        connect(&mut r, ms(3000), 5);
        assert_eq!(r.written().len(), 1, "room:c ended on its idle gap");
        // Connection 5 joins room:b, which now belongs to the merged transcript.
        send(&mut r, ms(3010), 5, join("room:b"));
        for id in [1, 2, 5] {
            r.handle(ms(3100), Event::Gone { id });
        }
        r.finish();
        let files = r.written().to_vec();
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(
            topics_per_file(&files[..1]),
            vec![vec!["room:c".to_owned()]]
        );
        let merged = Transcript::load(&files[1]).expect("loads");
        let order: Vec<(String, String)> = merged
            .steps
            .iter()
            .filter_map(|s| {
                let topic = s.send.as_ref()?.text.as_deref().and_then(text_topic)?;
                Some((s.conn.clone()?, topic))
            })
            .collect();
        let expected = [
            ("c1", "room:a"),
            ("c2", "room:b"),
            ("c2", "room:a"),
            ("c3", "room:b"),
        ];
        assert_eq!(
            order,
            expected
                .iter()
                .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
                .collect::<Vec<_>>(),
            "steps of both transcripts in time order, connections renamed"
        );
        merged.plan().expect("plans");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn heartbeats_do_not_tie_connections_together() {
        let dir = tmp("heartbeat");
        let mut r = topic_recorder(&dir);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let beat = || text(r#"[null,"9","phoenix","heartbeat",{}]"#);
        connect(&mut r, t0, 1);
        connect(&mut r, ms(10), 2);
        r.handle(
            ms(20),
            Event::ClientFrame {
                id: 1,
                frame: beat(),
            },
        );
        r.handle(
            ms(30),
            Event::ClientFrame {
                id: 2,
                frame: beat(),
            },
        );
        r.handle(ms(40), Event::Gone { id: 1 });
        r.handle(ms(40), Event::Gone { id: 2 });
        r.finish();
        assert_eq!(r.written().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
