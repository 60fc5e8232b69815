//! The joined channels of one session: at most one per topic.

use std::collections::HashMap;
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

/// topic -> joined channel.
#[derive(Default)]
pub(crate) struct ChannelTable {
    by_topic: HashMap<String, ChannelEntry>,
}

impl ChannelTable {
    pub(crate) fn len(&self) -> usize {
        self.by_topic.len()
    }

    pub(crate) fn get_mut(&mut self, topic: &str) -> Option<&mut ChannelEntry> {
        self.by_topic.get_mut(topic)
    }

    pub(crate) fn insert(&mut self, topic: String, entry: ChannelEntry) {
        self.by_topic.insert(topic, entry);
    }

    pub(crate) fn remove(&mut self, topic: &str) -> Option<ChannelEntry> {
        self.by_topic.remove(topic)
    }

    pub(crate) fn remove_by_id(&mut self, channel_id: u64) -> Option<(String, ChannelEntry)> {
        let topic = self
            .by_topic
            .iter()
            .find(|(_, entry)| entry.channel_id == channel_id)
            .map(|(topic, _)| topic.clone())?;
        self.by_topic.remove_entry(&topic)
    }

    /// Forget every channel (their tasks are stopped by the session token).
    pub(crate) fn clear(&mut self) {
        self.by_topic.clear();
    }
}
