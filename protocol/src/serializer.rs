//! Server-side serializer selection and dispatch.
//!
//! A connection picks its [`Serializer`] once, from the `vsn` connect
//! parameter, and then uses it for every frame in both directions.

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError, VsnError};
use crate::json::Body;
use crate::message::{Broadcast, Frame, Message, Payload, Reply};
use crate::{v1, v2_binary, v2_json};

/// The wire format of one connection, as negotiated by the `vsn` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// vsn `1.0.x`: JSON objects, no binary frames.
    V1,
    /// vsn `2.0.x`: JSON arrays in text frames plus binary frames.
    V2,
}

impl Serializer {
    /// Pick the serializer for the `vsn` connect parameter.
    ///
    /// `None` means the client sent no `vsn`, which Phoenix treats as
    /// `"1.0.0"`. A version is accepted when it is `MAJOR.MINOR.PATCH` with
    /// `MAJOR.MINOR` equal to `1.0` (V1) or `2.0` (V2) and `PATCH` made of
    /// ASCII digits; anything else is refused (Phoenix answers 403).
    pub fn from_vsn(vsn: Option<&str>) -> Result<Serializer, VsnError> {
        let Some(vsn) = vsn else {
            return Ok(Serializer::V1);
        };
        let mut parts = vsn.split('.');
        let parsed = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(major), Some(minor), Some(patch), None)
                if !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()) =>
            {
                match (major, minor) {
                    ("1", "0") => Some(Serializer::V1),
                    ("2", "0") => Some(Serializer::V2),
                    _ => None,
                }
            }
            _ => None,
        };
        parsed.ok_or_else(|| VsnError {
            vsn: vsn.to_owned(),
        })
    }

    /// The canonical version string of this serializer (`"1.0.0"` or `"2.0.0"`).
    pub fn vsn(&self) -> &'static str {
        match self {
            Serializer::V1 => "1.0.0",
            Serializer::V2 => "2.0.0",
        }
    }

    /// Whether binary frames and binary payloads are available.
    pub fn supports_binary(&self) -> bool {
        matches!(self, Serializer::V2)
    }

    /// Decode a text frame received from a client.
    pub fn decode_text(&self, text: &str) -> Result<Message, DecodeError> {
        match self {
            Serializer::V1 => v1::decode(text),
            Serializer::V2 => v2_json::decode(text),
        }
    }

    /// Decode a binary frame received from a client.
    ///
    /// Only V2 client pushes (kind 0) are accepted. The payload of the
    /// returned message is [`Payload::Binary`], a zero-copy slice of `frame`.
    /// Empty refs in the frame decode as `Some("")`.
    pub fn decode_binary(&self, frame: Bytes) -> Result<Message, DecodeError> {
        match self {
            Serializer::V1 => Err(DecodeError::BinaryNotSupported),
            Serializer::V2 => v2_binary::decode_client_push(frame),
        }
    }

    /// Encode a push, `phx_error` or `phx_close` for a client.
    ///
    /// A JSON payload gives a text frame (`[join_ref, ref, topic, event,
    /// payload]` in V2, `{"event","payload","ref","topic"}` in V1). A binary
    /// payload gives a V2 binary push (kind 0), which has no ref field, so
    /// `ref_` is not sent; V1 refuses binary payloads.
    pub fn encode_message(&self, msg: &Message) -> Result<Frame, EncodeError> {
        let join_ref = msg.join_ref.as_deref();
        let ref_ = msg.ref_.as_deref();
        match (self, msg.payload.json_ref(), &msg.payload) {
            (Serializer::V1, Some(payload), _) => {
                v1::encode(ref_, &msg.topic, &msg.event, Body::Value(payload)).map(Frame::Text)
            }
            (Serializer::V2, Some(payload), _) => {
                v2_json::encode(join_ref, ref_, &msg.topic, &msg.event, Body::Value(payload))
                    .map(Frame::Text)
            }
            (Serializer::V2, None, Payload::Binary(payload)) => {
                v2_binary::encode_push(join_ref, &msg.topic, &msg.event, payload).map(Frame::Binary)
            }
            (_, None, _) => Err(EncodeError::BinaryNotSupported),
        }
    }

    /// Encode a `phx_reply`.
    ///
    /// A JSON response is wrapped as `{"response": .., "status": ..}`; a
    /// binary response becomes a V2 binary reply (kind 1).
    pub fn encode_reply(&self, reply: &Reply) -> Result<Frame, EncodeError> {
        let join_ref = reply.join_ref.as_deref();
        let ref_ = reply.ref_.as_deref();
        match (self, reply.response.json_ref(), &reply.response) {
            (Serializer::V1, Some(response), _) => v1::encode(
                ref_,
                &reply.topic,
                "phx_reply",
                Body::Reply {
                    status: &reply.status,
                    response,
                },
            )
            .map(Frame::Text),
            (Serializer::V2, Some(response), _) => {
                v2_json::encode_reply(join_ref, ref_, &reply.topic, &reply.status, response)
                    .map(Frame::Text)
            }
            (Serializer::V2, None, Payload::Binary(response)) => {
                v2_binary::encode_reply(join_ref, ref_, &reply.topic, &reply.status, response)
                    .map(Frame::Binary)
            }
            (_, None, _) => Err(EncodeError::BinaryNotSupported),
        }
    }

    /// Encode a fastlane broadcast (no join ref, no ref).
    ///
    /// V2 JSON gives `[null, null, topic, event, payload]`, V2 binary a kind 2
    /// frame, V1 `{"event","payload","ref":null,"topic"}`.
    pub fn encode_broadcast(&self, b: &Broadcast) -> Result<Frame, EncodeError> {
        match (self, b.payload.json_ref(), &b.payload) {
            (Serializer::V1, Some(payload), _) => {
                v1::encode(None, &b.topic, &b.event, Body::Value(payload)).map(Frame::Text)
            }
            (Serializer::V2, Some(payload), _) => {
                v2_json::encode(None, None, &b.topic, &b.event, Body::Value(payload))
                    .map(Frame::Text)
            }
            (Serializer::V2, None, Payload::Binary(payload)) => {
                v2_binary::encode_broadcast(&b.topic, &b.event, payload).map(Frame::Binary)
            }
            (_, None, _) => Err(EncodeError::BinaryNotSupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::b64;
    use serde_json::json;

    #[test]
    fn vsn_selection() {
        assert_eq!(Serializer::from_vsn(None), Ok(Serializer::V1));
        for vsn in ["1.0.0", "1.0.7", "1.0.123"] {
            assert_eq!(Serializer::from_vsn(Some(vsn)), Ok(Serializer::V1), "{vsn}");
        }
        for vsn in ["2.0.0", "2.0.1", "2.0.99"] {
            assert_eq!(Serializer::from_vsn(Some(vsn)), Ok(Serializer::V2), "{vsn}");
        }
        for vsn in [
            "", "2", "2.0", "2.0.", "2.1.0", "3.0.0", "1.1.0", "0.0.1", "2.0.0.0", "2.0.x",
            "2.0.0-rc", "v2.0.0", "02.0.0", " 2.0.0", "abc",
        ] {
            assert_eq!(
                Serializer::from_vsn(Some(vsn)),
                Err(VsnError { vsn: vsn.into() }),
                "{vsn:?}"
            );
        }
    }

    #[test]
    fn vsn_strings_and_binary_support() {
        assert_eq!(Serializer::V1.vsn(), "1.0.0");
        assert_eq!(Serializer::V2.vsn(), "2.0.0");
        assert!(!Serializer::V1.supports_binary());
        assert!(Serializer::V2.supports_binary());
        for s in [Serializer::V1, Serializer::V2] {
            assert_eq!(Serializer::from_vsn(Some(s.vsn())), Ok(s));
        }
    }

    #[test]
    fn dispatches_decoding_by_version() {
        let v2 = r#"["1","1","room:lobby","phx_join",{}]"#;
        let v1 =
            r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#;
        let expected = Message {
            join_ref: Some("1".into()),
            ref_: Some("1".into()),
            topic: "room:lobby".into(),
            event: "phx_join".into(),
            payload: Payload::empty(),
        };
        assert_eq!(Serializer::V2.decode_text(v2), Ok(expected.clone()));
        assert_eq!(Serializer::V1.decode_text(v1), Ok(expected));
        assert_eq!(
            Serializer::V1.decode_text(v2),
            Err(DecodeError::NotAnObject)
        );
        assert_eq!(Serializer::V2.decode_text(v1), Err(DecodeError::NotAnArray));

        let frame = b64("AAEBCgsxMnJvb206bG9iYnliaW5hcnlfcHVzaABoZWxsb/8=");
        assert_eq!(
            Serializer::V1.decode_binary(frame.clone()),
            Err(DecodeError::BinaryNotSupported)
        );
        let msg = Serializer::V2.decode_binary(frame).unwrap();
        assert_eq!(msg.event, "binary_push");
        assert_eq!(
            msg.payload,
            Payload::Binary(Bytes::from_static(b"\x00hello\xff"))
        );
    }

    fn text(frame: Result<Frame, EncodeError>) -> String {
        match frame {
            Ok(Frame::Text(text)) => text,
            other => panic!("text frame expected, got {other:?}"),
        }
    }

    #[test]
    fn encodes_messages() {
        let push = Message {
            join_ref: Some("1".into()),
            ref_: None,
            topic: "room:lobby".into(),
            event: "welcome".into(),
            payload: Payload::Json(json!({"topic":"room:lobby"})),
        };
        assert_eq!(
            text(Serializer::V2.encode_message(&push)),
            r#"["1",null,"room:lobby","welcome",{"topic":"room:lobby"}]"#
        );
        assert_eq!(
            text(Serializer::V1.encode_message(&push)),
            r#"{"event":"welcome","payload":{"topic":"room:lobby"},"ref":null,"topic":"room:lobby"}"#
        );
        // duplicate_join.json: phx_close carries the join ref as ref
        let close = Message {
            join_ref: Some("1".into()),
            ref_: Some("1".into()),
            topic: "room:lobby".into(),
            event: "phx_close".into(),
            payload: Payload::empty(),
        };
        assert_eq!(
            text(Serializer::V2.encode_message(&close)),
            r#"["1","1","room:lobby","phx_close",{}]"#
        );
        assert_eq!(
            text(Serializer::V1.encode_message(&close)),
            r#"{"event":"phx_close","payload":{},"ref":"1","topic":"room:lobby"}"#
        );
        // binary_push.json
        let binary = Message {
            join_ref: Some("1".into()),
            ref_: Some("ignored".into()),
            topic: "room:lobby".into(),
            event: "binary_pushed".into(),
            payload: Payload::Binary(Bytes::from_static(b"\x00hello\xff")),
        };
        assert_eq!(
            Serializer::V2.encode_message(&binary),
            Ok(Frame::Binary(b64(
                "AAEKDTFyb29tOmxvYmJ5YmluYXJ5X3B1c2hlZABoZWxsb/8="
            )))
        );
        assert_eq!(
            Serializer::V1.encode_message(&binary),
            Err(EncodeError::BinaryNotSupported)
        );
    }

    #[test]
    fn encodes_replies() {
        let reply = Reply {
            join_ref: Some("1".into()),
            ref_: Some("2".into()),
            topic: "room:lobby".into(),
            status: "ok".into(),
            response: Payload::Json(json!({"v":1})),
        };
        assert_eq!(
            text(Serializer::V2.encode_reply(&reply)),
            r#"["1","2","room:lobby","phx_reply",{"response":{"v":1},"status":"ok"}]"#
        );
        // v1_join_echo_broadcast.json: echo reply
        assert_eq!(
            text(Serializer::V1.encode_reply(&reply)),
            r#"{"event":"phx_reply","payload":{"response":{"v":1},"status":"ok"},"ref":"2","topic":"room:lobby"}"#
        );
        // binary_echo.json
        let binary = Reply {
            response: Payload::Binary(Bytes::from_static(b"\x00\x01\x02\x03\xff\xfe\n\r")),
            ..reply
        };
        assert_eq!(
            Serializer::V2.encode_reply(&binary),
            Ok(Frame::Binary(b64("AQEBCgIxMnJvb206bG9iYnlvawABAgP//goN")))
        );
        assert_eq!(
            Serializer::V1.encode_reply(&binary),
            Err(EncodeError::BinaryNotSupported)
        );
    }

    #[test]
    fn encodes_broadcasts() {
        let b = Broadcast::new("room:lobby", "news", Payload::Json(json!({"n":1})));
        assert_eq!(
            text(Serializer::V2.encode_broadcast(&b)),
            r#"[null,null,"room:lobby","news",{"n":1}]"#
        );
        // v1_join_echo_broadcast.json: HTTP-triggered broadcast
        assert_eq!(
            text(Serializer::V1.encode_broadcast(&b)),
            r#"{"event":"news","payload":{"n":1},"ref":null,"topic":"room:lobby"}"#
        );
        // binary_broadcast.json
        let binary = Broadcast::new(
            "room:lobby",
            "binary_broadcast",
            Payload::Binary(Bytes::from_static(
                b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f",
            )),
        );
        assert_eq!(
            Serializer::V2.encode_broadcast(&binary),
            Ok(Frame::Binary(b64(
                "AgoQcm9vbTpsb2JieWJpbmFyeV9icm9hZGNhc3QAAQIDBAUGBwgJCgsMDQ4P"
            )))
        );
        assert_eq!(
            Serializer::V1.encode_broadcast(&binary),
            Err(EncodeError::BinaryNotSupported)
        );
        let too_long = Broadcast::new("t".repeat(300), "e", Payload::Binary(Bytes::new()));
        assert_eq!(
            Serializer::V2.encode_broadcast(&too_long),
            Err(EncodeError::FieldTooLong {
                field: "topic",
                len: 300
            })
        );
    }
}
