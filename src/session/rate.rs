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

/// The bucket of one socket for one [`RateLimit`].
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    tokens: u32,
    /// When the last token was added (or the bucket was last full).
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self::new_at(limit, Instant::now())
    }

    fn new_at(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: limit.burst,
            refilled: now,
        }
    }

    /// Take a token if there is one; `false` when the rate is exceeded.
    pub(crate) fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn refill(&mut self, now: Instant) {
        if self.tokens >= self.limit.burst {
            self.refilled = now;
            return;
        }
        let period = self.limit.refill_every.max(Duration::from_nanos(1));
        let elapsed = now.saturating_duration_since(self.refilled);
        let periods = elapsed.as_nanos() / period.as_nanos();
        if periods == 0 {
            return;
        }
        let added = u32::try_from(periods).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(added).min(self.limit.burst);
        self.refilled = if self.tokens >= self.limit.burst {
            now
        } else {
            // Keep the partial period already waited.
            self.refilled + period * added
        };
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
        let mut bucket = TokenBucket::new_at(limit, start);
        assert!((0..3).all(|_| bucket.take_at(at(0))));
        assert!(!bucket.take_at(at(0)));
        assert!(bucket.take_at(at(150)));
        assert!(!bucket.take_at(at(150)));
        // The 50 ms already waited count towards the next token.
        assert!(bucket.take_at(at(200)));
        assert!(!bucket.take_at(at(200)));
        assert!(
            (0..3).all(|_| bucket.take_at(at(60_000))),
            "refilled up to the burst"
        );
        assert!(!bucket.take_at(at(60_000)));
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
