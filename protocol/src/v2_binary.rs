//! V2 binary frames (WebSocket binary opcode, vsn `2.0.x` only).
//!
//! A binary frame is a kind byte, one length byte per metadata field, the
//! metadata fields themselves (UTF-8, at most 255 bytes each) and finally
//! the payload, which runs to the end of the frame:
//!
//! | kind | direction | header after the kind byte | fields |
//! |---|---|---|---|
//! | 0 push | client → server | 4 lengths | join_ref, ref, topic, event |
//! | 0 push | server → client | 3 lengths | join_ref, topic, event |
//! | 1 reply | server → client | 4 lengths | join_ref, ref, topic, status |
//! | 2 broadcast | server → client | 2 lengths | topic, event |
//!
//! Decoded payloads are zero-copy slices of the frame.

use bytes::Bytes;

use crate::client::ServerFrame;
use crate::error::{DecodeError, EncodeError};
use crate::message::{Broadcast, Message, Payload, Reply};

/// Kind byte of a push (either direction).
pub(crate) const KIND_PUSH: u8 = 0;
/// Kind byte of a server reply.
pub(crate) const KIND_REPLY: u8 = 1;
/// Kind byte of a server broadcast.
pub(crate) const KIND_BROADCAST: u8 = 2;

/// Lay out `kind`, the field lengths, the fields and the payload.
fn encode<const N: usize>(
    kind: u8,
    fields: [(&'static str, &str); N],
    payload: &[u8],
) -> Result<Bytes, EncodeError> {
    let meta: usize = fields.iter().map(|(_, value)| value.len()).sum();
    let mut buf = Vec::with_capacity(1 + N + meta + payload.len());
    buf.push(kind);
    for (field, value) in &fields {
        let len = value.len();
        buf.push(u8::try_from(len).map_err(|_| EncodeError::FieldTooLong { field, len })?);
    }
    for (_, value) in &fields {
        buf.extend_from_slice(value.as_bytes());
    }
    buf.extend_from_slice(payload);
    Ok(Bytes::from(buf))
}

/// Server → client push (kind 0). An absent join ref is written as empty.
pub(crate) fn encode_push(
    join_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<Bytes, EncodeError> {
    encode(
        KIND_PUSH,
        [
            ("join_ref", join_ref.unwrap_or_default()),
            ("topic", topic),
            ("event", event),
        ],
        payload,
    )
}

/// Server → client reply (kind 1). Absent refs are written as empty.
pub(crate) fn encode_reply(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    status: &str,
    payload: &[u8],
) -> Result<Bytes, EncodeError> {
    encode(
        KIND_REPLY,
        [
            ("join_ref", join_ref.unwrap_or_default()),
            ("ref", ref_.unwrap_or_default()),
            ("topic", topic),
            ("status", status),
        ],
        payload,
    )
}

/// Server → client broadcast (kind 2).
pub(crate) fn encode_broadcast(
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<Bytes, EncodeError> {
    encode(
        KIND_BROADCAST,
        [("topic", topic), ("event", event)],
        payload,
    )
}

/// Client → server push (kind 0, with a ref). Absent refs are written as empty.
pub(crate) fn encode_client_push(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<Bytes, EncodeError> {
    encode(
        KIND_PUSH,
        [
            ("join_ref", join_ref.unwrap_or_default()),
            ("ref", ref_.unwrap_or_default()),
            ("topic", topic),
            ("event", event),
        ],
        payload,
    )
}

/// Read the kind byte without consuming anything.
fn kind(frame: &Bytes) -> Result<u8, DecodeError> {
    frame.first().copied().ok_or(DecodeError::Truncated {
        field: "kind",
        needed: 1,
        available: 0,
    })
}

/// Split a frame whose kind byte has been checked into its `N` metadata
/// fields (named by `names`, for error reports) and its payload.
fn split<const N: usize>(
    mut frame: Bytes,
    names: [&'static str; N],
) -> Result<([String; N], Bytes), DecodeError> {
    let header_len = 1 + N;
    if frame.len() < header_len {
        return Err(DecodeError::Truncated {
            field: "header",
            needed: header_len,
            available: frame.len(),
        });
    }
    let header = frame.split_to(header_len);
    let mut fields: [String; N] = std::array::from_fn(|_| String::new());
    for ((slot, field), len) in fields.iter_mut().zip(names).zip(header.iter().skip(1)) {
        let len = usize::from(*len);
        if frame.len() < len {
            return Err(DecodeError::Truncated {
                field,
                needed: len,
                available: frame.len(),
            });
        }
        let raw = frame.split_to(len);
        *slot = std::str::from_utf8(&raw)
            .map_err(|_| DecodeError::InvalidUtf8 { field })?
            .to_owned();
    }
    Ok((fields, frame))
}

/// Server side: decode a client push (the only kind a client may send).
///
/// Empty refs stay `Some("")`: the frame cannot say "absent", and keeping the
/// empty string lets the server echo exactly what it received.
pub(crate) fn decode_client_push(frame: Bytes) -> Result<Message, DecodeError> {
    match kind(&frame)? {
        KIND_PUSH => {
            let ([join_ref, ref_, topic, event], payload) =
                split(frame, ["join_ref", "ref", "topic", "event"])?;
            Ok(Message {
                join_ref: Some(join_ref),
                ref_: Some(ref_),
                topic,
                event,
                payload: Payload::Binary(payload),
            })
        }
        other => Err(DecodeError::UnknownBinaryKind(other)),
    }
}

/// The server writes an absent ref as an empty field, so read empty as absent.
fn non_empty(field: String) -> Option<String> {
    if field.is_empty() {
        None
    } else {
        Some(field)
    }
}

/// Client side: decode a server push, reply or broadcast.
pub(crate) fn decode_server(frame: Bytes) -> Result<ServerFrame, DecodeError> {
    match kind(&frame)? {
        KIND_PUSH => {
            let ([join_ref, topic, event], payload) = split(frame, ["join_ref", "topic", "event"])?;
            Ok(ServerFrame::Message(Message {
                join_ref: non_empty(join_ref),
                ref_: None,
                topic,
                event,
                payload: Payload::Binary(payload),
            }))
        }
        KIND_REPLY => {
            let ([join_ref, ref_, topic, status], payload) =
                split(frame, ["join_ref", "ref", "topic", "status"])?;
            Ok(ServerFrame::Reply(Reply {
                join_ref: non_empty(join_ref),
                ref_: non_empty(ref_),
                topic,
                status,
                response: Payload::Binary(payload),
            }))
        }
        KIND_BROADCAST => {
            let ([topic, event], payload) = split(frame, ["topic", "event"])?;
            Ok(ServerFrame::Broadcast(Broadcast {
                topic,
                event,
                payload: Payload::Binary(payload),
            }))
        }
        other => Err(DecodeError::UnknownBinaryKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::b64;

    // binary_echo.json
    const ECHO_IN: &str = "AAEBCgsxMnJvb206bG9iYnliaW5hcnlfZWNobwABAgP//goN";
    const ECHO_OUT: &str = "AQEBCgIxMnJvb206bG9iYnlvawABAgP//goN";
    // binary_push.json
    const PUSH_IN: &str = "AAEBCgsxMnJvb206bG9iYnliaW5hcnlfcHVzaABoZWxsb/8=";
    const PUSH_OUT: &str = "AAEKDTFyb29tOmxvYmJ5YmluYXJ5X3B1c2hlZABoZWxsb/8=";
    // binary_broadcast.json
    const BCAST_IN: &str = "AAEBChAxMnJvb206bG9iYnliaW5hcnlfYnJvYWRjYXN0AAECAwQFBgcICQoLDA0ODw==";
    const BCAST_OUT: &str = "AgoQcm9vbTpsb2JieWJpbmFyeV9icm9hZGNhc3QAAQIDBAUGBwgJCgsMDQ4P";

    const ECHO_BYTES: &[u8] = b"\x00\x01\x02\x03\xff\xfe\n\r";
    const PUSH_BYTES: &[u8] = b"\x00hello\xff";
    const BCAST_BYTES: &[u8] = b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f";

    fn client_push(event: &str, payload: &'static [u8]) -> Message {
        Message {
            join_ref: Some("1".into()),
            ref_: Some("2".into()),
            topic: "room:lobby".into(),
            event: event.into(),
            payload: Payload::Binary(Bytes::from_static(payload)),
        }
    }

    #[test]
    fn decodes_recorded_client_pushes() {
        assert_eq!(
            decode_client_push(b64(ECHO_IN)),
            Ok(client_push("binary_echo", ECHO_BYTES))
        );
        assert_eq!(
            decode_client_push(b64(PUSH_IN)),
            Ok(client_push("binary_push", PUSH_BYTES))
        );
        assert_eq!(
            decode_client_push(b64(BCAST_IN)),
            Ok(client_push("binary_broadcast", BCAST_BYTES))
        );
    }

    #[test]
    fn decoded_payload_is_a_slice_of_the_frame() {
        let frame = b64(ECHO_IN);
        let start = frame.as_ptr() as usize;
        let end = start + frame.len();
        let msg = decode_client_push(frame).unwrap();
        let Payload::Binary(payload) = msg.payload else {
            panic!("binary payload expected");
        };
        let p = payload.as_ptr() as usize;
        assert!(p >= start && p + payload.len() == end);
    }

    #[test]
    fn encodes_recorded_server_frames() {
        assert_eq!(
            encode_reply(Some("1"), Some("2"), "room:lobby", "ok", ECHO_BYTES),
            Ok(b64(ECHO_OUT))
        );
        assert_eq!(
            encode_push(Some("1"), "room:lobby", "binary_pushed", PUSH_BYTES),
            Ok(b64(PUSH_OUT))
        );
        assert_eq!(
            encode_broadcast("room:lobby", "binary_broadcast", BCAST_BYTES),
            Ok(b64(BCAST_OUT))
        );
    }

    #[test]
    fn encodes_recorded_client_pushes() {
        assert_eq!(
            encode_client_push(
                Some("1"),
                Some("2"),
                "room:lobby",
                "binary_echo",
                ECHO_BYTES
            ),
            Ok(b64(ECHO_IN))
        );
        assert_eq!(
            encode_client_push(
                Some("1"),
                Some("2"),
                "room:lobby",
                "binary_push",
                PUSH_BYTES
            ),
            Ok(b64(PUSH_IN))
        );
    }

    #[test]
    fn decodes_recorded_server_frames() {
        assert_eq!(
            decode_server(b64(ECHO_OUT)),
            Ok(ServerFrame::Reply(Reply {
                join_ref: Some("1".into()),
                ref_: Some("2".into()),
                topic: "room:lobby".into(),
                status: "ok".into(),
                response: Payload::Binary(Bytes::from_static(ECHO_BYTES)),
            }))
        );
        assert_eq!(
            decode_server(b64(PUSH_OUT)),
            Ok(ServerFrame::Message(Message {
                join_ref: Some("1".into()),
                ref_: None,
                topic: "room:lobby".into(),
                event: "binary_pushed".into(),
                payload: Payload::Binary(Bytes::from_static(PUSH_BYTES)),
            }))
        );
        assert_eq!(
            decode_server(b64(BCAST_OUT)),
            Ok(ServerFrame::Broadcast(Broadcast {
                topic: "room:lobby".into(),
                event: "binary_broadcast".into(),
                payload: Payload::Binary(Bytes::from_static(BCAST_BYTES)),
            }))
        );
    }

    #[test]
    fn absent_refs_are_written_empty() {
        assert_eq!(
            encode_push(None, "t", "e", b"p"),
            Ok(Bytes::from_static(b"\x00\x00\x01\x01tep"))
        );
        assert_eq!(
            encode_reply(None, None, "t", "ok", b""),
            Ok(Bytes::from_static(b"\x01\x00\x00\x01\x02tok"))
        );
        let msg = decode_client_push(Bytes::from_static(b"\x00\x00\x00\x01\x01te")).unwrap();
        assert_eq!(msg.join_ref.as_deref(), Some(""));
        assert_eq!(msg.ref_.as_deref(), Some(""));
        assert_eq!(msg.payload, Payload::Binary(Bytes::new()));
        let ServerFrame::Reply(reply) =
            decode_server(Bytes::from_static(b"\x01\x00\x00\x01\x02tok")).unwrap()
        else {
            panic!("reply expected");
        };
        assert_eq!((reply.join_ref, reply.ref_), (None, None));
    }

    #[test]
    fn metadata_longer_than_255_bytes_is_refused() {
        let long = "x".repeat(256);
        let ok = "x".repeat(255);
        assert!(encode_broadcast(&ok, "e", b"").is_ok());
        assert_eq!(
            encode_broadcast(&long, "e", b""),
            Err(EncodeError::FieldTooLong {
                field: "topic",
                len: 256
            })
        );
        assert_eq!(
            encode_push(Some(&long), "t", "e", b""),
            Err(EncodeError::FieldTooLong {
                field: "join_ref",
                len: 256
            })
        );
        assert_eq!(
            encode_reply(None, None, "t", &long, b""),
            Err(EncodeError::FieldTooLong {
                field: "status",
                len: 256
            })
        );
        assert_eq!(
            encode_client_push(None, Some(&long), "t", "e", b""),
            Err(EncodeError::FieldTooLong {
                field: "ref",
                len: 256
            })
        );
    }

    #[test]
    fn rejects_malformed_client_frames() {
        let truncated = |field, needed, available| {
            Err(DecodeError::Truncated {
                field,
                needed,
                available,
            })
        };
        assert_eq!(decode_client_push(Bytes::new()), truncated("kind", 1, 0));
        assert_eq!(
            decode_client_push(Bytes::from_static(b"\x00\x01\x01")),
            truncated("header", 5, 3)
        );
        assert_eq!(
            decode_client_push(Bytes::from_static(b"\x00\x02\x01\x01\x01a")),
            truncated("join_ref", 2, 1)
        );
        assert_eq!(
            decode_client_push(Bytes::from_static(b"\x00\x00\x00\x01\x05tev")),
            truncated("event", 5, 2)
        );
        assert_eq!(
            decode_client_push(b64(ECHO_OUT)),
            Err(DecodeError::UnknownBinaryKind(1))
        );
        assert_eq!(
            decode_client_push(Bytes::from_static(b"\x09")),
            Err(DecodeError::UnknownBinaryKind(9))
        );
        assert_eq!(
            decode_client_push(Bytes::from_static(b"\x00\x00\x00\x01\x01\xffe")),
            Err(DecodeError::InvalidUtf8 { field: "topic" })
        );
    }

    #[test]
    fn rejects_malformed_server_frames() {
        assert_eq!(
            decode_server(Bytes::from_static(b"\x03\x00\x00")),
            Err(DecodeError::UnknownBinaryKind(3))
        );
        assert_eq!(
            decode_server(Bytes::from_static(b"\x02\x01")),
            Err(DecodeError::Truncated {
                field: "header",
                needed: 3,
                available: 2
            })
        );
        assert_eq!(
            decode_server(Bytes::from_static(b"\x01\x00\x00\x01\x02t\xc3")),
            Err(DecodeError::Truncated {
                field: "status",
                needed: 2,
                available: 1
            })
        );
        assert_eq!(
            decode_server(Bytes::from_static(b"\x00\x01\x01\x01\xc0te")),
            Err(DecodeError::InvalidUtf8 { field: "join_ref" })
        );
        assert!(matches!(
            decode_server(Bytes::new()),
            Err(DecodeError::Truncated { field: "kind", .. })
        ));
    }
}
