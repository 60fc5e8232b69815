//! PresenceChannel of APP.md: tracks the user on join, pushes
//! `presence_state`, and updates, untracks, tracks extra keys and lists.

use fawkes::prelude::*;
use serde_json::{json, Value};

use super::field;

/// One joined `presence:*` topic.
#[derive(Debug, Default)]
pub struct PresenceChannel {
    user_id: String,
}

impl Channel for PresenceChannel {
    async fn join(&mut self, _: &str, params: Payload, socket: &mut ChannelSocket) -> JoinResult {
        self.user_id = socket.assign_str("user_id").unwrap_or("anon").to_owned();
        let name = match field(&params, "name") {
            Value::Null | Value::Bool(false) => Value::String(self.user_id.clone()),
            name => name,
        };
        // After the join reply, the list taken then (Phoenix's after_join).
        let presence = socket.presence().expect("presence enabled");
        let _ = presence.track(&self.user_id, json!({"name": name, "status": "online"}));
        socket.push_presence_state()?;
        Ok(Payload::empty())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
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
                let _ = presence.track(&key, json!({"name": key, "status": "extra"}));
            }
            "list" => return reply_ok(presence.list()),
            other => panic!("PresenceChannel has no handle_in for {other:?}"),
        }
        reply_ok(Payload::empty())
    }
}
