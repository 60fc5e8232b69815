//! [`ChannelPresence`]: presence calls bound to one channel and its topic.

use fawkes_protocol::Payload;
use serde_json::Value;

use super::tracker::{Meta, TrackError};
use super::{HoldDiffs, Presence, Publish};

/// Presence as a channel uses it (Phoenix's `Presence.track(socket, ...)`):
/// entries are owned by the channel and leave when it ends.
#[derive(Clone, Copy)]
pub struct ChannelPresence<'a> {
    presence: &'a Presence,
    owner: u64,
    topic: &'a str,
    held: &'a dyn HoldDiffs,
}

impl std::fmt::Debug for ChannelPresence<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelPresence")
            .field("owner", &self.owner)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl<'a> ChannelPresence<'a> {
    pub(crate) fn new(
        presence: &'a Presence,
        owner: u64,
        topic: &'a str,
        held: &'a dyn HoldDiffs,
    ) -> Self {
        Self {
            presence,
            owner,
            topic,
            held,
        }
    }

    /// Track `key` with `meta` (a JSON object: a [`Meta`], or
    /// `json!({"status": "online"})`); returns its `phx_ref`.
    pub fn track(&self, key: &str, meta: impl Into<Value>) -> Result<String, TrackError> {
        let meta = object(meta)?;
        self.presence.track_to(
            self.owner,
            self.topic,
            key,
            meta,
            &Publish::After(self.held),
        )
    }

    /// Replace `key`'s meta (a JSON object, as for [`Self::track`]).
    pub fn update(&self, key: &str, meta: impl Into<Value>) -> Result<String, TrackError> {
        let meta = object(meta)?;
        self.presence.update_to(
            self.owner,
            self.topic,
            key,
            meta,
            &Publish::After(self.held),
        )
    }

    /// Change `key`'s meta with a function of the current one (without its
    /// `phx_ref` fields).
    pub fn update_with(
        &self,
        key: &str,
        f: impl FnOnce(Meta) -> Meta,
    ) -> Result<String, TrackError> {
        let mut current = self
            .presence
            .get(self.owner, self.topic, key)
            .ok_or(TrackError::NoPresence)?;
        current.remove("phx_ref");
        current.remove("phx_ref_prev");
        self.update(key, f(current))
    }

    /// Stop tracking `key`.
    pub fn untrack(&self, key: &str) {
        self.presence
            .untrack_to(self.owner, self.topic, key, &Publish::After(self.held));
    }

    /// Everyone on the topic.
    pub fn list(&self) -> Payload {
        self.presence.list(self.topic)
    }
}

/// The meta as the tracker keeps it: a JSON object, moved, not copied.
fn object(meta: impl Into<Value>) -> Result<Meta, TrackError> {
    match meta.into() {
        Value::Object(meta) => Ok(meta),
        _ => Err(TrackError::MetaNotObject),
    }
}
