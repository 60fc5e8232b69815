//! V1 JSON serializer (vsn `1.0.x`): every text frame is an object.
//!
//! Client frames carry the keys `topic`, `event`, `payload` and `ref` (all
//! required, `ref` may be `null`) plus an optional `join_ref`. Server frames
//! carry exactly `event`, `payload`, `ref` and `topic` — never `join_ref` —
//! written in that (alphabetical) order, as Phoenix does. V1 has no binary
//! frames.

use serde_json::Value;

use crate::error::{DecodeError, EncodeError};
use crate::json::{self, Body, JsonWriter};
use crate::message::{Message, Payload};

/// Decode one V1 text frame.
pub(crate) fn decode(text: &str) -> Result<Message, DecodeError> {
    let Value::Object(mut map) = json::parse(text)? else {
        return Err(DecodeError::NotAnObject);
    };
    let mut required = |key: &'static str| map.remove(key).ok_or(DecodeError::MissingField(key));
    let topic = required("topic")?;
    let event = required("event")?;
    let payload = required("payload")?;
    let ref_ = required("ref")?;
    let join_ref = match map.remove("join_ref") {
        Some(value) => json::take_opt_string(value, "join_ref")?,
        None => None,
    };
    Ok(Message {
        join_ref,
        ref_: json::take_opt_string(ref_, "ref")?,
        topic: json::take_string(topic, "topic")?,
        event: json::take_string(event, "event")?,
        payload: Payload::Json(payload),
    })
}

/// Write `{"event":..,"payload":..,"ref":..,"topic":..}`.
pub(crate) fn encode(
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    body: Body<'_>,
) -> Result<String, EncodeError> {
    let mut w = JsonWriter::for_fields(json::fields_len(&[ref_, Some(topic), Some(event)]));
    w.raw("{\"event\":");
    w.string(event)?;
    w.raw(",\"payload\":");
    w.body(body)?;
    w.raw(",\"ref\":");
    w.opt_string(ref_)?;
    w.raw(",\"topic\":");
    w.string(topic)?;
    w.raw("}");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::JsonRef;
    use serde_json::json;

    #[test]
    fn decodes_recorded_client_frames() {
        // v1_join_echo_broadcast.json
        assert_eq!(
            decode(
                r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#
            ),
            Ok(Message {
                join_ref: Some("1".into()),
                ref_: Some("1".into()),
                topic: "room:lobby".into(),
                event: "phx_join".into(),
                payload: Payload::empty(),
            })
        );
        // heartbeat_v1.json
        assert_eq!(
            decode(
                r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2","join_ref":null}"#
            ),
            Ok(Message {
                join_ref: None,
                ref_: Some("2".into()),
                topic: "phoenix".into(),
                event: "heartbeat".into(),
                payload: Payload::empty(),
            })
        );
    }

    #[test]
    fn join_ref_is_optional_and_ref_may_be_null() {
        let m = decode(r#"{"topic":"t","event":"e","payload":[1],"ref":null,"other":5}"#).unwrap();
        assert_eq!((m.join_ref, m.ref_), (None, None));
        assert_eq!(m.payload, Payload::Json(json!([1])));
    }

    #[test]
    fn rejects_malformed_frames() {
        assert!(matches!(decode("{"), Err(DecodeError::InvalidJson(_))));
        assert_eq!(
            decode(r#"["1","1","t","e",{}]"#),
            Err(DecodeError::NotAnObject)
        );
        assert_eq!(decode("null"), Err(DecodeError::NotAnObject));
        let full = json!({"topic":"t","event":"e","payload":{},"ref":"1"});
        for key in ["topic", "event", "payload", "ref"] {
            let mut obj = full.clone();
            if let Some(map) = obj.as_object_mut() {
                map.remove(key);
            }
            assert_eq!(
                decode(&obj.to_string()),
                Err(DecodeError::MissingField(key)),
                "{key}"
            );
        }
        let cases = [
            (
                r#"{"topic":1,"event":"e","payload":{},"ref":"1"}"#,
                "topic",
                "a string",
            ),
            (
                r#"{"topic":"t","event":[],"payload":{},"ref":"1"}"#,
                "event",
                "a string",
            ),
            (
                r#"{"topic":"t","event":"e","payload":{},"ref":1}"#,
                "ref",
                "a string or null",
            ),
            (
                r#"{"topic":"t","event":"e","payload":{},"ref":"1","join_ref":false}"#,
                "join_ref",
                "a string or null",
            ),
        ];
        for (text, field, expected) in cases {
            assert_eq!(
                decode(text),
                Err(DecodeError::InvalidField { field, expected }),
                "{text}"
            );
        }
    }

    #[test]
    fn encodes_recorded_server_frames() {
        // v1_join_echo_broadcast.json: join reply
        assert_eq!(
            encode(
                Some("1"),
                "room:lobby",
                "phx_reply",
                Body::Reply {
                    status: "ok",
                    response: JsonRef::Value(&json!({"topic":"room:lobby","user_id":"alice"}))
                }
            )
            .unwrap(),
            r#"{"event":"phx_reply","payload":{"response":{"topic":"room:lobby","user_id":"alice"},"status":"ok"},"ref":"1","topic":"room:lobby"}"#
        );
        // v1_join_echo_broadcast.json: push and broadcast have ref null
        assert_eq!(
            encode(
                None,
                "room:lobby",
                "welcome",
                Body::Value(JsonRef::Value(&json!({"topic":"room:lobby"})))
            )
            .unwrap(),
            r#"{"event":"welcome","payload":{"topic":"room:lobby"},"ref":null,"topic":"room:lobby"}"#
        );
        assert_eq!(
            encode(
                None,
                "room:lobby",
                "news",
                Body::Value(JsonRef::Value(&json!({"n":1})))
            )
            .unwrap(),
            r#"{"event":"news","payload":{"n":1},"ref":null,"topic":"room:lobby"}"#
        );
        // heartbeat_v1.json
        assert_eq!(
            encode(
                Some("2"),
                "phoenix",
                "phx_reply",
                Body::Reply {
                    status: "ok",
                    response: JsonRef::Value(&json!({}))
                }
            )
            .unwrap(),
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"2","topic":"phoenix"}"#
        );
    }
}
