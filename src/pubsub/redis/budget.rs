//! Byte bounds for the Redis engine's queues. Each queue is a channel
//! bounded by count; a [`ByteBudget`] bounds it by the bytes it holds too,
//! since one item may be a large broadcast or a presence transfer of many
//! megabytes. A queued item carries its [`Held`] share of the budget,
//! handed back when the item is dropped (sent, delivered or discarded).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// An item in a byte-bounded queue, with its share of the budget.
pub(super) type Queued<T> = (T, Held);

/// How many bytes one queue may hold.
#[derive(Debug)]
pub(super) struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub(super) fn new(limit: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes `len` bytes for one item, or `None` when the queue would hold
    /// more than the limit. An item larger than the whole limit is taken
    /// when nothing else is held, so one big message is delayed behind the
    /// others, never refused forever.
    pub(super) fn take(self: &Arc<Self>, len: usize) -> Option<Held> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used != 0 && used.saturating_add(len) > self.limit {
                return None;
            }
            match self.used.compare_exchange_weak(
                used,
                used.saturating_add(len),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Held {
                        budget: self.clone(),
                        len,
                    })
                }
                Err(now) => used = now,
            }
        }
    }

    /// Queues the item `make` builds around its share of `len` bytes on
    /// `queue`; `false` (the item dropped, its bytes given back) when the
    /// queue is full by count or by bytes.
    pub(super) fn try_send<T>(
        self: &Arc<Self>,
        queue: &mpsc::Sender<T>,
        len: usize,
        make: impl FnOnce(Held) -> T,
    ) -> bool {
        match self.take(len) {
            Some(held) => queue.try_send(make(held)).is_ok(),
            None => false,
        }
    }

    /// The bytes held now.
    #[cfg(test)]
    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One queued item's bytes, handed back to the budget on drop.
#[derive(Debug)]
pub(super) struct Held {
    budget: Arc<ByteBudget>,
    len: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.len, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_past_its_limit_and_gets_the_bytes_back_on_drop() {
        let budget = ByteBudget::new(100);
        let a = budget.take(60).expect("fits");
        let b = budget.take(40).expect("fits exactly");
        assert!(budget.take(1).is_none(), "full");
        drop(a);
        assert_eq!(budget.used(), 40);
        let c = budget.take(60).expect("room again");
        drop((b, c));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn an_item_larger_than_the_limit_goes_only_alone() {
        let budget = ByteBudget::new(100);
        let small = budget.take(10).expect("fits");
        assert!(budget.take(500).is_none(), "not beside another item");
        drop(small);
        let big = budget.take(500).expect("alone it goes");
        assert!(budget.take(1).is_none(), "nothing beside it");
        drop(big);
        assert_eq!(budget.used(), 0);
    }
}
