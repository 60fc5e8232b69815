//! A token bucket: the per-socket limits on joins and on messages per
//! second. No lock, no allocation: one is a field of its session.

use std::time::Duration;

use tokio::time::Instant;

/// A rate limit: up to `burst` at once, then one more every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// How many may pass at once (the bucket's size).
    pub burst: u32,
    /// One more may pass after each such period.
    pub refill_every: Duration,
}

impl RateLimit {
    /// `per_second` on average, up to `burst` at once.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Self {
            burst,
            refill_every: Duration::from_secs(1) / per_second.max(1),
        }
    }
}

/// The bucket of one socket for one [`RateLimit`], kept as the time at
/// which it would be full again (the "virtual scheduling" form of a token
/// bucket): one instant per session instead of a count and a timestamp.
///
/// The limit itself lives once in the socket's options and is passed to
/// [`TokenBucket::take`].
#[derive(Debug)]
pub(crate) struct TokenBucket {
    /// Each pass pushes this one `refill_every` later (from now at the
    /// earliest); a pass is allowed while it stays within `burst` periods
    /// of now.
    full_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new() -> Self {
        Self::new_at(Instant::now())
    }

    fn new_at(now: Instant) -> Self {
        Self { full_at: now }
    }

    /// Take a token if there is one; `false` when the rate is exceeded.
    pub(crate) fn take(&mut self, limit: &RateLimit) -> bool {
        self.take_at(limit, Instant::now())
    }

    fn take_at(&mut self, limit: &RateLimit, now: Instant) -> bool {
        let period = limit.refill_every.max(Duration::from_nanos(1));
        let window = period.checked_mul(limit.burst).unwrap_or(Duration::MAX);
        let Some(full_at) = self.full_at.max(now).checked_add(period) else {
            return false;
        };
        if full_at.saturating_duration_since(now) > window {
            return false;
        }
        self.full_at = full_at;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_per_period() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let limit = RateLimit {
            burst: 3,
            refill_every: Duration::from_millis(100),
        };
        let mut bucket = TokenBucket::new_at(start);
        assert!((0..3).all(|_| bucket.take_at(&limit, at(0))));
        assert!(!bucket.take_at(&limit, at(0)));
        assert!(bucket.take_at(&limit, at(150)));
        assert!(!bucket.take_at(&limit, at(150)));
        // The 50 ms already waited count towards the next token.
        assert!(bucket.take_at(&limit, at(200)));
        assert!(!bucket.take_at(&limit, at(200)));
        assert!(
            (0..3).all(|_| bucket.take_at(&limit, at(60_000))),
            "refilled up to the burst"
        );
        assert!(!bucket.take_at(&limit, at(60_000)));
    }

    #[test]
    fn a_session_bucket_stays_small() {
        // Two of these are in every session, idle or not.
        assert!(std::mem::size_of::<Option<TokenBucket>>() <= 16);
    }

    #[test]
    fn a_zero_burst_lets_nothing_pass_and_huge_limits_do_not_overflow() {
        let now = Instant::now();
        let none = RateLimit {
            burst: 0,
            refill_every: Duration::from_millis(1),
        };
        assert!(!TokenBucket::new_at(now).take_at(&none, now));
        let huge = RateLimit {
            burst: u32::MAX,
            refill_every: Duration::MAX,
        };
        let mut bucket = TokenBucket::new_at(now);
        assert!(
            !bucket.take_at(&huge, now),
            "a period past the end of time never passes"
        );
    }

    #[test]
    fn per_second_spreads_the_rate() {
        let limit = RateLimit::per_second(100, 10);
        assert_eq!(limit.refill_every, Duration::from_millis(10));
        assert_eq!(
            RateLimit::per_second(0, 1).refill_every,
            Duration::from_secs(1)
        );
    }
}
