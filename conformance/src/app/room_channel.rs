//! RoomChannel of APP.md: echo, replies, pushes, broadcasts, an intercepted
//! event, async and slow replies, assigns, crashes and stops.

use std::time::Duration;

use fawkes::{Channel, ChannelSocket, HandleResult, Info, JoinResult, Payload, Reply, StopReason};
use serde_json::{json, Value};

use super::{field, truthy};

/// Sent to itself after a join, to push `welcome` after the join reply.
struct AfterJoin;

/// One joined `room:*` topic.
#[derive(Debug, Default)]
pub struct RoomChannel {
    user_id: String,
    value: Value,
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
        if truthy(Some(&field(&params, "reject"))) {
            return JoinResult::Error(Payload::Json(json!({"reason": "rejected"})));
        }
        if truthy(Some(&field(&params, "crash"))) {
            panic!("join crash requested");
        }
        self.user_id = socket.assign_str("user_id").unwrap_or("anon").to_owned();
        socket.send_info(AfterJoin).expect("own mailbox has room");
        JoinResult::Ok(Payload::Json(
            json!({"topic": topic, "user_id": self.user_id}),
        ))
    }

    async fn handle_info(&mut self, info: Info, socket: &mut ChannelSocket) -> HandleResult {
        if info.is::<AfterJoin>() {
            let topic = socket.topic().to_owned();
            socket
                .push("welcome", Payload::Json(json!({"topic": topic})))
                .expect("push welcome");
        }
        HandleResult::NoReply
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "echo" => HandleResult::Reply(Reply::ok(payload)),
            "error_reply" => HandleResult::Reply(Reply::error(json!({"reason": "requested"}))),
            "ok_empty" => HandleResult::Reply(Reply::ok_empty()),
            "noreply" => HandleResult::NoReply,
            "push_back" => {
                socket.push("pushed", payload).expect("push");
                HandleResult::NoReply
            }
            "broadcast" => {
                socket.broadcast("broadcast", payload);
                HandleResult::Reply(Reply::ok_empty())
            }
            "broadcast_from" => {
                socket.broadcast_from("broadcast_from", payload);
                HandleResult::Reply(Reply::ok_empty())
            }
            "filtered" => {
                socket.broadcast("filtered", payload);
                HandleResult::NoReply
            }
            "async_reply" => {
                let handle = socket.reply_handle().expect("async_reply needs a ref");
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = handle.reply(Reply::ok(payload));
                });
                HandleResult::NoReply
            }
            "slow" => {
                let ms = field(&payload, "ms")
                    .as_u64()
                    .expect("slow needs an integer ms");
                tokio::time::sleep(Duration::from_millis(ms)).await;
                HandleResult::Reply(Reply::ok(json!({"slept": ms})))
            }
            "set" => {
                self.value = field(&payload, "value");
                HandleResult::Reply(Reply::ok_empty())
            }
            "get" => HandleResult::Reply(Reply::ok(json!({"value": self.value}))),
            "crash" => panic!("crash requested"),
            "stop" => HandleResult::Stop {
                reason: StopReason::Normal,
                reply: None,
            },
            "stop_reply" => HandleResult::Stop {
                reason: StopReason::Normal,
                reply: Some(Reply::ok(payload)),
            },
            "binary_echo" => HandleResult::Reply(Reply::ok(binary(payload))),
            "binary_push" => {
                socket
                    .push("binary_pushed", binary(payload))
                    .expect("binary push");
                HandleResult::NoReply
            }
            "binary_broadcast" => {
                socket.broadcast("binary_broadcast", binary(payload));
                HandleResult::NoReply
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
        if truthy(Some(&field(&payload, "drop"))) {
            return HandleResult::NoReply;
        }
        if let Payload::Json(Value::Object(map)) = &mut payload {
            map.insert("seen_by".into(), Value::String(self.user_id.clone()));
        }
        socket.push(event, payload).expect("push intercepted");
        HandleResult::NoReply
    }
}

/// The `{:binary, data}` clause: anything else is a crash.
fn binary(payload: Payload) -> Payload {
    match payload {
        Payload::Binary(_) => payload,
        other => panic!("expected a binary payload, got {other:?}"),
    }
}
