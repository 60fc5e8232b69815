//! A lock-free latency histogram shared by many tasks.
//!
//! Values (nanoseconds) go into log-linear buckets: exact below 128, then 64
//! buckets per power of two, so a reported percentile is at most ~1.6 %
//! above the true value. Buckets are atomic counters, so every subscriber
//! task records into the same histogram without locking or per-task copies.

use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this are counted exactly.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above [`LINEAR`] (as a shift: 2^6 = 64).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Bucket count: the linear range, then 64 per exponent from 7 to 63.
const BUCKETS: usize = LINEAR as usize + (64 - 7) * SUB as usize;

/// A concurrent histogram of `u64` values.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub(crate) fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Count one value.
    pub(crate) fn record(&self, value: u64) {
        self.buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// How many values were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The largest value recorded (exact), 0 when empty.
    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The value at quantile `q` (0.0..=1.0): the upper bound of the bucket
    /// holding the `ceil(q * count)`-th smallest value, capped at the max.
    /// 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return upper_bound(index).min(self.max());
            }
        }
        self.max()
    }
}

/// The bucket index of `value`.
fn bucket_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= 7
    let mantissa = value >> (exponent - SUB_BITS); // in 64..128
    LINEAR as usize + (exponent as usize - 7) * SUB as usize + (mantissa - SUB) as usize
}

/// The largest value that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    if index < LINEAR as usize {
        return index as u64;
    }
    let offset = index - LINEAR as usize;
    let exponent = (offset / SUB as usize) as u32 + 7;
    let mantissa = (offset % SUB as usize) as u64 + SUB;
    let shift = exponent - SUB_BITS;
    // The bucket covers [mantissa << shift, (mantissa + 1) << shift).
    let end = u128::from(mantissa + 1) << shift;
    u64::try_from(end - 1).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_precision() {
        for value in [
            0,
            1,
            127,
            128,
            129,
            1_000,
            65_535,
            1_000_000,
            123_456_789,
            u64::MAX,
        ] {
            let bound = upper_bound(bucket_of(value));
            assert!(bound >= value, "{value} above its bucket bound {bound}");
            assert!(
                (bound - value) as f64 <= value as f64 / 64.0 + 1.0,
                "{value} -> {bound}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_series() {
        let h = Histogram::new();
        // 1..=10_000 microseconds, in nanoseconds.
        for us in 1..=10_000u64 {
            h.record(us * 1_000);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000_000);
        let close = |got: u64, want: u64| {
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.02, "got {got}, want about {want}");
        };
        close(h.quantile(0.5), 5_000_000);
        close(h.quantile(0.99), 9_900_000);
        close(h.quantile(0.999), 9_990_000);
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert!(h.quantile(0.0) <= 1_000 + 16);
    }

    #[test]
    fn empty_and_single_value() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0);
        h.record(42);
        assert_eq!(h.quantile(0.5), 42);
        assert_eq!(h.quantile(0.999), 42);
    }
}
