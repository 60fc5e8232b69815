//! Two wakers for one connection task, so a wake-up says which half to poll:
//! a burst of outbound frames wakes only the writer, and the session (its
//! timers, events and socket reads) is not polled for it.
//!
//! Both wakers share one allocation: the pointer to it, tagged in its low
//! bits with the half (the allocation is aligned to at least 8 bytes).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

use futures_util::task::AtomicWaker;

/// The session half: socket reads, events, timers, channel callbacks.
pub(super) const SESSION: u8 = 1;
/// The writer half: the outbound queue and socket writes.
pub(super) const WRITER: u8 = 2;
const TAGS: usize = (SESSION | WRITER) as usize;

struct Inner {
    /// Halves woken since the task last looked.
    woken: AtomicU8,
    /// The task itself.
    task: AtomicWaker,
}

const _: () = assert!(std::mem::align_of::<Inner>() > TAGS);

/// The wakers of one connection.
pub(super) struct Wakeups {
    inner: Arc<Inner>,
    session: Waker,
    writer: Waker,
}

impl Wakeups {
    /// New wakers; both halves count as woken, so the first poll runs both.
    pub(super) fn new() -> Self {
        let inner = Arc::new(Inner {
            woken: AtomicU8::new(SESSION | WRITER),
            task: AtomicWaker::new(),
        });
        let session = half_waker(&inner, SESSION);
        let writer = half_waker(&inner, WRITER);
        Self {
            inner,
            session,
            writer,
        }
    }

    /// Remember the task's waker and take the halves woken since last time.
    pub(super) fn take(&self, cx: &Context<'_>) -> u8 {
        self.inner.task.register(cx.waker());
        self.inner.woken.swap(0, Ordering::AcqRel)
    }

    /// The waker of one half.
    pub(super) fn waker(&self, half: u8) -> &Waker {
        if half == WRITER {
            &self.writer
        } else {
            &self.session
        }
    }
}

fn half_waker(inner: &Arc<Inner>, half: u8) -> Waker {
    let data = Arc::into_raw(Arc::clone(inner)) as usize | half as usize;
    // SAFETY: `data` is a strong reference to `Inner` tagged in bits the
    // alignment leaves free; VTABLE untags it and keeps the count balanced.
    unsafe { Waker::from_raw(RawWaker::new(data as *const (), &VTABLE)) }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

fn untag(data: *const ()) -> (*const Inner, u8) {
    let data = data as usize;
    ((data & !TAGS) as *const Inner, (data & TAGS) as u8)
}

unsafe fn clone(data: *const ()) -> RawWaker {
    let (inner, _) = untag(data);
    // SAFETY: `inner` came from `Arc::into_raw` and is still counted.
    unsafe { Arc::increment_strong_count(inner) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: as in `wake_by_ref`, then this reference is given up.
    unsafe {
        wake_by_ref(data);
        drop_waker(data);
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    let (inner, half) = untag(data);
    // SAFETY: the waker holds a strong reference, so `inner` is alive.
    let inner = unsafe { &*inner };
    inner.woken.fetch_or(half, Ordering::AcqRel);
    inner.task.wake();
}

unsafe fn drop_waker(data: *const ()) {
    let (inner, _) = untag(data);
    // SAFETY: releases the strong reference this waker held.
    unsafe { Arc::decrement_strong_count(inner) };
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    use super::{Wakeups, SESSION, WRITER};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn each_half_reports_itself_and_wakes_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(Arc::clone(&count));
        let cx = Context::from_waker(&task);
        let wakeups = Wakeups::new();
        assert_eq!(wakeups.take(&cx), SESSION | WRITER, "first poll runs both");
        assert_eq!(wakeups.take(&cx), 0);

        wakeups.waker(WRITER).wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(wakeups.take(&cx), WRITER);

        let session = wakeups.waker(SESSION).clone();
        drop(wakeups);
        session.wake_by_ref();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "a clone outlives the owner"
        );
        session.wake();
    }
}
