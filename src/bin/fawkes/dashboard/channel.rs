//! The `fawkes:dashboard` channel: a join registers a watcher (the sampler
//! runs while one exists) and answers with the current state and the rate
//! history; the page then receives a `snapshot` broadcast every second and
//! may ask for one topic's presences (`presence`) or search the topics
//! (`topics`).

use fawkes::{Channel, ChannelSocket, HandleResult, JoinResult, Payload, Reply};
use serde_json::{json, Value};

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

fn string_field<'a>(payload: &'a Payload, field: &str) -> Option<&'a str> {
    match payload {
        Payload::Json(Value::Object(map)) => map.get(field).and_then(Value::as_str),
        _ => None,
    }
}

fn error(reason: &str) -> HandleResult {
    HandleResult::Reply(Reply::error(Payload::Json(json!({"reason": reason}))))
}

impl Channel for DashboardChannel {
    async fn join(&mut self, _topic: &str, _params: Payload, _: &mut ChannelSocket) -> JoinResult {
        self.watch = Some(self.sampler.watch());
        JoinResult::Ok(Payload::Json(self.sampler.current()))
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        _: &mut ChannelSocket,
    ) -> HandleResult {
        let sources = self.sampler.sources();
        match event {
            "presence" => {
                let Some(topic) = string_field(&payload, "topic") else {
                    return error("expected {\"topic\": string}");
                };
                match sources.presences(topic) {
                    Some(list) => HandleResult::Reply(Reply::ok(Payload::Json(list))),
                    None => error("presence is off on this node"),
                }
            }
            "topics" => {
                let query = string_field(&payload, "query").unwrap_or("");
                HandleResult::Reply(Reply::ok(Payload::Json(sources.search_topics(query))))
            }
            _ => error("unknown event"),
        }
    }
}
