//! The `fawkes:dashboard` channel: a join registers a watcher (the sampler
//! runs while one exists) and answers with the current state and the rate
//! history; the page then receives a `snapshot` broadcast every second and
//! may ask for one topic's presences (`presence`) or search the topics
//! (`topics`).

use fawkes::prelude::*;
use serde::Deserialize;

use super::sampler::{Sampler, Watch};

/// The internal topic the dashboard page joins.
pub(crate) const TOPIC: &str = "fawkes:dashboard";
/// The event of the broadcast snapshots.
pub(crate) const SNAPSHOT_EVENT: &str = "snapshot";

/// One page watching the dashboard.
pub(crate) struct DashboardChannel {
    sampler: Sampler,
    /// Held from the join until the channel's state is dropped (leave,
    /// close, crash): the sampler stops when the last one goes.
    watch: Option<Watch>,
}

impl DashboardChannel {
    /// A channel reading from `sampler`.
    pub(crate) fn new(sampler: Sampler) -> Self {
        Self {
            sampler,
            watch: None,
        }
    }
}

/// The `presence` and `topics` events' payloads.
#[derive(Default, Deserialize)]
struct Query {
    topic: Option<String>,
    query: Option<String>,
}

impl Channel for DashboardChannel {
    async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelSocket) -> JoinResult {
        self.watch = Some(self.sampler.watch());
        Ok(self.sampler.current().into())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        _: &mut ChannelSocket,
    ) -> HandleResult {
        let sources = self.sampler.sources();
        let query = payload.deserialize::<Query>().unwrap_or_default();
        match event {
            "presence" => {
                let Some(topic) = query.topic else {
                    return Err(ChannelError::reason("expected {\"topic\": string}"));
                };
                match sources.presences(&topic) {
                    Some(list) => reply_ok(list),
                    None => Err(ChannelError::reason("presence is off on this node")),
                }
            }
            "topics" => reply_ok(sources.search_topics(query.query.as_deref().unwrap_or(""))),
            _ => Err(ChannelError::reason("unknown event")),
        }
    }
}
