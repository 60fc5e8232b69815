//! PresenceChannel of APP.md: tracks the user on join, pushes
//! `presence_state`, and updates, untracks, tracks extra keys and lists.

use fawkes::prelude::*;
use fawkes::presence::tracker::Meta;
use serde_json::{json, Value};

use super::field;

/// Sent to itself after a join: track, then push `presence_state`.
pub struct AfterJoin {
    name: Value,
}

/// One joined `presence:*` topic.
#[derive(Debug, Default)]
pub struct PresenceChannel {
    user_id: String,
}

fn meta(name: Value, status: &str) -> Meta {
    let mut meta = Meta::new();
    meta.insert("name".into(), name);
    meta.insert("status".into(), status.into());
    meta
}

impl Channel<AfterJoin> for PresenceChannel {
    async fn join(
        &mut self,
        _: &str,
        params: Payload,
        socket: &mut ChannelSocket<AfterJoin>,
    ) -> JoinResult {
        self.user_id = socket.assign_str("user_id").unwrap_or("anon").to_owned();
        let name = match field(&params, "name") {
            Value::Null | Value::Bool(false) => Value::String(self.user_id.clone()),
            name => name,
        };
        socket.send_info(AfterJoin { name })?;
        Ok(Payload::empty())
    }

    async fn handle_info(
        &mut self,
        AfterJoin { name }: AfterJoin,
        socket: &mut ChannelSocket<AfterJoin>,
    ) -> HandleResult {
        let presence = socket.presence().expect("presence enabled");
        let _ = presence.track(&self.user_id, meta(name, "online"));
        socket.push("presence_state", presence.list())?;
        noreply()
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket<AfterJoin>,
    ) -> HandleResult {
        let presence = socket.presence().expect("presence enabled");
        match event {
            "update_status" => {
                let status = field(&payload, "status");
                let _ = presence.update_with(&self.user_id, |mut meta| {
                    meta.insert("status".into(), status);
                    meta
                });
            }
            "untrack" => presence.untrack(&self.user_id),
            "track_extra" => {
                let key = match field(&payload, "key") {
                    Value::String(key) => key,
                    other => other.to_string(),
                };
                let _ = presence.track(&key, meta(json!(key), "extra"));
            }
            "list" => return reply_ok(presence.list()),
            other => panic!("PresenceChannel has no handle_in for {other:?}"),
        }
        reply_ok(Payload::empty())
    }
}
