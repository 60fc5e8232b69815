//! The order in which a phoenix.js `Presence` applies presence frames: the
//! channel pushes `presence_state` while diffs are broadcast, so a diff may
//! overtake the state (in Phoenix as here); phoenix.js holds diffs that
//! come before the first state (`pendingDiffs`) and applies them after it.
//! Test presence models feed their frames through a [`SyncGate`].

use serde_json::Value;

/// Holds `presence_diff` frames until the first `presence_state`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SyncGate {
    synced: bool,
    pending: Vec<Value>,
}

impl SyncGate {
    /// The frames to apply now, in order, for one received `frame`: a
    /// state and then the diffs held for it; a diff once synced; nothing
    /// for a diff before the first state (held) or any other frame.
    pub fn admit(&mut self, frame: &Value) -> Vec<Value> {
        match frame[3].as_str() {
            Some("presence_state") => {
                self.synced = true;
                let mut now = vec![frame.clone()];
                now.append(&mut self.pending);
                now
            }
            Some("presence_diff") if !self.synced => {
                self.pending.push(frame.clone());
                Vec::new()
            }
            Some("presence_diff") => vec![frame.clone()],
            _ => Vec::new(),
        }
    }
}
