//! The client side of the V2 protocol, for tools that connect to a server
//! (load generators, transcript replayers, tests).
//!
//! [`encode_client_push`] writes what phoenix.js would send, and
//! [`decode_server_frame`] reads what a server sends back, telling pushes,
//! replies and broadcasts apart.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::{DecodeError, EncodeError};
use crate::json::Body;
use crate::message::{Broadcast, Frame, Message, Payload, Reply};
use crate::{v2_binary, v2_json};

/// One decoded server → client frame.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerFrame {
    /// A push, `phx_error`, `phx_close` or any other message with a join ref
    /// or a ref that is not a reply.
    Message(Message),
    /// A `phx_reply`. For text frames this is chosen when the payload is an
    /// object with exactly the keys `status` (a string) and `response`; other
    /// `phx_reply` payloads come back as [`ServerFrame::Message`].
    Reply(Reply),
    /// A frame with neither join ref nor ref: a binary kind 2 frame, or a text
    /// frame `[null, null, topic, event, payload]` (which is also what a push
    /// with no join ref looks like; the two cannot be told apart).
    Broadcast(Broadcast),
}

impl ServerFrame {
    /// The frame's topic.
    pub fn topic(&self) -> &str {
        match self {
            ServerFrame::Message(m) => &m.topic,
            ServerFrame::Reply(r) => &r.topic,
            ServerFrame::Broadcast(b) => &b.topic,
        }
    }

    /// The frame's event (`"phx_reply"` for replies).
    pub fn event(&self) -> &str {
        match self {
            ServerFrame::Message(m) => &m.event,
            ServerFrame::Reply(_) => "phx_reply",
            ServerFrame::Broadcast(b) => &b.event,
        }
    }

    /// Flatten into a [`Message`], as phoenix.js presents every frame.
    ///
    /// A JSON reply becomes event `phx_reply` with payload
    /// `{"status": .., "response": ..}`. A binary reply becomes event
    /// `phx_reply` with the response bytes as payload; its status is dropped,
    /// so match on [`ServerFrame::Reply`] when the status matters.
    pub fn into_message(self) -> Message {
        match self {
            ServerFrame::Message(m) => m,
            ServerFrame::Reply(r) => {
                let payload = match r.response {
                    Payload::Json(response) => {
                        let mut body = Map::new();
                        body.insert("response".to_owned(), response);
                        body.insert("status".to_owned(), Value::String(r.status));
                        Payload::Json(Value::Object(body))
                    }
                    Payload::RawJson(text) => {
                        let status = serde_json::to_string(&r.status).unwrap_or_default();
                        Payload::RawJson(
                            format!("{{\"response\":{text},\"status\":{status}}}").into(),
                        )
                    }
                    binary @ Payload::Binary(_) => binary,
                };
                Message {
                    join_ref: r.join_ref,
                    ref_: r.ref_,
                    topic: r.topic,
                    event: "phx_reply".to_owned(),
                    payload,
                }
            }
            ServerFrame::Broadcast(b) => Message {
                join_ref: None,
                ref_: None,
                topic: b.topic,
                event: b.event,
                payload: b.payload,
            },
        }
    }
}

/// Encode a client push in the V2 format.
///
/// A JSON payload gives the text array `[join_ref, ref, topic, event,
/// payload]`; a binary payload gives a binary kind 0 frame, where an absent
/// join ref or ref is written as an empty field.
pub fn encode_client_push(msg: &Message) -> Result<Frame, EncodeError> {
    let join_ref = msg.join_ref.as_deref();
    let ref_ = msg.ref_.as_deref();
    match (msg.payload.json_ref(), &msg.payload) {
        (Some(payload), _) => {
            v2_json::encode(join_ref, ref_, &msg.topic, &msg.event, Body::Value(payload))
                .map(Frame::Text)
        }
        (None, Payload::Binary(payload)) => {
            v2_binary::encode_client_push(join_ref, ref_, &msg.topic, &msg.event, payload)
                .map(Frame::Binary)
        }
        (None, _) => Err(EncodeError::BinaryNotSupported),
    }
}

/// Decode a frame received from a V2 server.
///
/// Binary payloads are zero-copy slices of the frame's bytes. In binary
/// frames an empty join ref or ref decodes as `None` (the server writes
/// absent refs as empty fields).
pub fn decode_server_frame(frame: &Frame) -> Result<ServerFrame, DecodeError> {
    match frame {
        Frame::Text(text) => decode_server_text(text),
        Frame::Binary(bytes) => decode_server_binary(bytes.clone()),
    }
}

/// Decode a text frame received from a V2 server.
pub fn decode_server_text(text: &str) -> Result<ServerFrame, DecodeError> {
    let msg = v2_json::decode(text)?;
    if msg.event == "phx_reply" {
        if let Payload::Json(Value::Object(body)) = msg.payload {
            return Ok(match split_reply_body(body) {
                Ok((status, response)) => ServerFrame::Reply(Reply {
                    join_ref: msg.join_ref,
                    ref_: msg.ref_,
                    topic: msg.topic,
                    status,
                    response: Payload::Json(response),
                }),
                Err(body) => ServerFrame::Message(Message {
                    payload: Payload::Json(Value::Object(body)),
                    ..msg
                }),
            });
        }
    }
    Ok(match (&msg.join_ref, &msg.ref_) {
        (None, None) => ServerFrame::Broadcast(Broadcast {
            topic: msg.topic,
            event: msg.event,
            payload: msg.payload,
        }),
        _ => ServerFrame::Message(msg),
    })
}

/// Decode a binary frame received from a V2 server (kinds 0, 1 and 2).
pub fn decode_server_binary(frame: Bytes) -> Result<ServerFrame, DecodeError> {
    v2_binary::decode_server(frame)
}

/// Split `{"status": "<s>", "response": <r>}` into its parts, or hand the
/// object back unchanged when it has any other shape.
fn split_reply_body(mut body: Map<String, Value>) -> Result<(String, Value), Map<String, Value>> {
    let well_formed = body.len() == 2
        && matches!(body.get("status"), Some(Value::String(_)))
        && body.contains_key("response");
    if !well_formed {
        return Err(body);
    }
    match (body.remove("status"), body.remove("response")) {
        (Some(Value::String(status)), Some(response)) => Ok((status, response)),
        // Not reachable after the check above; rebuild rather than panic.
        (status, response) => {
            body.extend(status.map(|s| ("status".to_owned(), s)));
            body.extend(response.map(|r| ("response".to_owned(), r)));
            Err(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::b64;
    use serde_json::json;

    #[test]
    fn encodes_recorded_client_frames() {
        let join = Message {
            join_ref: Some("1".into()),
            ref_: Some("1".into()),
            topic: "room:lobby".into(),
            event: "phx_join".into(),
            payload: Payload::empty(),
        };
        assert_eq!(
            encode_client_push(&join),
            Ok(Frame::Text(
                r#"["1","1","room:lobby","phx_join",{}]"#.into()
            ))
        );
        let heartbeat = Message {
            join_ref: None,
            ref_: Some("2".into()),
            topic: "phoenix".into(),
            event: "heartbeat".into(),
            payload: Payload::empty(),
        };
        assert_eq!(
            encode_client_push(&heartbeat),
            Ok(Frame::Text(r#"[null,"2","phoenix","heartbeat",{}]"#.into()))
        );
        // binary_broadcast.json
        let binary = Message {
            join_ref: Some("1".into()),
            ref_: Some("2".into()),
            topic: "room:lobby".into(),
            event: "binary_broadcast".into(),
            payload: Payload::Binary(Bytes::from_static(
                b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f",
            )),
        };
        assert_eq!(
            encode_client_push(&binary),
            Ok(Frame::Binary(b64(
                "AAEBChAxMnJvb206bG9iYnliaW5hcnlfYnJvYWRjYXN0AAECAwQFBgcICQoLDA0ODw=="
            )))
        );
        let too_long = Message {
            event: "e".repeat(256),
            ..binary
        };
        assert_eq!(
            encode_client_push(&too_long),
            Err(EncodeError::FieldTooLong {
                field: "event",
                len: 256
            })
        );
    }

    #[test]
    fn decodes_recorded_text_frames() {
        let reply = decode_server_frame(&Frame::Text(
            r#"["1","1","room:lobby","phx_reply",{"response":{"topic":"room:lobby","user_id":"anon"},"status":"ok"}]"#.into(),
        ));
        assert_eq!(
            reply,
            Ok(ServerFrame::Reply(Reply {
                join_ref: Some("1".into()),
                ref_: Some("1".into()),
                topic: "room:lobby".into(),
                status: "ok".into(),
                response: Payload::Json(json!({"topic":"room:lobby","user_id":"anon"})),
            }))
        );
        let push =
            decode_server_text(r#"["1",null,"room:lobby","welcome",{"topic":"room:lobby"}]"#);
        assert_eq!(
            push,
            Ok(ServerFrame::Message(Message {
                join_ref: Some("1".into()),
                ref_: None,
                topic: "room:lobby".into(),
                event: "welcome".into(),
                payload: Payload::Json(json!({"topic":"room:lobby"})),
            }))
        );
        let bcast = decode_server_text(r#"[null,null,"room:lobby","broadcast",{"msg":"hi all"}]"#);
        assert_eq!(
            bcast,
            Ok(ServerFrame::Broadcast(Broadcast::new(
                "room:lobby",
                "broadcast",
                Payload::Json(json!({"msg":"hi all"}))
            )))
        );
        let error =
            decode_server_text(r#"["1","1","room:lobby","phx_error",{"reason":"channel_crash"}]"#)
                .unwrap();
        assert_eq!(error.event(), "phx_error");
        assert!(matches!(error, ServerFrame::Message(_)));
    }

    #[test]
    fn odd_reply_payloads_stay_messages() {
        for payload in [
            json!({"status": "ok"}),
            json!({"status": 1, "response": {}}),
            json!({"status": "ok", "response": {}, "extra": 1}),
            json!([1]),
        ] {
            let text = format!(r#"["1","2","t","phx_reply",{payload}]"#);
            let frame = decode_server_text(&text).unwrap();
            assert_eq!(
                frame,
                ServerFrame::Message(Message {
                    join_ref: Some("1".into()),
                    ref_: Some("2".into()),
                    topic: "t".into(),
                    event: "phx_reply".into(),
                    payload: Payload::Json(payload.clone()),
                }),
                "{payload}"
            );
        }
    }

    #[test]
    fn decodes_recorded_binary_frames() {
        let frame = Frame::Binary(b64("AQEBCgIxMnJvb206bG9iYnlvawABAgP//goN"));
        let ServerFrame::Reply(reply) = decode_server_frame(&frame).unwrap() else {
            panic!("reply expected");
        };
        assert_eq!(reply.status, "ok");
        assert_eq!(
            reply.response,
            Payload::Binary(Bytes::from_static(b"\x00\x01\x02\x03\xff\xfe\n\r"))
        );
    }

    #[test]
    fn accessors_and_flattening() {
        let reply = ServerFrame::Reply(Reply {
            join_ref: None,
            ref_: Some("3".into()),
            topic: "t".into(),
            status: "error".into(),
            response: Payload::Json(json!({"reason":"x"})),
        });
        assert_eq!((reply.topic(), reply.event()), ("t", "phx_reply"));
        assert_eq!(
            reply.into_message(),
            Message {
                join_ref: None,
                ref_: Some("3".into()),
                topic: "t".into(),
                event: "phx_reply".into(),
                payload: Payload::Json(json!({"status":"error","response":{"reason":"x"}})),
            }
        );
        let binary_reply = ServerFrame::Reply(Reply {
            join_ref: Some("1".into()),
            ref_: Some("2".into()),
            topic: "t".into(),
            status: "ok".into(),
            response: Payload::Binary(Bytes::from_static(b"\x01")),
        });
        assert_eq!(
            binary_reply.into_message().payload,
            Payload::Binary(Bytes::from_static(b"\x01"))
        );
        let bcast = ServerFrame::Broadcast(Broadcast::new("t", "e", Payload::empty()));
        assert_eq!((bcast.topic(), bcast.event()), ("t", "e"));
        assert_eq!(
            bcast.into_message(),
            Message::new("t", "e", Payload::empty())
        );
        let msg = ServerFrame::Message(Message::new("a", "b", Payload::empty()));
        assert_eq!((msg.topic(), msg.event()), ("a", "b"));
        assert_eq!(msg.into_message(), Message::new("a", "b", Payload::empty()));
    }

    #[test]
    fn rejects_malformed_frames() {
        assert_eq!(
            decode_server_frame(&Frame::Text("{}".into())),
            Err(DecodeError::NotAnArray)
        );
        assert_eq!(
            decode_server_frame(&Frame::Binary(Bytes::from_static(b"\x07"))),
            Err(DecodeError::UnknownBinaryKind(7))
        );
    }
}
