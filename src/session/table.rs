//! The joined channels of one session: at most one per topic.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::channel::{Mailbox, TerminateReason};

/// Whether a joined channel is leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelState {
    Joined,
    Leaving,
}

/// One joined channel, as the session sees it.
pub(crate) struct ChannelEntry {
    pub(crate) channel_id: u64,
    pub(crate) join_ref: Option<String>,
    pub(crate) mailbox: Mailbox,
    pub(crate) state: ChannelState,
    pub(crate) kill: CancellationToken,
    pub(crate) kill_reason: Arc<OnceLock<TerminateReason>>,
}

impl ChannelEntry {
    /// Stop the channel task for `reason`.
    pub(crate) fn kill(&self, reason: TerminateReason) {
        let _ = self.kill_reason.set(reason);
        self.kill.cancel();
    }
}

/// topic -> joined channel. A vector: a connection joins a handful of
/// topics (at most `max_channels`), and an empty or one-entry hash map
/// costs more memory than a linear scan costs time.
#[derive(Default)]
pub(crate) struct ChannelTable {
    entries: Vec<(String, ChannelEntry)>,
}

impl ChannelTable {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get_mut(&mut self, topic: &str) -> Option<&mut ChannelEntry> {
        self.entries
            .iter_mut()
            .find(|(t, _)| t == topic)
            .map(|(_, entry)| entry)
    }

    /// Add or replace the channel of `topic`.
    pub(crate) fn insert(&mut self, topic: String, entry: ChannelEntry) {
        self.remove(&topic);
        self.entries.push((topic, entry));
    }

    pub(crate) fn remove(&mut self, topic: &str) -> Option<ChannelEntry> {
        let index = self.entries.iter().position(|(t, _)| t == topic)?;
        Some(self.entries.swap_remove(index).1)
    }

    pub(crate) fn remove_by_id(&mut self, channel_id: u64) -> Option<(String, ChannelEntry)> {
        let index = self
            .entries
            .iter()
            .position(|(_, entry)| entry.channel_id == channel_id)?;
        Some(self.entries.swap_remove(index))
    }

    /// Forget every channel (their tasks are stopped by the session token).
    pub(crate) fn clear(&mut self) {
        self.entries = Vec::new();
    }
}
