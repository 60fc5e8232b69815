//! PresenceChannel of APP.md: tracks the user on join, pushes
//! `presence_state`, and updates, untracks, tracks extra keys and lists.

use fawkes::presence::tracker::Meta;
use fawkes::{Channel, ChannelSocket, HandleResult, Info, JoinResult, Payload, Reply};
use serde_json::{json, Value};

use super::field;

/// Sent to itself after a join: track, then push `presence_state`.
struct AfterJoin {
    name: Value,
}

/// One joined `presence:*` topic.
#[derive(Debug, Default)]
pub struct PresenceChannel {
    user_id: String,
}

fn meta(value: Value) -> Meta {
    match value {
        Value::Object(map) => map,
        _ => Meta::new(),
    }
}

impl Channel for PresenceChannel {
    async fn join(
        &mut self,
        _topic: &str,
        params: Payload,
        socket: &mut ChannelSocket,
    ) -> JoinResult {
        self.user_id = socket.assign_str("user_id").unwrap_or("anon").to_owned();
        let name = match field(&params, "name") {
            Value::Null | Value::Bool(false) => Value::String(self.user_id.clone()),
            name => name,
        };
        socket
            .send_info(AfterJoin { name })
            .expect("own mailbox has room");
        JoinResult::Ok(Payload::empty())
    }

    async fn handle_info(&mut self, info: Info, socket: &mut ChannelSocket) -> HandleResult {
        if let Ok(AfterJoin { name }) = info.downcast::<AfterJoin>() {
            let presence = socket.presence().expect("presence enabled");
            let _ = presence.track(
                &self.user_id,
                meta(json!({"name": name, "status": "online"})),
            );
            let list = presence.list();
            socket
                .push("presence_state", list)
                .expect("push presence_state");
        }
        HandleResult::NoReply
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
                HandleResult::Reply(Reply::ok_empty())
            }
            "untrack" => {
                presence.untrack(&self.user_id);
                HandleResult::Reply(Reply::ok_empty())
            }
            "track_extra" => {
                let key = match field(&payload, "key") {
                    Value::String(key) => key,
                    other => other.to_string(),
                };
                let _ = presence.track(&key, meta(json!({"name": key, "status": "extra"})));
                HandleResult::Reply(Reply::ok_empty())
            }
            "list" => HandleResult::Reply(Reply::ok(presence.list())),
            other => panic!("PresenceChannel has no handle_in for {other:?}"),
        }
    }
}
