//! Property tests: round trips between the client and server halves of the
//! codec, and "never panics" checks on arbitrary input.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::client::{decode_server_frame, encode_client_push, ServerFrame};
use crate::{Broadcast, DecodeError, Frame, Message, Payload, Reply, Serializer};

/// Any string of up to 40 chars (at most 160 bytes, so it fits a binary
/// metadata field), including control characters and quotes.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter)
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

/// Arbitrary JSON whose numbers survive a text round trip exactly.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-4000i32..4000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn binary() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        json_value().prop_map(Payload::Json),
        binary().prop_map(Payload::Binary),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (opt_text(), opt_text(), text(), text(), payload()).prop_map(
        |(join_ref, ref_, topic, event, payload)| Message {
            join_ref,
            ref_,
            topic,
            event,
            payload,
        },
    )
}

fn json_message() -> impl Strategy<Value = Message> {
    (opt_text(), opt_text(), text(), text(), json_value()).prop_map(
        |(join_ref, ref_, topic, event, payload)| Message {
            join_ref,
            ref_,
            topic,
            event,
            payload: Payload::Json(payload),
        },
    )
}

fn reply() -> impl Strategy<Value = Reply> {
    (opt_text(), opt_text(), text(), text(), payload()).prop_map(
        |(join_ref, ref_, topic, status, response)| Reply {
            join_ref,
            ref_,
            topic,
            status,
            response,
        },
    )
}

fn broadcast() -> impl Strategy<Value = Broadcast> {
    (text(), text(), payload()).prop_map(|(topic, event, payload)| Broadcast {
        topic,
        event,
        payload,
    })
}

/// Binary frames cannot say "absent"; the client reads empty as `None`.
fn absent_if_empty(field: Option<String>) -> Option<String> {
    field.filter(|f| !f.is_empty())
}

fn parse_object(frame: &Frame) -> Map<String, Value> {
    let Frame::Text(text) = frame else {
        panic!("text frame expected, got {frame:?}");
    };
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        other => panic!("object expected, got {other:?}"),
    }
}

fn opt_json(field: &Option<String>) -> Value {
    field
        .as_ref()
        .map_or(Value::Null, |f| Value::String(f.clone()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_push_decodes_on_the_server(msg in message()) {
        let frame = encode_client_push(&msg).unwrap();
        let decoded = match frame {
            Frame::Text(text) => Serializer::V2.decode_text(&text).unwrap(),
            Frame::Binary(bytes) => Serializer::V2.decode_binary(bytes).unwrap(),
        };
        let expected = if msg.payload.is_binary() {
            // Absent refs travel as empty fields, which the server keeps.
            Message {
                join_ref: Some(msg.join_ref.clone().unwrap_or_default()),
                ref_: Some(msg.ref_.clone().unwrap_or_default()),
                ..msg
            }
        } else {
            msg
        };
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn server_message_decodes_on_the_client(msg in message()) {
        let frame = Serializer::V2.encode_message(&msg).unwrap();
        prop_assert_eq!(frame.is_text(), !msg.payload.is_binary());
        let decoded = decode_server_frame(&frame).unwrap().into_message();
        let expected = if msg.payload.is_binary() {
            // Binary pushes carry no ref.
            Message {
                join_ref: absent_if_empty(msg.join_ref.clone()),
                ref_: None,
                ..msg
            }
        } else {
            msg
        };
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn server_reply_decodes_on_the_client(reply in reply()) {
        let frame = Serializer::V2.encode_reply(&reply).unwrap();
        let decoded = decode_server_frame(&frame).unwrap();
        let expected = if reply.response.is_binary() {
            Reply {
                join_ref: absent_if_empty(reply.join_ref.clone()),
                ref_: absent_if_empty(reply.ref_.clone()),
                ..reply
            }
        } else {
            reply
        };
        prop_assert_eq!(decoded, ServerFrame::Reply(expected));
    }

    #[test]
    fn server_broadcast_decodes_on_the_client(b in broadcast()) {
        prop_assume!(b.event != "phx_reply");
        let frame = Serializer::V2.encode_broadcast(&b).unwrap();
        prop_assert_eq!(decode_server_frame(&frame).unwrap(), ServerFrame::Broadcast(b));
    }

    #[test]
    fn v1_client_object_decodes(msg in json_message()) {
        let Payload::Json(payload) = &msg.payload else { unreachable!() };
        let text = json!({
            "topic": msg.topic,
            "event": msg.event,
            "payload": payload,
            "ref": opt_json(&msg.ref_),
            "join_ref": opt_json(&msg.join_ref),
        })
        .to_string();
        prop_assert_eq!(Serializer::V1.decode_text(&text).unwrap(), msg);
    }

    #[test]
    fn v1_server_frames_have_exactly_four_keys(msg in json_message(), status in text()) {
        let Payload::Json(payload) = &msg.payload else { unreachable!() };
        let obj = parse_object(&Serializer::V1.encode_message(&msg).unwrap());
        let expected = json!({
            "topic": msg.topic,
            "event": msg.event,
            "payload": payload,
            "ref": opt_json(&msg.ref_),
        });
        prop_assert_eq!(Value::Object(obj), expected);

        let reply = Reply {
            join_ref: msg.join_ref.clone(),
            ref_: msg.ref_.clone(),
            topic: msg.topic.clone(),
            status: status.clone(),
            response: msg.payload.clone(),
        };
        let obj = parse_object(&Serializer::V1.encode_reply(&reply).unwrap());
        let expected = json!({
            "topic": msg.topic,
            "event": "phx_reply",
            "payload": {"status": status, "response": payload},
            "ref": opt_json(&msg.ref_),
        });
        prop_assert_eq!(Value::Object(obj), expected);

        let b = Broadcast::new(msg.topic.clone(), msg.event.clone(), msg.payload.clone());
        let obj = parse_object(&Serializer::V1.encode_broadcast(&b).unwrap());
        let expected = json!({
            "topic": msg.topic,
            "event": msg.event,
            "payload": payload,
            "ref": null,
        });
        prop_assert_eq!(Value::Object(obj), expected);
    }

    #[test]
    fn vsn_accepts_any_patch_digits(patch in "[0-9]{1,6}", major in 1u8..=2) {
        let vsn = format!("{major}.0.{patch}");
        let expected = if major == 1 { Serializer::V1 } else { Serializer::V2 };
        prop_assert_eq!(Serializer::from_vsn(Some(&vsn)), Ok(expected));
    }

    #[test]
    fn vsn_never_panics(vsn in any::<String>()) {
        let _ = Serializer::from_vsn(Some(&vsn));
    }

    #[test]
    fn text_decoders_never_panic(text in any::<String>()) {
        let _ = Serializer::V1.decode_text(&text);
        let _ = Serializer::V2.decode_text(&text);
        let _ = decode_server_frame(&Frame::Text(text));
    }

    #[test]
    fn binary_decoders_never_panic(
        kind in 0u8..4,
        lens in prop::collection::vec(0u8..8, 0..6),
        tail in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        // Frames shaped like real ones reach deeper than uniform noise would.
        let mut frame = vec![kind];
        frame.extend(lens);
        frame.extend(tail);
        let frame = Bytes::from(frame);
        prop_assert_eq!(
            Serializer::V1.decode_binary(frame.clone()),
            Err(DecodeError::BinaryNotSupported)
        );
        let _ = Serializer::V2.decode_binary(frame.clone());
        let _ = decode_server_frame(&Frame::Binary(frame));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let frame = Bytes::from(bytes);
        let _ = Serializer::V2.decode_binary(frame.clone());
        let _ = decode_server_frame(&Frame::Binary(frame));
    }
}
