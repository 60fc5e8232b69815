//! How often a socket's clients hit a limit, for operators (and tests).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one socket's limits; shared by all its sessions.
#[derive(Debug, Default)]
pub struct LimitCounters {
    joins_rate_limited: AtomicU64,
    sessions_rate_limited: AtomicU64,
    joins_over_max_channels: AtomicU64,
}

impl LimitCounters {
    /// Joins refused because the socket joined too fast.
    pub fn joins_rate_limited(&self) -> u64 {
        self.joins_rate_limited.load(Ordering::Relaxed)
    }

    /// Sessions closed because they sent messages too fast.
    pub fn sessions_rate_limited(&self) -> u64 {
        self.sessions_rate_limited.load(Ordering::Relaxed)
    }

    /// Joins refused because the socket had joined `max_channels` already.
    pub fn joins_over_max_channels(&self) -> u64 {
        self.joins_over_max_channels.load(Ordering::Relaxed)
    }

    pub(crate) fn join_rate_limited(&self) {
        self.joins_rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_rate_limited(&self) {
        self.sessions_rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn join_over_max_channels(&self) {
        self.joins_over_max_channels.fetch_add(1, Ordering::Relaxed);
    }
}
