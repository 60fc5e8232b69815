//! V2 JSON serializer (vsn `2.0.x`): every text frame is an array
//! `[join_ref, ref, topic, event, payload]`.
//!
//! Decoding accepts arrays with more than five elements and ignores the
//! extras, as Phoenix does. Refs must be strings or `null`; topic and event
//! must be strings; the payload may be any JSON value.

use serde_json::Value;

use crate::error::{DecodeError, EncodeError};
use crate::json::{self, Body, JsonWriter};
use crate::message::JsonRef;
use crate::message::{Message, Payload};

/// Decode one V2 text frame.
pub(crate) fn decode(text: &str) -> Result<Message, DecodeError> {
    let Value::Array(items) = json::parse(text)? else {
        return Err(DecodeError::NotAnArray);
    };
    let len = items.len();
    let mut items = items.into_iter();
    let (Some(join_ref), Some(ref_), Some(topic), Some(event), Some(payload)) = (
        items.next(),
        items.next(),
        items.next(),
        items.next(),
        items.next(),
    ) else {
        return Err(DecodeError::WrongArity { len });
    };
    Ok(Message {
        join_ref: json::take_opt_string(join_ref, "join_ref")?,
        ref_: json::take_opt_string(ref_, "ref")?,
        topic: json::take_string(topic, "topic")?,
        event: json::take_string(event, "event")?,
        payload: Payload::Json(payload),
    })
}

/// Write `[join_ref, ref, topic, event, body]`.
pub(crate) fn encode(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    body: Body<'_>,
) -> Result<String, EncodeError> {
    let mut w = JsonWriter::for_fields(json::fields_len(&[
        join_ref,
        ref_,
        Some(topic),
        Some(event),
    ]));
    w.raw("[");
    w.opt_string(join_ref)?;
    w.raw(",");
    w.opt_string(ref_)?;
    w.raw(",");
    w.string(topic)?;
    w.raw(",");
    w.string(event)?;
    w.raw(",");
    w.body(body)?;
    w.raw("]");
    w.finish()
}

/// Write a reply: `[join_ref, ref, topic, "phx_reply", {"response":..,"status":..}]`.
pub(crate) fn encode_reply(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    status: &str,
    response: JsonRef<'_>,
) -> Result<String, EncodeError> {
    encode(
        join_ref,
        ref_,
        topic,
        "phx_reply",
        Body::Reply { status, response },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::JsonRef;
    use serde_json::json;

    fn msg(jr: Option<&str>, r: Option<&str>, topic: &str, event: &str, p: Value) -> Message {
        Message {
            join_ref: jr.map(str::to_owned),
            ref_: r.map(str::to_owned),
            topic: topic.into(),
            event: event.into(),
            payload: Payload::Json(p),
        }
    }

    #[test]
    fn decodes_recorded_client_frames() {
        // binary_echo.json: phx_join
        assert_eq!(
            decode(r#"["1","1","room:lobby","phx_join",{}]"#),
            Ok(msg(
                Some("1"),
                Some("1"),
                "room:lobby",
                "phx_join",
                json!({})
            ))
        );
        // disconnect_broadcast.json: heartbeat
        assert_eq!(
            decode(r#"[null,"2","phoenix","heartbeat",{}]"#),
            Ok(msg(None, Some("2"), "phoenix", "heartbeat", json!({})))
        );
        // echo.json
        assert_eq!(
            decode(
                r#"["1","2","room:lobby","echo",{"msg":"hello","n":1,"list":[1,2,3],"nested":{"k":null}}]"#
            ),
            Ok(msg(
                Some("1"),
                Some("2"),
                "room:lobby",
                "echo",
                json!({"msg":"hello","n":1,"list":[1,2,3],"nested":{"k":null}})
            ))
        );
    }

    #[test]
    fn extra_trailing_elements_are_ignored() {
        assert_eq!(
            decode(r#"[null,null,"t","e",[1],"extra",{"x":1}]"#),
            Ok(msg(None, None, "t", "e", json!([1])))
        );
    }

    #[test]
    fn payload_may_be_any_json_value() {
        for p in [json!(null), json!(1), json!("s"), json!([]), json!(true)] {
            let text = format!(r#"[null,null,"t","e",{p}]"#);
            assert_eq!(decode(&text), Ok(msg(None, None, "t", "e", p)));
        }
    }

    #[test]
    fn rejects_malformed_frames() {
        assert!(matches!(
            decode("this is not json"),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(decode("[1,2"), Err(DecodeError::InvalidJson(_))));
        assert_eq!(decode(r#"{"topic":"t"}"#), Err(DecodeError::NotAnArray));
        assert_eq!(decode("42"), Err(DecodeError::NotAnArray));
        assert_eq!(decode("[]"), Err(DecodeError::WrongArity { len: 0 }));
        assert_eq!(
            decode(r#"["1","1","t","e"]"#),
            Err(DecodeError::WrongArity { len: 4 })
        );
    }

    #[test]
    fn rejects_fields_of_the_wrong_type() {
        let cases = [
            (r#"[1,"1","t","e",{}]"#, "join_ref", "a string or null"),
            (r#"["1",{},"t","e",{}]"#, "ref", "a string or null"),
            (r#"["1","1",null,"e",{}]"#, "topic", "a string"),
            (r#"["1","1","t",7,{}]"#, "event", "a string"),
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
        // binary_echo.json: push from the channel after join
        assert_eq!(
            encode(
                Some("1"),
                None,
                "room:lobby",
                "welcome",
                Body::Value(JsonRef::Value(&json!({"topic":"room:lobby"})))
            )
            .unwrap(),
            r#"["1",null,"room:lobby","welcome",{"topic":"room:lobby"}]"#
        );
        // broadcast_two_conns.json: fastlane broadcast
        assert_eq!(
            encode(
                None,
                None,
                "room:lobby",
                "broadcast",
                Body::Value(JsonRef::Value(&json!({"msg":"hi all"})))
            )
            .unwrap(),
            r#"[null,null,"room:lobby","broadcast",{"msg":"hi all"}]"#
        );
        // binary_echo.json: join reply
        assert_eq!(
            encode_reply(
                Some("1"),
                Some("1"),
                "room:lobby",
                "ok",
                JsonRef::Value(&json!({"topic":"room:lobby","user_id":"anon"}))
            )
            .unwrap(),
            r#"["1","1","room:lobby","phx_reply",{"response":{"topic":"room:lobby","user_id":"anon"},"status":"ok"}]"#
        );
        // stop_close.json: reply for an unjoined topic
        assert_eq!(
            encode_reply(
                None,
                Some("3"),
                "room:lobby",
                "error",
                JsonRef::Value(&json!({"reason":"unmatched topic"}))
            )
            .unwrap(),
            r#"[null,"3","room:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#
        );
        // crash_then_rejoin.json: phx_error uses the join ref as ref
        assert_eq!(
            encode(
                Some("1"),
                Some("1"),
                "room:lobby",
                "phx_error",
                Body::Value(JsonRef::Value(&json!({"reason":"channel_crash"})))
            )
            .unwrap(),
            r#"["1","1","room:lobby","phx_error",{"reason":"channel_crash"}]"#
        );
    }
}
