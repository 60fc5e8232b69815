//! A bounded queue that holds no memory while it is empty.
//!
//! Every connection has two (outbound frames; control events and channel
//! messages) and most connections are idle most of the time; tokio's mpsc
//! preallocates a block of slots per channel, this queue allocates only
//! when items are waiting and frees its buffer when the receiver goes back
//! to waiting. A queue can carry an `extra` value in its one allocation
//! (the outbound queue keeps its session's control handle there), so a
//! session's delivery target costs no allocation of its own.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryPushError {
    /// The queue holds `capacity` items already.
    Full,
    /// The receiver is gone.
    Closed,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
    /// Set by [`Shared::seal`] or [`QueueReceiver::seal`]: no more items
    /// are taken; what is queued is still received, and then the receiver
    /// sees the end. In what was padding: no extra byte.
    sealed: bool,
    /// Beside the lock: a push touches one cache line.
    capacity: usize,
}

/// The queue itself, shared by its senders and its receiver.
pub(crate) struct Shared<T, E = ()> {
    state: Mutex<State<T>>,
    /// The receiver waiting for items (or for the last sender to leave).
    /// Woken only when the queue goes from empty to not empty: the
    /// receiver sleeps only after seeing it empty.
    ready: AtomicWaker,
    extra: E,
}

impl<T, E> Shared<T, E> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value given to [`queue_with`].
    pub(crate) fn extra(&self) -> &E {
        &self.extra
    }

    /// Queue `item` without waiting; a full or closed queue gives it back.
    ///
    /// Through a bare `Arc<Shared>` (not a [`QueueSender`]) a holder does
    /// not keep the queue open: the receiver ends once the counted senders
    /// are gone.
    pub(crate) fn try_push(&self, item: T) -> Result<(), (TryPushError, T)> {
        self.push_within(item, false)
    }

    /// Take no more items, from any sender; those already queued are still
    /// received, then the receiver sees the end (`None`).
    pub(crate) fn seal(&self) {
        self.lock().sealed = true;
        // A receiver waiting on an empty queue learns of the end.
        self.ready.wake();
    }

    fn push_within(&self, item: T, past_capacity: bool) -> Result<(), (TryPushError, T)> {
        let was_empty = {
            let mut state = self.lock();
            if !state.receiver_alive || state.sealed {
                return Err((TryPushError::Closed, item));
            }
            if !past_capacity && state.items.len() >= state.capacity {
                return Err((TryPushError::Full, item));
            }
            let was_empty = state.items.is_empty();
            state.items.push_back(item);
            was_empty
        };
        if was_empty {
            self.ready.wake();
        }
        Ok(())
    }
}

/// A new queue of at most `capacity` items.
pub(crate) fn queue<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    queue_with(capacity, ())
}

/// A new queue of at most `capacity` items, carrying `extra`.
pub(crate) fn queue_with<T, E>(
    capacity: usize,
    extra: E,
) -> (QueueSender<T, E>, QueueReceiver<T, E>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
            sealed: false,
            capacity: capacity.max(1),
        }),
        ready: AtomicWaker::new(),
        extra,
    });
    (QueueSender(shared.clone()), QueueReceiver(shared))
}

/// The sending side; cloning it adds a sender.
pub(crate) struct QueueSender<T, E = ()>(Arc<Shared<T, E>>);

impl<T, E> std::fmt::Debug for QueueSender<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueSender")
    }
}

impl<T, E> Clone for QueueSender<T, E> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(self.0.clone())
    }
}

impl<T, E> Drop for QueueSender<T, E> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.0.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.0.ready.wake();
        }
    }
}

impl<T, E> QueueSender<T, E> {
    /// Queue `item` without waiting; a full or closed queue gives it back.
    pub(crate) fn try_push(&self, item: T) -> Result<(), (TryPushError, T)> {
        self.0.push_within(item, false)
    }

    /// Queue `item` even when the queue is full (for the few events that
    /// must not be lost, each sent at most once per session).
    pub(crate) fn push_past_capacity(&self, item: T) -> Result<(), (TryPushError, T)> {
        self.0.push_within(item, true)
    }

    /// The queue, as an uncounted handle (see [`Shared::try_push`]).
    pub(crate) fn shared(&self) -> &Arc<Shared<T, E>> {
        &self.0
    }
}

/// An item, or `None` when no more can come (the senders are gone or the
/// queue is sealed), if either is ready.
fn ready_in<T>(state: &mut State<T>) -> Option<Option<T>> {
    match state.items.pop_front() {
        Some(item) => Some(Some(item)),
        None => (state.senders == 0 || state.sealed).then_some(None),
    }
}

/// The receiving side.
pub(crate) struct QueueReceiver<T, E = ()>(Arc<Shared<T, E>>);

impl<T, E> std::fmt::Debug for QueueReceiver<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueReceiver")
    }
}

impl<T, E> QueueReceiver<T, E> {
    /// The next item, or `None` once the queue is empty and no more can
    /// come (every sender is gone, or it is sealed). Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll for the next item; `Pending` wakes `cx` when one arrives or the
    /// last sender leaves.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(ready) = self.ready_now() {
            return Poll::Ready(ready);
        }
        self.0.ready.register(cx.waker());
        // A push between the check above and the registration may have
        // woken nobody: look again before sleeping.
        let mut state = self.0.lock();
        if let Some(ready) = ready_in(&mut state) {
            return Poll::Ready(ready);
        }
        // Going to sleep: an idle connection keeps no buffer.
        state.items = VecDeque::new();
        Poll::Pending
    }

    /// An item, or `None` when the senders are gone, if either is ready.
    fn ready_now(&self) -> Option<Option<T>> {
        ready_in(&mut self.0.lock())
    }

    /// The next item if one is waiting.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        self.0.lock().items.pop_front()
    }

    /// Take no more items (see [`Shared::seal`]): what is queued is still
    /// received, then `None`.
    pub(crate) fn seal(&self) {
        self.0.seal();
    }
}

impl<T, E> Drop for QueueReceiver<T, E> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver_alive = false;
        state.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::{queue, TryPushError};
    use crate::session::WireFrame;

    fn frame(n: u8) -> WireFrame {
        WireFrame::Binary(bytes::Bytes::from(vec![n]))
    }

    #[tokio::test]
    async fn bounded_ordered_and_closes_when_senders_are_gone() {
        let (tx, mut rx) = queue(2);
        let tx2 = tx.clone();
        assert_eq!(tx.try_push(frame(1)), Ok(()));
        assert_eq!(tx2.try_push(frame(2)), Ok(()));
        assert_eq!(tx.try_push(frame(3)), Err((TryPushError::Full, frame(3))));
        assert_eq!(rx.recv().await, Some(frame(1)));
        assert_eq!(rx.try_recv(), Some(frame(2)));
        assert_eq!(rx.try_recv(), None);
        drop(tx);
        assert_eq!(tx2.try_push(frame(4)), Ok(()));
        drop(tx2);
        assert_eq!(rx.recv().await, Some(frame(4)));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_receiver_that_waits_frees_the_buffer_and_overflow_events_pass() {
        let (tx, mut rx) = queue(1);
        tx.try_push(frame(1)).expect("room");
        assert_eq!(tx.try_push(frame(2)), Err((TryPushError::Full, frame(2))));
        tx.push_past_capacity(frame(3)).expect("past capacity");
        assert_eq!(rx.recv().await, Some(frame(1)));
        assert_eq!(rx.recv().await, Some(frame(3)));
        assert!(rx.0.lock().items.capacity() > 0, "drained, not yet waiting");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(10), rx.recv()).await;
        assert!(waiting.is_err(), "nothing queued");
        assert_eq!(
            rx.0.lock().items.capacity(),
            0,
            "a waiting receiver holds no buffer"
        );
    }

    #[tokio::test]
    async fn a_sealed_queue_gives_what_it_holds_then_ends() {
        let (tx, mut rx) = queue(4);
        tx.try_push(frame(1)).expect("room");
        tx.try_push(frame(2)).expect("room");
        rx.seal();
        assert_eq!(tx.try_push(frame(3)), Err((TryPushError::Closed, frame(3))));
        assert_eq!(rx.recv().await, Some(frame(1)));
        assert_eq!(rx.recv().await, Some(frame(2)));
        // A sender is still alive, yet nothing more can come: the end.
        assert_eq!(rx.recv().await, None);
        drop(tx);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_push_and_a_dropped_one_refuses() {
        let (tx, mut rx) = queue(4);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            (rx, first)
        });
        tokio::task::yield_now().await;
        tx.try_push(frame(7)).expect("push");
        let (rx, first) = waiter.await.expect("receiver task");
        assert_eq!(first, Some(frame(7)));
        drop(rx);
        assert_eq!(tx.try_push(frame(8)), Err((TryPushError::Closed, frame(8))));
    }
}
