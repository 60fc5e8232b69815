//! The bytes a broadcast travels as on the Redis channel, and the channel's
//! name. Every encoding and decoding of the cluster's wire format is here.
//!
//! Format (fawkes-only for now): `FWK1`, then the sender's node name
//! (u16 length + UTF-8), the topic and the event (u32 length + UTF-8
//! each), one payload kind byte (0 JSON text, 1 binary), and the payload
//! bytes up to the end. Decoding never allocates more than the message
//! holds and never panics.

use bytes::Bytes;
use fawkes_protocol::{Broadcast, Payload};

/// First bytes of every message.
const MAGIC: &[u8; 4] = b"FWK1";
const KIND_JSON: u8 = 0;
const KIND_BINARY: u8 = 1;

/// The Redis channel of the PubSub named `pubsub` (phoenix_pubsub_redis's
/// naming: `phx:Elixir.<PubSub>.Adapter`).
pub fn channel_name(pubsub: &str) -> String {
    format!("phx:Elixir.{pubsub}.Adapter")
}

/// A broadcast as read from the channel.
#[derive(Debug, PartialEq)]
pub struct Received {
    /// The node that published it.
    pub node: String,
    /// The broadcast.
    pub broadcast: Broadcast,
}

/// Why bytes on the channel are not a broadcast.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Not this format (or another version of it).
    #[error("not a fawkes cluster message")]
    BadMagic,
    /// A length runs past the end of the message.
    #[error("message truncated")]
    Truncated,
    /// A name is not UTF-8.
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
    /// Unknown payload kind.
    #[error("unknown payload kind {0}")]
    Kind(u8),
    /// The JSON payload does not parse.
    #[error("invalid JSON payload: {0}")]
    Json(String),
}

/// Encode `broadcast` published by `node`, once for every other node.
pub fn encode(node: &str, broadcast: &Broadcast) -> Vec<u8> {
    let (kind, payload): (u8, std::borrow::Cow<'_, [u8]>) = match &broadcast.payload {
        Payload::Json(value) => (
            KIND_JSON,
            // A serde_json::Value always serializes.
            serde_json::to_vec(value).unwrap_or_default().into(),
        ),
        Payload::RawJson(text) => (KIND_JSON, text.as_bytes().into()),
        Payload::Binary(bytes) => (KIND_BINARY, bytes.as_ref().into()),
    };
    let node = &node.as_bytes()[..node.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(
        4 + 2 + node.len() + 8 + broadcast.topic.len() + broadcast.event.len() + 1 + payload.len(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(node.len() as u16).to_be_bytes());
    out.extend_from_slice(node);
    for text in [&broadcast.topic, &broadcast.event] {
        out.extend_from_slice(&(text.len() as u32).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out.push(kind);
    out.extend_from_slice(&payload);
    out
}

/// Decode one message read from the channel.
pub fn decode(bytes: &[u8]) -> Result<Received, WireError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(WireError::BadMagic)?;
    let (node_len, rest) = take(rest, 2)?;
    let node_len = u16::from_be_bytes([node_len[0], node_len[1]]) as usize;
    let (node, rest) = take(rest, node_len)?;
    let (topic, rest) = take_text(rest, "topic")?;
    let (event, rest) = take_text(rest, "event")?;
    let (&kind, payload) = rest.split_first().ok_or(WireError::Truncated)?;
    let payload = match kind {
        KIND_JSON => Payload::Json(
            serde_json::from_slice(payload).map_err(|e| WireError::Json(e.to_string()))?,
        ),
        KIND_BINARY => Payload::Binary(Bytes::copy_from_slice(payload)),
        other => return Err(WireError::Kind(other)),
    };
    let node = std::str::from_utf8(node).map_err(|_| WireError::Utf8("node"))?;
    Ok(Received {
        node: node.to_owned(),
        broadcast: Broadcast {
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        },
    })
}

fn take(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), WireError> {
    if bytes.len() < n {
        return Err(WireError::Truncated);
    }
    Ok(bytes.split_at(n))
}

fn take_text<'a>(bytes: &'a [u8], what: &'static str) -> Result<(&'a str, &'a [u8]), WireError> {
    let (len, rest) = take(bytes, 4)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (text, rest) = take(rest, len)?;
    let text = std::str::from_utf8(text).map_err(|_| WireError::Utf8(what))?;
    Ok((text, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn broadcast(payload: Payload) -> Broadcast {
        Broadcast {
            topic: "room:lobby".into(),
            event: "new_msg".into(),
            payload,
        }
    }

    #[test]
    fn json_and_binary_round_trip() {
        for payload in [
            Payload::Json(serde_json::json!({"body": "hé", "n": [1, 2]})),
            Payload::Binary(Bytes::from_static(&[0, 159, 146, 150, 255])),
        ] {
            let b = broadcast(payload);
            let got = decode(&encode("node-a", &b)).expect("decodes");
            assert_eq!(got.node, "node-a");
            assert_eq!(got.broadcast, b);
        }
    }

    #[test]
    fn raw_json_travels_as_json() {
        let b = broadcast(Payload::RawJson(r#"{"a":1}"#.into()));
        let got = decode(&encode("n", &b)).expect("decodes");
        assert_eq!(
            got.broadcast.payload,
            Payload::Json(serde_json::json!({"a": 1}))
        );
    }

    #[test]
    fn channel_follows_phoenix_naming() {
        assert_eq!(
            channel_name("Fawkes.PubSub"),
            "phx:Elixir.Fawkes.PubSub.Adapter"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(decode(b""), Err(WireError::BadMagic));
        assert_eq!(decode(b"hello world"), Err(WireError::BadMagic));
        // A length far past the end must not be trusted.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[0, 1, b'n', 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode(&huge), Err(WireError::Truncated));
        let mut b = encode("n", &broadcast(Payload::Json(serde_json::json!({}))));
        *b.last_mut().unwrap() = b'{';
        assert!(matches!(decode(&b), Err(WireError::Json(_))));
        let good = encode("n", &broadcast(Payload::Json(serde_json::json!(1))));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "prefix of {cut} bytes");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
        }
    }
}
