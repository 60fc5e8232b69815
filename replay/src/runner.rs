//! Replaying one transcript against a live server.
//!
//! Actions run in order. After each action the runner collects what the
//! server sends (on all connections of the transcript) until every recorded
//! observation of that action has matched, failing on the first difference,
//! on anything unexpected, or when the deadline passes; then it requires the
//! connections to stay quiet for the settle window. Actions marked
//! `pipelined` are performed together with the action before them, and
//! their observations collected together. Observations recorded as
//! `server_initiated` are accepted whenever one of that kind arrives on
//! that connection, but not demanded (unless the config says so).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::expect::{
    describe_expected, describe_observed, shorten, signature_expected, signature_observed,
    Expectations, Offer, Races,
};
use super::http::{self, BaseUrl, HttpError};
use super::longpoll::{self, RecordedPoll};
use super::normalize::{self, encode_uri_component, Bindings, Difference, MatchRules, TokenMap};
use super::transcript::{Action, ActionKind, Transcript, TranscriptError};
use super::ws::{self, Connected, Observation, WsConn, WsError};

/// How a replay is run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The server under test.
    pub base: BaseUrl,
    /// Replaces every transcript's settle window when set.
    pub settle_override: Option<Duration>,
    /// How long after an action (after its sleep) the expected frames may take.
    pub frame_deadline: Duration,
    /// Timeout of one websocket handshake.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP request (longpoll GETs may be held by the server).
    pub http_timeout: Duration,
    /// Pause after closing a transcript's connections.
    pub cleanup_pause: Duration,
    /// Orderings that Phoenix races, accepted either way.
    pub races: Races,
    /// Keys the user names for normalisation (the longpoll batch flag is
    /// taken from `races`).
    pub rules: MatchRules,
    /// Demand observations recorded as `server_initiated` like any other.
    pub demand_server_initiated: bool,
}

impl RunConfig {
    /// The default timings for `base`.
    pub fn new(base: BaseUrl) -> Self {
        Self {
            base,
            settle_override: None,
            frame_deadline: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            http_timeout: Duration::from_secs(30),
            cleanup_pause: Duration::from_millis(150),
            races: Races::default(),
            rules: MatchRules::default(),
            demand_server_initiated: false,
        }
    }
}

/// Why a transcript did not replay identically.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The transcript itself is unusable.
    #[error("{0}")]
    Transcript(#[from] TranscriptError),
    /// The websocket handshake answered another status.
    #[error("step {step} (conn {conn}): expected handshake status {expected}, got {got}")]
    HandshakeStatus {
        /// The `connected` step.
        step: usize,
        /// Connection name.
        conn: String,
        /// Recorded status.
        expected: u16,
        /// Live status.
        got: u16,
    },
    /// The websocket handshake failed outright.
    #[error("step {step} (conn {conn}): connect failed: {source}")]
    Connect {
        /// The `connect` step.
        step: usize,
        /// Connection name.
        conn: String,
        /// The error.
        source: WsError,
    },
    /// A step uses a connection that is not open.
    #[error("step {step} (conn {conn}): connection is not open")]
    NotOpen {
        /// The step.
        step: usize,
        /// Connection name.
        conn: String,
    },
    /// Sending a frame failed.
    #[error("step {step} (conn {conn}): send failed: {source}")]
    Send {
        /// The `send` step.
        step: usize,
        /// Connection name.
        conn: String,
        /// The error.
        source: WsError,
    },
    /// An HTTP request failed.
    #[error("step {step}: http request failed: {source}")]
    Http {
        /// The `http` step.
        step: usize,
        /// The error.
        source: HttpError,
    },
    /// The HTTP response status differs.
    #[error("step {step}: expected http status {expected}, got {got} (body {body})")]
    HttpStatus {
        /// The `http_response` step.
        step: usize,
        /// Recorded status.
        expected: u16,
        /// Live status.
        got: u16,
        /// Live body (shortened).
        body: String,
    },
    /// The HTTP response body differs.
    #[error("step {step}: http body {difference}; expected {expected}, got {got}")]
    HttpBody {
        /// The `http_response` step.
        step: usize,
        /// Recorded body (shortened).
        expected: String,
        /// Live body (shortened).
        got: String,
        /// Where it differs.
        difference: Difference,
    },
    /// A live observation differs from the recorded one it was compared with.
    #[error("step {step} (conn {conn}): expected {expected}, got {got} ({difference})")]
    Mismatch {
        /// The `recv` step.
        step: usize,
        /// Connection name.
        conn: String,
        /// The recorded observation.
        expected: String,
        /// The live observation.
        got: String,
        /// Where it differs.
        difference: Difference,
    },
    /// The server sent something the recording does not have.
    #[error("unexpected frame on conn {conn} after step {after_step}: {got}")]
    Unexpected {
        /// The last step of the action during which it arrived.
        after_step: usize,
        /// Connection name.
        conn: String,
        /// The live observation.
        got: String,
    },
    /// Recorded observations did not arrive in time.
    #[error(
        "step {step} (conn {conn}): expected {expected}, nothing arrived within {waited_ms} ms{more}"
    )]
    Missing {
        /// The first missing `recv` step.
        step: usize,
        /// Connection name.
        conn: String,
        /// The recorded observation.
        expected: String,
        /// How long the runner waited after the action.
        waited_ms: u128,
        /// How many more are missing, when any.
        more: String,
    },
}

impl Failure {
    /// The transcript step the failure is about, when there is one.
    pub fn step(&self) -> Option<usize> {
        match self {
            Self::Transcript(TranscriptError::Step { step, .. }) => Some(*step),
            Self::Transcript(_) => None,
            Self::HandshakeStatus { step, .. }
            | Self::Connect { step, .. }
            | Self::NotOpen { step, .. }
            | Self::Send { step, .. }
            | Self::Http { step, .. }
            | Self::HttpStatus { step, .. }
            | Self::HttpBody { step, .. }
            | Self::Mismatch { step, .. }
            | Self::Missing { step, .. } => Some(*step),
            Self::Unexpected { after_step, .. } => Some(*after_step),
        }
    }
}

/// Replays `transcript`, closing its connections afterwards.
pub async fn run_transcript(transcript: &Transcript, config: &RunConfig) -> Result<(), Failure> {
    let plan = transcript.plan()?;
    let settle = config
        .settle_override
        .unwrap_or_else(|| Duration::from_millis(transcript.settle_ms()));
    let (tx, rx) = mpsc::unbounded_channel();
    let tolerated = if config.demand_server_initiated {
        HashSet::new()
    } else {
        plan.iter()
            .flat_map(|a| a.expect.iter())
            .filter(|e| e.server_initiated)
            .map(|e| (e.conn.clone(), signature_expected(&e.expected)))
            .collect()
    };
    // The last step that names each connection (an action or a recv).
    let mut last_step_of: HashMap<String, usize> = HashMap::new();
    for action in &plan {
        let conn = match &action.kind {
            ActionKind::Connect { conn, .. }
            | ActionKind::Send { conn, .. }
            | ActionKind::Close { conn, .. } => Some(conn),
            ActionKind::Http { .. } | ActionKind::Sleep(_) => None,
        };
        let steps = conn
            .map(|c| (c, action.step))
            .into_iter()
            .chain(action.expect.iter().map(|e| (&e.conn, e.step)));
        for (conn, step) in steps {
            let last = last_step_of.entry(conn.clone()).or_default();
            *last = (*last).max(step);
        }
    }
    let mut rules = config.rules.clone();
    rules.longpoll_batch_any_order = config.races.longpoll_batch;
    let mut session = Session {
        config,
        settle,
        conns: HashMap::new(),
        tx,
        rx,
        pending: VecDeque::new(),
        bindings: Bindings::with_rules(Arc::new(rules)),
        tokens: TokenMap::new(),
        tolerated,
        closed_by_client: HashSet::new(),
        last_step_of,
        polls: HashMap::new(),
    };
    let mut result = Ok(());
    let mut start = 0;
    while start < plan.len() {
        let end = start + 1 + plan[start + 1..].iter().take_while(|a| a.pipelined).count();
        let next_end = (end
            + 1
            + plan
                .get(end + 1..)
                .map_or(0, |rest| rest.iter().take_while(|a| a.pipelined).count()))
        .min(plan.len());
        let next = plan.get(end..next_end).unwrap_or_default();
        if let Err(failure) = session.run_group(&plan[start..end], next).await {
            result = Err(failure);
            break;
        }
        start = end;
    }
    if result.is_ok() {
        let last_step = plan.last().map_or(0, |a| a.step);
        if let Some(failure) = session.finish_polls(last_step).await {
            result = Err(failure);
        }
    }
    session.cleanup().await;
    result
}

struct Session<'a> {
    config: &'a RunConfig,
    settle: Duration,
    conns: HashMap<String, WsConn>,
    tx: UnboundedSender<Observation>,
    rx: UnboundedReceiver<Observation>,
    /// Observations taken from the channel but belonging to a later action.
    pending: VecDeque<Observation>,
    bindings: Bindings,
    tokens: TokenMap,
    /// `(conn, signature)` of the pushes recorded as server-initiated.
    tolerated: HashSet<(String, String)>,
    /// Connections the transcript closed: a browser drops what arrives on
    /// a websocket after calling close(), so nothing more is demanded or
    /// refused there.
    closed_by_client: HashSet<String>,
    /// The last transcript step of each connection (for the `tail` race).
    last_step_of: HashMap<String, usize>,
    /// LongPoll sessions by their recorded token, each polled on its own.
    polls: HashMap<String, LivePolls>,
}

impl Session<'_> {
    /// With the `tail` race: `obs` arrived on a connection whose recorded
    /// steps are all done (`done` is the last step performed or matched).
    fn past_its_recording(&self, obs: &Observation, done: usize) -> bool {
        self.config.races.tail
            && self
                .last_step_of
                .get(&obs.conn)
                .is_some_and(|&last| done >= last)
    }

    fn is_tolerated(&self, obs: &Observation) -> bool {
        self.closed_by_client.contains(&obs.conn)
            || !self.tolerated.is_empty()
                && self
                    .tolerated
                    .contains(&(obs.conn.clone(), signature_observed(&obs.what)))
    }

    /// Performs the actions of a group (one action and those pipelined
    /// after it), then collects their observations.
    /// `next` is the group after it: with the `ahead` race, a frame its
    /// answers start with may arrive during this group's quiet window.
    async fn run_group(&mut self, group: &[Action], next: &[Action]) -> Result<(), Failure> {
        let mut last_step = group.first().map_or(0, |a| a.step);
        for action in group {
            self.perform(action, &mut last_step).await?;
            last_step = last_step.max(action.step);
        }
        let done = Instant::now();
        let expected: Vec<_> = group.iter().flat_map(|a| a.expect.clone()).collect();
        let mut expectations = Expectations::new(
            &expected,
            self.config.races,
            self.config.demand_server_initiated,
        );
        let deadline = done + self.config.frame_deadline;
        let mut last_arrival = done;
        while !expectations.is_done() {
            let Some(obs) = self.next_observation(deadline).await else {
                let missing = expectations.missing();
                let Some(first) = missing.first() else { break };
                return Err(Failure::Missing {
                    step: first.step,
                    conn: first.conn.clone(),
                    expected: describe_expected(&first.expected),
                    waited_ms: self.config.frame_deadline.as_millis(),
                    more: match missing.len() - 1 {
                        0 => String::new(),
                        n => format!(" (and {n} more missing)"),
                    },
                });
            };
            match expectations.offer(&obs.conn, &obs.what, &mut self.bindings) {
                Offer::Matched(e) => {
                    last_step = last_step.max(e.step);
                    last_arrival = last_arrival.max(obs.at);
                }
                Offer::Unexpected | Offer::Mismatch { .. } if self.is_tolerated(&obs) => {}
                Offer::Unexpected if self.past_its_recording(&obs, last_step) => {}
                Offer::Unexpected => {
                    return Err(Failure::Unexpected {
                        after_step: last_step,
                        conn: obs.conn,
                        got: describe_observed(&obs.what),
                    })
                }
                Offer::Mismatch {
                    expected,
                    difference,
                } => {
                    return Err(Failure::Mismatch {
                        step: expected.step,
                        conn: expected.conn,
                        expected: describe_expected(&expected.expected),
                        got: describe_observed(&obs.what),
                        difference,
                    })
                }
            }
        }
        // Quiet period: nothing more may arrive within the settle window.
        let quiet_until = last_arrival + self.settle;
        while let Some(obs) = self.next_observation(quiet_until).await {
            if obs.at > quiet_until {
                // Arrived just after the window: it belongs to the next action.
                self.pending.push_front(obs);
                break;
            }
            if self.config.races.ahead && self.expected_next(next, &obs) {
                // Already on its way before the next action: kept for it.
                self.pending.push_front(obs);
                break;
            }
            if !self.is_tolerated(&obs) && !self.past_its_recording(&obs, last_step) {
                return Err(Failure::Unexpected {
                    after_step: last_step,
                    conn: obs.conn,
                    got: describe_observed(&obs.what),
                });
            }
        }
        Ok(())
    }

    /// Whether `obs` is what the answers of `next` expect first on its
    /// connection (tried on a copy of the bindings).
    fn expected_next(&self, next: &[Action], obs: &Observation) -> bool {
        let expected: Vec<_> = next.iter().flat_map(|a| a.expect.clone()).collect();
        let mut expectations = Expectations::new(
            &expected,
            self.config.races,
            self.config.demand_server_initiated,
        );
        let mut trial = self.bindings.clone();
        matches!(
            expectations.offer(&obs.conn, &obs.what, &mut trial),
            Offer::Matched(_)
        )
    }

    async fn perform(&mut self, action: &Action, last_step: &mut usize) -> Result<(), Failure> {
        let step = action.step;
        match &action.kind {
            ActionKind::Connect {
                conn,
                path,
                query,
                expected_status,
            } => {
                *last_step = step + 1;
                let query = query
                    .iter()
                    .map(|(k, v)| {
                        format!("{}={}", encode_uri_component(k), encode_uri_component(v))
                    })
                    .collect::<Vec<_>>()
                    .join("&");
                let url = self.config.base.ws_url(path, &query);
                let outcome = ws::connect(&url, conn, self.tx.clone(), self.config.connect_timeout)
                    .await
                    .map_err(|source| Failure::Connect {
                        step,
                        conn: conn.clone(),
                        source,
                    })?;
                let got = match &outcome {
                    Connected::Open(_) => 101,
                    Connected::Refused(status) => *status,
                };
                if got != *expected_status {
                    return Err(Failure::HandshakeStatus {
                        step: step + 1,
                        conn: conn.clone(),
                        expected: *expected_status,
                        got,
                    });
                }
                if let Connected::Open(ws) = outcome {
                    if let Some(old) = self.conns.insert(conn.clone(), ws) {
                        old.shutdown(Duration::ZERO).await;
                    }
                }
                Ok(())
            }
            ActionKind::Send { conn, frame } => {
                let ws = self.conns.get_mut(conn).ok_or_else(|| Failure::NotOpen {
                    step,
                    conn: conn.clone(),
                })?;
                ws.send(frame).await.map_err(|source| Failure::Send {
                    step,
                    conn: conn.clone(),
                    source,
                })
            }
            ActionKind::Close { conn, code } => {
                let ws = self.conns.get_mut(conn).ok_or_else(|| Failure::NotOpen {
                    step,
                    conn: conn.clone(),
                })?;
                // A connection the server already closed has nothing left to
                // close; any difference was caught when its close arrived.
                let _ = ws.close(*code).await;
                self.closed_by_client.insert(conn.clone());
                Ok(())
            }
            ActionKind::Http {
                request,
                expected_status,
                expected_body,
            } => {
                *last_step = step + 1;
                if let Some((token, poll)) = longpoll::stream_poll(
                    &request.method,
                    &request.path,
                    *expected_status,
                    expected_body,
                ) {
                    self.poll_stream(step, request, token, poll).await;
                    return Ok(());
                }
                let path = self.tokens.substitute_path(&request.path);
                let headers: Vec<(String, String)> = request
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), self.tokens.substitute(v)))
                    .collect();
                let body = self.tokens.substitute(&request.body);
                let reply = http::request(
                    &self.config.base,
                    &request.method,
                    &path,
                    &headers,
                    &body,
                    self.config.http_timeout,
                )
                .await
                .map_err(|source| Failure::Http { step, source })?;
                if reply.status != *expected_status {
                    return Err(Failure::HttpStatus {
                        step: step + 1,
                        expected: *expected_status,
                        got: reply.status,
                        body: shorten(&reply.body),
                    });
                }
                normalize::match_http_body(expected_body, &reply.body, &mut self.bindings)
                    .map_err(|difference| Failure::HttpBody {
                        step: step + 1,
                        expected: shorten(expected_body),
                        got: shorten(&reply.body),
                        difference,
                    })?;
                if let (Some(recorded), Some(live)) = (
                    normalize::body_token(expected_body),
                    normalize::body_token(&reply.body),
                ) {
                    self.tokens.insert(&recorded, &live);
                }
                Ok(())
            }
            ActionKind::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                Ok(())
            }
        }
    }

    /// A recorded poll of an open LongPoll session. The replay polls the
    /// session on its own from its first recorded poll on (see
    /// [`longpoll`]); the recorded poll only adds its messages to what the
    /// session must receive, checked when the transcript ends.
    async fn poll_stream(
        &mut self,
        step: usize,
        request: &crate::transcript::HttpRequestSpec,
        token: String,
        recorded: longpoll::StreamPoll,
    ) {
        let count = self.polls.len();
        let session = self.polls.entry(token).or_insert_with(|| {
            let path = self.tokens.substitute_path(&request.path);
            let headers: Vec<(String, String)> = request
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), self.tokens.substitute(v)))
                .collect();
            let (tx, rx) = mpsc::unbounded_channel();
            let poller = tokio::spawn(poll_forever(
                self.config.base.clone(),
                path,
                headers,
                self.config.http_timeout,
                tx,
            ));
            LivePolls {
                name: format!("longpoll#{}", count + 1),
                expected: Vec::new(),
                live: Vec::new(),
                ended: None,
                rx,
                poller,
            }
        });
        session
            .expected
            .extend(recorded.messages.into_iter().map(|m| (step + 1, m)));
        // The client acted on what this poll brought before its next
        // request: give the messages so far a moment to come, so the next
        // actions follow them as they did in the recording. A poll recorded
        // before the request that caused its messages (a recorder writes a
        // poll where it completed) cannot be satisfied yet: the replay goes
        // on after the wait, and the end of the transcript checks.
        let races = self.config.races;
        let wait_until = Instant::now() + self.config.frame_deadline.min(POLL_SYNC);
        loop {
            session.receive();
            let mut trial = self.bindings.clone();
            let poll = session.matched(races, &mut trial);
            if poll.is_done() || poll.first_mismatch.is_some() || session.ended.is_some() {
                break;
            }
            if Instant::now() >= wait_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// After the last step: every LongPoll session must have received its
    /// recorded messages, in order (waiting up to the frame deadline), and
    /// nothing else (unless the `tail` race accepts a push after the
    /// recording's end).
    async fn finish_polls(&mut self, last_step: usize) -> Option<Failure> {
        let deadline = Instant::now() + self.config.frame_deadline;
        let mut names: Vec<String> = self.polls.keys().cloned().collect();
        names.sort_by_key(|k| self.polls[k].name.clone());
        for key in names {
            let races = self.config.races;
            let session = self.polls.get_mut(&key)?;
            let matched = loop {
                session.receive();
                let mut trial = self.bindings.clone();
                let poll = session.matched(races, &mut trial);
                let over = Instant::now() >= deadline || session.ended.is_some();
                if poll.is_done() || poll.first_mismatch.is_some() || over {
                    break (poll, trial);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let (poll, trial) = matched;
            let conn = session.name.clone();
            if let Some(mismatch) = poll.first_mismatch.clone() {
                return Some(Failure::Mismatch {
                    step: mismatch.step,
                    conn,
                    expected: format!("message text {}", shorten(&mismatch.expected)),
                    got: format!("text {}", shorten(&mismatch.got)),
                    difference: mismatch.difference,
                });
            }
            if let Some((step, first)) = poll.outstanding().first() {
                let more = poll.outstanding().len() - 1;
                let ended = session.ended.as_ref().map_or(String::new(), |why| {
                    format!("; the session's polls ended: {why}")
                });
                return Some(Failure::Missing {
                    step: *step,
                    conn,
                    expected: format!("message text {}", shorten(first)),
                    waited_ms: self.config.frame_deadline.as_millis(),
                    more: match more {
                        0 => ended,
                        n => format!(" (and {n} more missing){ended}"),
                    },
                });
            }
            if let (Some(extra), false) = (poll.deferred().front(), races.tail) {
                return Some(Failure::Unexpected {
                    after_step: last_step,
                    conn,
                    got: format!("text {}", shorten(extra)),
                });
            }
            self.bindings = trial;
        }
        None
    }

    /// The next observation, or `None` once `deadline` passes.
    async fn next_observation(&mut self, deadline: Instant) -> Option<Observation> {
        if let Some(obs) = self.pending.pop_front() {
            return Some(obs);
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    async fn cleanup(&mut self) {
        for (_, session) in self.polls.drain() {
            session.poller.abort();
        }
        let grace = self.config.cleanup_pause.max(Duration::from_millis(100));
        let shutdowns = self.conns.drain().map(|(_, ws)| ws.shutdown(grace));
        futures_util::future::join_all(shutdowns).await;
        tokio::time::sleep(self.config.cleanup_pause).await;
    }
}

/// What a session's poller reports.
#[derive(Debug)]
enum PollEvent {
    /// The messages of one poll response.
    Messages(Vec<String>),
    /// Polling stopped: the session is gone or a request failed.
    Ended(String),
}

/// A LongPoll session of the replay, polled by a task of its own.
struct LivePolls {
    /// `longpoll#N`, in order of appearance, for reports.
    name: String,
    /// The recorded messages of all its polls, with their steps.
    expected: Vec<(usize, String)>,
    /// The live messages so far, in arrival order.
    live: Vec<String>,
    /// Why polling stopped, once it did.
    ended: Option<String>,
    rx: UnboundedReceiver<PollEvent>,
    poller: tokio::task::JoinHandle<()>,
}

impl LivePolls {
    /// Takes what the poller reported so far.
    fn receive(&mut self) {
        while let Ok(event) = self.rx.try_recv() {
            match event {
                PollEvent::Messages(messages) => self.live.extend(messages),
                PollEvent::Ended(why) => self.ended = Some(why),
            }
        }
    }

    /// The recorded messages so far matched against the live ones so far.
    fn matched(&self, races: Races, bindings: &mut Bindings) -> RecordedPoll {
        let mut poll = RecordedPoll::new(self.expected.clone(), races);
        for message in &self.live {
            poll.offer(message.clone(), bindings);
        }
        poll
    }
}

/// Longest wait, at a recorded poll, for its messages before the next step.
const POLL_SYNC: Duration = Duration::from_secs(1);

/// Polls `path` (a session's live URL) until the session ends or the
/// receiver is gone, reporting each response's messages.
async fn poll_forever(
    base: BaseUrl,
    path: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    tx: UnboundedSender<PollEvent>,
) {
    loop {
        let event = match http::request(&base, "GET", &path, &headers, "", timeout).await {
            Ok(reply) if reply.status == 200 => match longpoll::poll_body(&reply.body) {
                Some(poll) => PollEvent::Messages(poll.messages),
                None => PollEvent::Ended(format!("a poll answered {}", shorten(&reply.body))),
            },
            Ok(reply) => PollEvent::Ended(format!("a poll answered HTTP {}", reply.status)),
            Err(error) => PollEvent::Ended(format!("a poll failed: {error}")),
        };
        let ended = matches!(event, PollEvent::Ended(_));
        let empty = matches!(&event, PollEvent::Messages(m) if m.is_empty());
        if tx.send(event).is_err() || ended {
            return;
        }
        if empty {
            // A server that answers an empty poll at once is not polled in
            // a busy loop.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
