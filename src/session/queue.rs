//! A bounded frame queue that holds no memory while it is empty.
//!
//! Each session has one, and most sessions are idle most of the time;
//! tokio's mpsc preallocates a block of slots per channel, this queue
//! allocates only when frames are waiting (and gives large buffers back
//! once a burst has drained).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::WireFrame;

/// A drained buffer larger than this many frames is freed.
const SHRINK_ABOVE: usize = 256;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds `capacity` frames already.
    Full,
    /// The receiver is gone.
    Closed,
}

struct State {
    frames: VecDeque<WireFrame>,
    senders: usize,
    receiver_alive: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new queue of at most `capacity` frames.
pub(crate) fn queue(capacity: usize) -> (QueueSender, QueueReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        ready: Notify::new(),
        capacity: capacity.max(1),
    });
    (QueueSender(shared.clone()), QueueReceiver(shared))
}

/// The sending side; cloning it adds a sender.
pub(crate) struct QueueSender(Arc<Shared>);

impl std::fmt::Debug for QueueSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueSender")
    }
}

impl Clone for QueueSender {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(self.0.clone())
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.0.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.0.ready.notify_one();
        }
    }
}

impl QueueSender {
    /// Queue `frame` without waiting.
    pub(crate) fn try_push(&self, frame: WireFrame) -> Result<(), PushError> {
        {
            let mut state = self.0.lock();
            if !state.receiver_alive {
                return Err(PushError::Closed);
            }
            if state.frames.len() >= self.0.capacity {
                return Err(PushError::Full);
            }
            state.frames.push_back(frame);
        }
        self.0.ready.notify_one();
        Ok(())
    }
}

/// The receiving side.
pub(crate) struct QueueReceiver(Arc<Shared>);

impl std::fmt::Debug for QueueReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueReceiver")
    }
}

impl QueueReceiver {
    /// The next frame, or `None` once every sender is gone and the queue is
    /// empty. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<WireFrame> {
        loop {
            {
                let mut state = self.0.lock();
                if let Some(frame) = pop(&mut state) {
                    return Some(frame);
                }
                if state.senders == 0 {
                    return None;
                }
            }
            // A push after the check above stores a permit, so this cannot
            // miss it.
            self.0.ready.notified().await;
        }
    }

    /// The next frame if one is waiting.
    pub(crate) fn try_recv(&mut self) -> Option<WireFrame> {
        pop(&mut self.0.lock())
    }
}

fn pop(state: &mut State) -> Option<WireFrame> {
    let frame = state.frames.pop_front()?;
    if state.frames.is_empty() && state.frames.capacity() > SHRINK_ABOVE {
        state.frames = VecDeque::new();
    }
    Some(frame)
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver_alive = false;
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::{queue, PushError};
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
        assert_eq!(tx.try_push(frame(3)), Err(PushError::Full));
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
        assert_eq!(tx.try_push(frame(8)), Err(PushError::Closed));
    }
}
