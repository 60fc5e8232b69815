//! RoomChannel of APP.md: echo, replies, pushes, broadcasts, an intercepted
//! event, async and slow replies, assigns, crashes and stops.

use std::time::Duration;

use fawkes::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{field, truthy};

/// One joined `room:*` topic.
#[derive(Debug, Default)]
pub struct RoomChannel {
    user_id: String,
    value: Value,
}

/// The `slow` event's payload (anything else crashes, as in Phoenix).
#[derive(Deserialize)]
struct Slow {
    ms: u64,
}

impl Channel for RoomChannel {
    fn intercepts(&self) -> &'static [&'static str] {
        &["filtered"]
    }

    async fn join(
        &mut self,
        topic: &str,
        params: Payload,
        socket: &mut ChannelSocket,
    ) -> JoinResult {
        if truthy(&field(&params, "reject")) {
            return Err(ChannelError::reason("rejected"));
        }
        if truthy(&field(&params, "crash")) {
            panic!("join crash requested");
        }
        self.user_id = socket.assign_str("user_id").unwrap_or("anon").to_owned();
        // Sent after the join reply (Phoenix's after_join).
        socket.push("welcome", json!({"topic": topic}))?;
        Ok(json!({"topic": topic, "user_id": self.user_id}).into())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "echo" => reply_ok(payload),
            "error_reply" => reply_error(json!({"reason": "requested"})),
            "ok_empty" => reply_ok(Payload::empty()),
            "noreply" => noreply(),
            "push_back" => {
                socket.push("pushed", payload)?;
                noreply()
            }
            "broadcast" => {
                socket.broadcast("broadcast", payload);
                reply_ok(Payload::empty())
            }
            "filtered" => {
                socket.broadcast("filtered", payload);
                noreply()
            }
            "broadcast_from" => {
                socket.broadcast_from("broadcast_from", payload);
                reply_ok(Payload::empty())
            }
            "async_reply" => {
                let handle = socket.reply_handle().expect("async_reply needs a ref");
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = handle.reply(Reply::ok(payload));
                });
                noreply()
            }
            "slow" => {
                let Slow { ms } = payload.deserialize().expect("slow needs an integer ms");
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply_ok(json!({"slept": ms}))
            }
            "set" => {
                self.value = field(&payload, "value");
                reply_ok(Payload::empty())
            }
            "get" => reply_ok(json!({"value": self.value})),
            "crash" => panic!("crash requested"),
            "stop" => stop(),
            "stop_reply" => stop_with_reply(Reply::ok(payload)),
            "binary_echo" => reply_ok(binary(payload)),
            "binary_push" => {
                socket.push("binary_pushed", binary(payload))?;
                noreply()
            }
            "binary_broadcast" => {
                socket.broadcast("binary_broadcast", binary(payload));
                noreply()
            }
            other => panic!("RoomChannel has no handle_in for {other:?}"),
        }
    }

    async fn handle_out(
        &mut self,
        event: &str,
        mut payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        if truthy(&field(&payload, "drop")) {
            return noreply();
        }
        if let Payload::Json(Value::Object(map)) = &mut payload {
            map.insert("seen_by".into(), Value::String(self.user_id.clone()));
        }
        socket.push(event, payload)?;
        noreply()
    }
}

/// The `{:binary, data}` clause: anything else is a crash.
fn binary(payload: Payload) -> Payload {
    match payload {
        Payload::Binary(_) => payload,
        other => panic!("expected a binary payload, got {other:?}"),
    }
}
