//! Longpoll sessions: the registry that maps a token's session id to a
//! running [`crate::session`], the buffer of frames waiting for the next
//! poll, and the one task per session that fills that buffer and reaps the
//! session when nobody polls it.
//!
//! Lifetime: a session lives until its [`crate::session`] ends (a
//! `disconnect` broadcast, a slow client, server shutdown) or until no GET
//! reached it for 1.5 × the poll window (Phoenix's `{:shutdown, :inactive}`).
//! Either way its task removes it from the registry, drops its inbound
//! sender (so the session closes its channels and presences) and wakes every
//! request still waiting on it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::token::SessionId;
use crate::session::{DisconnectReason, InFrame, SessionHandle, WireFrame};
use crate::socket::Socket;

/// Between two frames of one POST, how long to wait for output once the
/// session took the first (see [`LpSession::publish`]).
const SETTLE: Duration = Duration::from_millis(5);
/// Between two frames of one POST, how long to wait for the session to take
/// the first off its queue.
const DEQUEUE_WAIT: Duration = Duration::from_millis(100);

/// Every live longpoll session of the process, by id. Ids are random, and
/// each entry remembers its socket mount, so one map serves every endpoint.
static REGISTRY: LazyLock<Mutex<HashMap<SessionId, Arc<LpSession>>>> =
    LazyLock::new(Default::default);

/// The registry, locked.
fn registry() -> MutexGuard<'static, HashMap<SessionId, Arc<LpSession>>> {
    // A panic while holding this lock cannot leave the map inconsistent.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The live session `id` of the socket mounted as `socket`, if any.
pub(super) fn lookup(id: SessionId, socket: &Arc<Socket>) -> Option<Arc<LpSession>> {
    let session = registry().get(&id).cloned()?;
    (Arc::ptr_eq(&session.socket, socket) && !session.closed.is_cancelled()).then_some(session)
}

/// Mutable state of one session, under one lock.
#[derive(Debug)]
struct State {
    /// Encoded text frames not yet delivered to a poll.
    buffer: VecDeque<Utf8Bytes>,
    /// When a GET last started or finished.
    last_poll: Instant,
    /// GETs currently waiting on this session.
    polls_in_flight: usize,
    /// Bumped by every GET: a waiting GET whose number is no longer current
    /// was superseded by a newer one.
    poll_generation: u64,
    /// Frames ever buffered (a POST watches it between the frames of a batch).
    produced: u64,
}

/// One longpoll session as the transport sees it.
#[derive(Debug)]
pub(super) struct LpSession {
    /// The mount this session belongs to: its token is valid only there.
    socket: Arc<Socket>,
    /// Frames for the session; taken (dropped) when the session is closed.
    inbound: Mutex<Option<mpsc::Sender<InFrame>>>,
    state: Mutex<State>,
    /// Most frames buffered before the session stops reading its outbound
    /// queue (which then fills up and closes the session as a slow client).
    capacity: usize,
    /// Woken when frames arrive, a newer poll starts, or the session ends.
    ready: Notify,
    /// Woken when a poll drained the buffer (the pump may read again).
    drained: Notify,
    /// Cancelled when the session is over.
    closed: CancellationToken,
}

/// What a poll (GET) got.
#[derive(Debug)]
pub(super) enum Poll {
    /// Frames, in order.
    Messages(Vec<Utf8Bytes>),
    /// Nothing within the window, superseded by a newer poll, or the session
    /// ended while waiting.
    NoContent,
}

/// What a publish (POST) got.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Publish {
    /// Every frame reached the session.
    Ok,
    /// The session did not take a frame within the window; later frames
    /// were not sent.
    Timeout,
    /// The session is gone.
    Gone,
}

impl LpSession {
    /// The state, locked.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A clone of the inbound sender, unless the session was closed.
    fn sender(&self) -> Option<mpsc::Sender<InFrame>> {
        self.inbound
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Send `frames` to the session in order, each within `window`.
    ///
    /// Phoenix dispatches the frames of a batch one at a time, each after
    /// the session acknowledged the previous one; that round trip usually
    /// lets a channel's reply to one frame reach the buffer before the next
    /// frame is handled (e.g. an `echo` reply before the next `heartbeat`
    /// reply, as recorded). Between frames we therefore wait until the
    /// session took the previous frame and produced output, or [`SETTLE`]
    /// passed after it took the frame.
    pub(super) async fn publish(&self, frames: Vec<InFrame>, window: Duration) -> Publish {
        let Some(inbound) = self.sender() else {
            return Publish::Gone;
        };
        let mut produced_before = None;
        for frame in frames {
            if let Some(before) = produced_before {
                self.settle(&inbound, before).await;
            }
            produced_before = Some(self.state().produced);
            tokio::select! {
                sent = inbound.send(frame) => {
                    if sent.is_err() {
                        return Publish::Gone;
                    }
                }
                // Dropping our sender at once lets a closed session end.
                _ = self.closed.cancelled() => return Publish::Gone,
                _ = tokio::time::sleep(window) => return Publish::Timeout,
            }
        }
        Publish::Ok
    }

    /// After a frame was queued while the session had produced `before`
    /// frames: wait until it produced more, or until it took every queued
    /// frame (at most [`DEQUEUE_WAIT`]) and then [`SETTLE`] passed.
    async fn settle(&self, inbound: &mpsc::Sender<InFrame>, before: u64) {
        let produced = || self.state().produced != before || self.closed.is_cancelled();
        let dequeue_deadline = Instant::now() + DEQUEUE_WAIT;
        while inbound.capacity() < inbound.max_capacity() && Instant::now() < dequeue_deadline {
            if produced() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let deadline = Instant::now() + SETTLE;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if produced() {
                return;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Wait up to `window` for frames; a newer poll on the same session
    /// ends this one with [`Poll::NoContent`].
    /// Cancelled once the session has ended.
    pub(super) fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    pub(super) async fn poll(&self, window: Duration) -> Poll {
        let generation = {
            let mut state = self.state();
            state.poll_generation += 1;
            state.polls_in_flight += 1;
            state.last_poll = Instant::now();
            state.poll_generation
        };
        let _in_flight = InFlight(self);
        // Wake an older poll so that it answers 204 now.
        self.ready.notify_waiters();
        let deadline = Instant::now() + window;
        let mut woken = false;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if woken {
                // Let the session finish queueing a burst (a batch's replies)
                // so that one response carries all of it.
                tokio::task::yield_now().await;
            }
            {
                let mut state = self.state();
                if state.poll_generation != generation {
                    return Poll::NoContent;
                }
                if !state.buffer.is_empty() {
                    let messages: Vec<_> = state.buffer.drain(..).collect();
                    drop(state);
                    self.drained.notify_one();
                    return Poll::Messages(messages);
                }
            }
            if self.closed.is_cancelled() {
                return Poll::NoContent;
            }
            tokio::select! {
                _ = &mut notified => woken = true,
                _ = self.closed.cancelled() => woken = true,
                _ = tokio::time::sleep_until(deadline) => return Poll::NoContent,
            }
        }
    }
}

/// Counts a GET as in flight until it is answered (or dropped).
struct InFlight<'a>(&'a LpSession);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.polls_in_flight = state.polls_in_flight.saturating_sub(1);
        state.last_poll = Instant::now();
    }
}

/// Register a started session under a fresh id and start its task, which
/// reaps it when no GET arrived for `expiry`.
pub(super) fn register(
    id: SessionId,
    socket: Arc<Socket>,
    handle: SessionHandle,
    expiry: Duration,
) -> Arc<LpSession> {
    let SessionHandle {
        inbound,
        outbound,
        done,
        counters,
    } = handle;
    let capacity = socket.options.outbound_capacity.max(1);
    let session = Arc::new(LpSession {
        socket,
        inbound: Mutex::new(Some(inbound)),
        state: Mutex::new(State {
            buffer: VecDeque::new(),
            last_poll: Instant::now(),
            polls_in_flight: 0,
            poll_generation: 0,
            produced: 0,
        }),
        capacity,
        ready: Notify::new(),
        drained: Notify::new(),
        closed: CancellationToken::new(),
    });
    registry().insert(id, session.clone());
    tokio::spawn(run(id, session.clone(), outbound, done, expiry, counters));
    session
}

/// Why a session's task stopped.
#[derive(Debug)]
enum End {
    /// The session ended by itself.
    Session(DisconnectReason),
    /// The session task failed (a panic); it is gone.
    Crashed,
    /// No GET for the expiry period.
    Inactive,
}

/// The session's task: move outbound frames into the poll buffer, and end
/// the session when it ends by itself or when nobody polls it.
async fn run(
    id: SessionId,
    session: Arc<LpSession>,
    mut outbound: crate::session::OutboundReceiver,
    mut done: JoinHandle<DisconnectReason>,
    expiry: Duration,
    counters: Arc<crate::metrics::Counters>,
) {
    let mut outbound_open = true;
    let mut undeliverable = 0u64;
    let end = loop {
        let (expires_at, full) = {
            let state = session.state();
            let expires_at = if state.polls_in_flight > 0 {
                Instant::now() + expiry
            } else {
                state.last_poll + expiry
            };
            (expires_at, state.buffer.len() >= session.capacity)
        };
        if expires_at <= Instant::now() {
            break End::Inactive;
        }
        tokio::select! {
            reason = &mut done => break match reason {
                Ok(reason) => End::Session(reason),
                Err(_) => End::Crashed,
            },
            frame = outbound.recv(), if outbound_open && !full => match frame {
                Some(frame) => buffer_frame(&session, frame, &counters, &mut undeliverable),
                // Every sender is gone: the session is ending; `done` says why.
                None => outbound_open = false,
            },
            _ = session.drained.notified(), if full => {}
            _ = tokio::time::sleep_until(expires_at) => {}
        }
    };
    if let End::Session(_) = &end {
        // What the session queued before it ended (frames just before a
        // `disconnect`) reaches a poll that is waiting, as in Phoenix.
        outbound.seal();
        while let Some(frame) = outbound.try_recv() {
            buffer_frame(&session, frame, &counters, &mut undeliverable);
        }
    }
    registry().remove(&id);
    // Dropping the only long-lived sender ends the session: its channels
    // terminate and their presences leave.
    drop(
        session
            .inbound
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take(),
    );
    session.closed.cancel();
    session.ready.notify_waiters();
    drop(outbound);
    // After `Inactive`, the session task ends on its own once the requests
    // that still hold a sender clone drop it (they do on `closed`).
    match end {
        End::Inactive => tracing::info!("longpoll session inactive: closing"),
        End::Session(reason) => tracing::debug!(%reason, "longpoll session ended"),
        End::Crashed => tracing::error!("longpoll session task failed"),
    }
}

/// Put one frame of the session's outbound queue into the poll buffer.
///
/// phoenix.js's LongPoll reads only text: a binary frame cannot reach this
/// client. It is counted (`fawkes_undeliverable_frames_total`) and logged:
/// the session's first at WARN, the rest at DEBUG.
fn buffer_frame(
    session: &LpSession,
    frame: WireFrame,
    counters: &crate::metrics::Counters,
    undeliverable: &mut u64,
) {
    match frame {
        WireFrame::Text(text) => {
            {
                let mut state = session.state();
                state.buffer.push_back(text);
                state.produced += 1;
            }
            session.ready.notify_waiters();
        }
        WireFrame::Binary(_) => {
            counters.undeliverable(1);
            *undeliverable += 1;
            if *undeliverable == 1 {
                tracing::warn!(
                    "binary frame not delivered: a longpoll client reads only text \
                     (later ones of this session at DEBUG)"
                );
            } else {
                tracing::debug!(undeliverable = *undeliverable, "binary frame not delivered");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::PubSub;
    use crate::session::Services;
    use crate::socket::SocketOptions;
    use fawkes_protocol::Serializer;

    fn shared() -> Services {
        Services {
            pubsub: PubSub::new(),
            presence: None,
            shutdown: CancellationToken::new(),
            drain: Default::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            state: Default::default(),
        }
    }

    fn start(
        socket: &Arc<Socket>,
        shared: &Services,
        expiry: Duration,
    ) -> (SessionId, Arc<LpSession>) {
        let handle =
            crate::session::start(socket.clone(), shared, Serializer::V2, Default::default());
        let id = SessionId::random().expect("entropy");
        (id, register(id, socket.clone(), handle, expiry))
    }

    /// Wait (yielding, no clock) until a GET is waiting on `session`.
    async fn until_polled(session: &LpSession) {
        while session.state().polls_in_flight == 0 {
            tokio::task::yield_now().await;
        }
    }

    // Paused time: timers fire when every task is idle, in virtual time, so
    // these tests neither sleep nor depend on the machine's speed.

    #[tokio::test(start_paused = true)]
    async fn unpolled_sessions_are_reaped_and_forgotten() {
        let socket = Arc::new(Socket::new().options(SocketOptions {
            longpoll: true,
            ..SocketOptions::default()
        }));
        let shared = shared();
        let expiry = Duration::from_millis(100);
        let started = Instant::now();
        let (id, session) = start(&socket, &shared, expiry);
        assert!(lookup(id, &socket).is_some());
        // Another mount does not know this session.
        assert!(lookup(id, &Arc::new(Socket::new())).is_none());
        tokio::time::timeout(Duration::from_secs(60), session.closed.cancelled())
            .await
            .expect("the session was reaped");
        // Virtual time: reaped exactly when the expiry passed, not before.
        assert_eq!(started.elapsed(), expiry);
        assert!(lookup(id, &socket).is_none());
        assert!(!registry().contains_key(&id));
        assert!(session.sender().is_none());
        assert_eq!(
            session.publish(Vec::new(), Duration::from_secs(1)).await,
            Publish::Gone
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_poll_keeps_its_session_alive_past_the_expiry() {
        let socket = Arc::new(Socket::new());
        let shared = shared();
        let expiry = Duration::from_millis(100);
        let (id, session) = start(&socket, &shared, expiry);
        let started = Instant::now();
        // One poll that waits ten expiries: the session lives on meanwhile.
        let polled = session.poll(expiry * 10).await;
        assert!(matches!(polled, Poll::NoContent));
        assert_eq!(started.elapsed(), expiry * 10, "the poll waited its window");
        assert!(lookup(id, &socket).is_some(), "reaped while polled");
        // Nobody polls now: it is reaped one expiry after the last poll.
        tokio::time::timeout(Duration::from_secs(60), session.closed.cancelled())
            .await
            .expect("the session was reaped");
        assert_eq!(started.elapsed(), expiry * 11);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_sessions_and_wakes_polls() {
        let socket = Arc::new(Socket::new());
        let shared = shared();
        let (id, session) = start(&socket, &shared, Duration::from_secs(60));
        let polling = tokio::spawn({
            let session = session.clone();
            async move { session.poll(Duration::from_secs(60)).await }
        });
        until_polled(&session).await;
        let started = Instant::now();
        shared.shutdown.cancel();
        shared.drain.finish();
        let polled = tokio::time::timeout(Duration::from_secs(5), polling)
            .await
            .expect("poll woken")
            .expect("poll task");
        assert!(matches!(polled, Poll::NoContent));
        assert_eq!(started.elapsed(), Duration::ZERO, "woken at once");
        assert!(lookup(id, &socket).is_none());
    }
}
