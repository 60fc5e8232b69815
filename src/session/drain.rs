//! Drain on deploy: the shutdown signal of every session, split into
//! shards so the endpoint can close its sessions in batches (Phoenix's
//! socket drainer: batch size, interval) instead of sending every client
//! back at once.
//!
//! Each new session waits on one shard's token, the shards taken in turn,
//! so the open sessions spread evenly over the shards. Draining cancels
//! the shards a group at a time. This costs no field per session: a
//! session waits on its shard's token exactly as it would on one shared
//! token.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Shards of the session shutdown signal. More shards make batches closer
/// to their size; each costs one token (about a hundred bytes) per
/// endpoint.
/// A power of two (see [`spread`]).
pub(crate) const SHARDS: usize = 1024;

/// How the endpoint closes its sessions when it shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOptions {
    /// Sessions closed per batch (Phoenix: 10,000).
    pub batch_size: usize,
    /// Time between two batches (Phoenix: 2 s).
    pub batch_interval: Duration,
    /// The longest the batches may take: more batches than fit are merged
    /// into fewer, larger ones (Phoenix's `shutdown`: 30 s).
    pub period: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            batch_size: 10_000,
            batch_interval: Duration::from_secs(2),
            period: Duration::from_secs(30),
        }
    }
}

/// The shards of the sessions' shutdown signal.
#[derive(Debug)]
pub(crate) struct Drain {
    /// Cancelled last: ends every session still open.
    root: CancellationToken,
    shards: Box<[CancellationToken]>,
    next: AtomicUsize,
}

impl Default for Drain {
    fn default() -> Self {
        let root = CancellationToken::new();
        let shards = (0..SHARDS).map(|_| root.child_token()).collect();
        Self {
            root,
            shards,
            next: AtomicUsize::new(0),
        }
    }
}

impl Drain {
    /// The token a new session ends on.
    pub(crate) fn session_token(&self) -> CancellationToken {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % SHARDS;
        self.shards[spread(n)].clone()
    }

    /// Close `open` sessions in batches, as `options` says; returns once
    /// every batch has been told to close. Cancel-safe.
    pub(crate) async fn run(&self, open: usize, options: DrainOptions) {
        let rounds = plan(open, self.shards.len(), options);
        let count = rounds.len();
        if count > 1 {
            tracing::info!(
                sessions = open,
                batches = count,
                interval_ms = options.batch_interval.as_millis() as u64,
                "draining sessions in batches"
            );
        }
        for (index, shards) in rounds.into_iter().enumerate() {
            for token in &self.shards[shards] {
                token.cancel();
            }
            if index + 1 < count {
                tokio::time::sleep(options.batch_interval).await;
            }
        }
        self.finish();
    }

    /// Close every session still open.
    pub(crate) fn finish(&self) {
        self.root.cancel();
    }
}

/// The shard of the `n`th session: `n`'s bits reversed, so that however
/// many sessions there are, they are spread evenly over the shards (0, 512,
/// 256, 768, ...), and each batch's range of shards holds its share.
fn spread(n: usize) -> usize {
    const BITS: u32 = SHARDS.trailing_zeros();
    n.reverse_bits() >> (usize::BITS - BITS)
}

/// The shards each batch cancels: enough batches for `open` sessions at
/// `batch_size` each, no more than fit in `period` (nor more than there are
/// shards), each batch an equal share of the shards.
pub(crate) fn plan(open: usize, shards: usize, options: DrainOptions) -> Vec<Range<usize>> {
    let wanted = open.div_ceil(options.batch_size.max(1)).max(1);
    let interval = options.batch_interval.as_millis().max(1);
    let fit = usize::try_from(options.period.as_millis() / interval)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let rounds = wanted.min(fit).min(shards.max(1));
    (0..rounds)
        .map(|r| (r * shards / rounds)..((r + 1) * shards / rounds))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(batch_size: usize, interval_ms: u64, period_ms: u64) -> DrainOptions {
        DrainOptions {
            batch_size,
            batch_interval: Duration::from_millis(interval_ms),
            period: Duration::from_millis(period_ms),
        }
    }

    #[test]
    fn few_sessions_spread_over_every_batch() {
        let rounds = plan(15, SHARDS, options(5, 1000, 60_000));
        let per_round: Vec<usize> = rounds
            .iter()
            .map(|r| (0..15).filter(|n| r.contains(&spread(*n))).count())
            .collect();
        assert_eq!(per_round, vec![6, 5, 4]);
        let mut shards: Vec<usize> = (0..SHARDS).map(spread).collect();
        shards.sort_unstable();
        assert_eq!(shards, (0..SHARDS).collect::<Vec<_>>(), "a permutation");
    }

    #[test]
    fn plan_covers_every_shard_once_in_the_batches_needed() {
        let rounds = plan(2_000, SHARDS, options(100, 1000, 60_000));
        assert_eq!(rounds.len(), 20);
        assert_eq!(rounds[0].start, 0);
        assert_eq!(rounds[19].end, SHARDS);
        for pair in rounds.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        // Few sessions: one batch, at once.
        assert_eq!(
            plan(15, SHARDS, options(10_000, 2000, 30_000)),
            vec![0..SHARDS]
        );
        // The period caps the batches: 10 s at 2 s is 6 batches.
        assert_eq!(plan(2_000, SHARDS, options(100, 2000, 10_000)).len(), 6);
        // Never more batches than shards.
        assert_eq!(plan(1_000_000, 8, options(1, 1, 1_000_000)).len(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_close_in_batches_one_interval_apart() {
        let drain = std::sync::Arc::new(Drain::default());
        let sessions: Vec<CancellationToken> = (0..2_000).map(|_| drain.session_token()).collect();
        let closed = || sessions.iter().filter(|t| t.is_cancelled()).count();
        let interval = Duration::from_millis(500);
        let run = tokio::spawn({
            let drain = drain.clone();
            async move { drain.run(2_000, options(400, 500, 60_000)).await }
        });
        // Five batches of 400: the first at once, then one per interval.
        // Sampled half-way between two batches.
        let mut seen = Vec::new();
        tokio::time::sleep(interval / 2).await;
        for _ in 0..5 {
            seen.push(closed());
            tokio::time::sleep(interval).await;
        }
        run.await.expect("drain ran");
        assert_eq!(closed(), 2_000);
        let batches: Vec<usize> = seen
            .iter()
            .scan(0, |before, now| {
                let batch = now - *before;
                *before = *now;
                Some(batch)
            })
            .collect();
        assert_eq!(batches.len(), 5);
        // Shards hold whole sessions, so a batch is about its size, not
        // exactly (2,000 sessions on 1,024 shards: some shards hold one).
        for batch in &batches {
            assert!((340..=460).contains(batch), "batches {batches:?}");
        }
    }
}
