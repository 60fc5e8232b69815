//! Turning proxied traffic into transcripts: grouping the connections that
//! interact, ordering actions and observations, marking pipelined actions
//! and server-initiated pushes, cutting at the size bound, and writing the
//! files.
//!
//! Grouping is by time window: a transcript starts with the first event
//! while no transcript is open, takes every connection and HTTP exchange
//! that happens while it is open, and ends once all its websockets are
//! closed and nothing happened for the idle gap. So a broadcast one client
//! receives is in the same file as the push of the client that caused it.
//!
//! Everything here runs in the recorder task; the proxy only hands it
//! events through a bounded queue and never waits for it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::sync::mpsc::Receiver;

use super::filter::{binary_topic, text_topic, Filter};
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
}

struct Group {
    seq: u64,
    steps: Vec<RawStep>,
    names: HashMap<u64, String>,
    open: HashSet<u64>,
    /// Time of the last action or observation kept.
    last_event: Instant,
    /// Whether an action has been written yet.
    has_action: bool,
    bytes: usize,
    started: SystemTime,
}

/// The recorder's state; [`Recorder::run`] drives it from the event queue.
pub struct Recorder {
    config: RecorderConfig,
    group: Option<Group>,
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
            group: None,
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
    /// drop an event (the open transcript is then dropped, never the
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
                    self.finish_if_idle(Instant::now());
                    continue;
                }
                () = &mut stop => break,
            };
            let Some((at, event)) = next else { break };
            let now_lost = lost.load(std::sync::atomic::Ordering::SeqCst);
            if now_lost != seen_lost {
                seen_lost = now_lost;
                tracing::warn!("recording queue overflowed: the open transcript is dropped");
                self.drop_group();
            }
            self.handle(at, event);
        }
        self.finish();
        self.written
    }

    fn idle_deadline(&self) -> Option<Instant> {
        let g = self.group.as_ref()?;
        g.open
            .is_empty()
            .then(|| g.last_event + self.config.idle_gap)
    }

    fn finish_if_idle(&mut self, now: Instant) {
        if self.idle_deadline().is_some_and(|d| now >= d) {
            self.finish();
        }
    }

    /// Processes one event stamped `at`.
    pub fn handle(&mut self, at: Instant, event: Event) {
        self.finish_if_idle(at);
        match event {
            Event::Connect {
                id,
                path,
                query,
                status,
            } => {
                let query = self.config.filter.redact_pairs(query);
                let settle = self.config.settle;
                let pauses = (self.config.min_pause, self.config.max_pause);
                let group = self.group_for_new(at);
                let name = format!("c{}", group.names.len() + 1);
                group.names.insert(id, name.clone());
                if status == 101 {
                    group.open.insert(id);
                }
                let connect = RawStep {
                    conn: Some(name.clone()),
                    connect: Some(RawConnect { path, query }),
                    ..empty_step()
                };
                let connected = RawStep {
                    conn: Some(name),
                    connected: Some(RawConnected { status }),
                    ..empty_step()
                };
                push_action(group, at, settle, pauses, vec![connect, connected]);
            }
            Event::ClientFrame { id, frame } => {
                if !self.keeps(&frame) {
                    return;
                }
                let frame = self.redact(frame);
                let settle = self.config.settle;
                let pauses = (self.config.min_pause, self.config.max_pause);
                let Some((group, name)) = self.conn(id) else {
                    return;
                };
                let send = RawStep {
                    conn: Some(name),
                    send: Some(raw_frame(&frame)),
                    ..empty_step()
                };
                push_action(group, at, settle, pauses, vec![send]);
            }
            Event::ClientClose { id, code } => {
                let settle = self.config.settle;
                let pauses = (self.config.min_pause, self.config.max_pause);
                let Some((group, name)) = self.conn(id) else {
                    return;
                };
                let close = RawStep {
                    conn: Some(name),
                    close: Some(RawClose { code: Some(code) }),
                    ..empty_step()
                };
                push_action(group, at, settle, pauses, vec![close]);
            }
            Event::ServerFrame { id, frame } => {
                if !self.keeps(&frame) {
                    return;
                }
                let frame = self.redact(frame);
                let settle = self.config.settle;
                let pauses = (self.config.min_pause, self.config.max_pause);
                let is_reply = matches!(&frame, Payload::Text(t) if is_reply_text(t))
                    || matches!(&frame, Payload::Binary(b) if b.first() == Some(&1));
                let Some((group, name)) = self.conn(id) else {
                    return;
                };
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
                push_observation(group, at, settle, pauses, name, recv, !is_reply);
            }
            Event::ServerClose { id, code, reason } => {
                let settle = self.config.settle;
                let pauses = (self.config.min_pause, self.config.max_pause);
                let Some((group, name)) = self.conn(id) else {
                    return;
                };
                let recv = RawRecv {
                    text: None,
                    binary_b64: None,
                    closed: Some(RawClosed { code, reason }),
                };
                push_observation(group, at, settle, pauses, name, recv, true);
            }
            Event::Gone { id } => {
                self.detached.remove(&id);
                if let Some(group) = self.group.as_mut() {
                    group.open.remove(&id);
                }
            }
            Event::Http {
                mut request,
                status,
                body,
            } => {
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
                let settle = self.config.settle;
                let pauses = (self.config.min_pause, self.config.max_pause);
                let group = self.group_for_new(at);
                let http = RawStep {
                    http: Some(request),
                    ..empty_step()
                };
                let response = RawStep {
                    http_response: Some(RawHttpResponse { status, body }),
                    ..empty_step()
                };
                push_action(group, at, settle, pauses, vec![http, response]);
            }
        }
        self.cut_if_too_big();
    }

    fn keeps(&self, frame: &Payload) -> bool {
        if self.config.filter.topics.is_empty() {
            return true;
        }
        let topic = match frame {
            Payload::Text(t) => text_topic(t),
            Payload::Binary(b) => binary_topic(b),
        };
        topic.is_some_and(|t| self.config.filter.keeps_topic(&t))
    }

    fn redact(&self, frame: Payload) -> Payload {
        match frame {
            Payload::Text(t) => Payload::Text(self.config.filter.redact_text(&t)),
            other => other,
        }
    }

    /// The open transcript and the name of connection `id` in it, unless
    /// the connection is not recorded (cut, dropped, or unknown).
    fn conn(&mut self, id: u64) -> Option<(&mut Group, String)> {
        if self.detached.contains(&id) {
            return None;
        }
        let group = self.group.as_mut()?;
        let name = group.names.get(&id)?.clone();
        Some((group, name))
    }

    fn group_for_new(&mut self, at: Instant) -> &mut Group {
        let seq = &mut self.next_seq;
        self.group.get_or_insert_with(|| {
            let g = Group {
                seq: *seq,
                steps: Vec::new(),
                names: HashMap::new(),
                open: HashSet::new(),
                last_event: at,
                has_action: false,
                bytes: 0,
                started: SystemTime::now(),
            };
            *seq += 1;
            g
        })
    }

    fn cut_if_too_big(&mut self) {
        if self
            .group
            .as_ref()
            .is_some_and(|g| g.bytes > self.config.max_file_bytes)
        {
            tracing::info!("transcript reached the size bound: cut");
            self.finish();
        }
    }

    fn drop_group(&mut self) {
        if let Some(group) = self.group.take() {
            self.detached.extend(group.open);
        }
    }

    /// Ends the open transcript and writes it; its connections still open
    /// are not recorded any further.
    pub fn finish(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        self.detached.extend(group.open.iter().copied());
        if !group.has_action {
            return;
        }
        let secs = group
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let scenario = format!("recorded-{secs}-{:04}", group.seq);
        let transcript = Transcript {
            scenario: scenario.clone(),
            description: format!(
                "recorded by fawkes record: {} connection(s)",
                group.names.len()
            ),
            server: serde_json::Value::Null,
            settle_ms: Some(u64::try_from(self.config.settle.as_millis()).unwrap_or(u64::MAX)),
            steps: group.steps,
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
/// before the previous events settled, preceded by a pause when long after.
fn push_action(
    group: &mut Group,
    at: Instant,
    settle: Duration,
    pauses: (Duration, Duration),
    mut steps: Vec<RawStep>,
) {
    let gap = at.saturating_duration_since(group.last_event);
    if group.has_action {
        if gap < settle {
            if let Some(first) = steps.first_mut() {
                first.pipelined = true;
            }
        } else if let Some(sleep) = pause_step(gap, settle, pauses) {
            group.bytes += step_bytes(&sleep);
            group.steps.push(sleep);
        }
    }
    for step in steps {
        group.bytes += step_bytes(&step);
        group.steps.push(step);
    }
    group.has_action = true;
    group.last_event = group.last_event.max(at);
}

/// Appends an observation: a push (not a reply) arriving more than the
/// settle window after everything else is marked server-initiated, after a
/// pause step that lets replay wait for it.
fn push_observation(
    group: &mut Group,
    at: Instant,
    settle: Duration,
    pauses: (Duration, Duration),
    conn: String,
    recv: RawRecv,
    may_be_unprompted: bool,
) {
    let gap = at.saturating_duration_since(group.last_event);
    let late = gap > settle;
    if late && group.has_action {
        if let Some(sleep) = pause_step(gap, settle, pauses) {
            group.bytes += step_bytes(&sleep);
            group.steps.push(sleep);
        }
    }
    let step = RawStep {
        conn: Some(conn),
        recv: Some(recv),
        server_initiated: late && may_be_unprompted,
        ..empty_step()
    };
    group.bytes += step_bytes(&step);
    group.steps.push(step);
    group.last_event = group.last_event.max(at);
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
        // A late reply is never server-initiated.
        r.handle(
            ms(4003),
            Event::ServerFrame {
                id: 1,
                frame: text(REPLY),
            },
        );
        r.handle(ms(4004), Event::Gone { id: 1 });
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
        assert_eq!(t.steps[6].sleep_ms, Some(1700));
        assert!(!t.steps[7].server_initiated);
        t.plan().expect("plans");
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
}
