//! The bytes a broadcast travels as on the Redis channel, and the channel's
//! name. Every encoding and decoding of the cluster's wire format is here.
//!
//! The format is phoenix_pubsub_redis 3.x's (`fawkes-etf` implements it):
//! `{3, :except, node, topic, %Phoenix.Socket.Broadcast{}, dispatcher}` in
//! Erlang term format on `phx:Elixir.<PubSub>.Adapter`, so Phoenix nodes
//! can share the channel. Decoding is bounded and never panics.

use bytes::Bytes;
use fawkes_etf::pubsub_redis::{self as phx, BroadcastPayload, Mode, PayloadRef};
use fawkes_etf::EncodeOptions;
use fawkes_protocol::{Broadcast, Payload};

pub use fawkes_etf::pubsub_redis::Rejected;

/// Longest node name: node names travel as Erlang atoms.
pub const MAX_NODE_NAME: usize = 255;

/// The Redis channel of the PubSub named `pubsub`
/// (`phx:Elixir.<PubSub>.Adapter`).
pub fn channel_name(pubsub: &str) -> String {
    phx::channel_name(pubsub)
}

/// Why a PubSub name cannot name an Elixir PubSub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "phoenix_pubsub {0:?} must look like an Elixir module name, the `name:` of the app's \
     {{Phoenix.PubSub, ...}} child (for example \"MyApp.PubSub\"): dot-separated parts, each \
     an ASCII capital letter followed by letters, digits or underscores"
)]
pub struct PubSubNameError(pub String);

/// Check that `name` is an Elixir module name such as `MyApp.PubSub` (an
/// `Elixir.` prefix is allowed): the Redis channel is derived from it.
pub fn check_pubsub_name(name: &str) -> Result<(), PubSubNameError> {
    let bare = name.strip_prefix("Elixir.").unwrap_or(name);
    let part_ok = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    // The whole channel name must fit the atom Elixir builds from it.
    if bare.len() <= 200 && bare.split('.').all(part_ok) {
        Ok(())
    } else {
        Err(PubSubNameError(name.to_owned()))
    }
}

/// The encoder options for a compression level (`None` or 0: uncompressed;
/// 1..=9: `term_to_binary(msg, compressed: level)`), or `None` when the
/// level is out of range.
pub fn encode_options(compression: Option<u32>) -> Option<EncodeOptions> {
    match compression {
        None | Some(0) => Some(EncodeOptions::default()),
        Some(level @ 1..=9) => Some(EncodeOptions {
            compression: Some(level),
            ..EncodeOptions::default()
        }),
        Some(_) => None,
    }
}

/// Why a broadcast could not be encoded for the wire.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Raw JSON text that does not parse.
    #[error("payload is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The term could not be written (e.g. a node name too long for an atom).
    #[error(transparent)]
    Term(#[from] fawkes_etf::EncodeError),
}

/// Encode `broadcast` published by `node`, once, for every other node
/// (uncompressed).
pub fn encode(node: &str, broadcast: &Broadcast) -> Result<Vec<u8>, EncodeError> {
    encode_with(node, broadcast, &EncodeOptions::default())
}

/// [`encode`] with the given encoder options (compression, atom style).
pub fn encode_with(
    node: &str,
    broadcast: &Broadcast,
    options: &EncodeOptions,
) -> Result<Vec<u8>, EncodeError> {
    let parsed;
    let payload = match &broadcast.payload {
        Payload::Json(value) => PayloadRef::Json(value),
        Payload::RawJson(text) => {
            parsed = serde_json::from_str::<serde_json::Value>(text)?;
            PayloadRef::Json(&parsed)
        }
        Payload::Binary(bytes) => PayloadRef::Binary(bytes),
    };
    Ok(phx::encode_broadcast(
        Mode::Except,
        node,
        &broadcast.topic,
        &broadcast.event,
        payload,
        options,
    )?)
}

/// A message read from the channel.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A broadcast for this node.
    Broadcast(Broadcast),
    /// This node's own publish, or a direct broadcast for another node.
    NotForUs,
}

/// Decode one message read from the channel, as seen by node `own`.
pub fn decode(bytes: &[u8], own: &str) -> Result<Incoming, Rejected> {
    let message = phx::decode(bytes)?;
    if !phx::accept(&message, own) {
        return Ok(Incoming::NotForUs);
    }
    let payload = match message.payload {
        BroadcastPayload::Json(value) => Payload::Json(value),
        BroadcastPayload::JsonText(text) => Payload::RawJson(text.into()),
        BroadcastPayload::Binary(bytes) => Payload::Binary(Bytes::from(bytes)),
    };
    Ok(Incoming::Broadcast(Broadcast {
        topic: message.topic,
        event: message.event,
        payload,
    }))
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
    fn json_and_binary_round_trip_between_nodes() {
        for payload in [
            Payload::Json(serde_json::json!({"body": "hé", "n": [1, 2]})),
            Payload::Binary(Bytes::from_static(&[0, 159, 146, 150, 255])),
        ] {
            let b = broadcast(payload);
            let bytes = encode("node_a", &b).expect("encodes");
            assert_eq!(
                decode(&bytes, "node_b").expect("decodes"),
                Incoming::Broadcast(b)
            );
            assert_eq!(
                decode(&bytes, "node_a").expect("decodes"),
                Incoming::NotForUs
            );
        }
    }

    #[test]
    fn raw_json_travels_as_json() {
        let b = broadcast(Payload::RawJson(r#"{"a":1}"#.into()));
        let got = decode(&encode("n", &b).expect("encodes"), "m").expect("decodes");
        let Incoming::Broadcast(got) = got else {
            panic!("{got:?}")
        };
        assert_eq!(got.payload, Payload::Json(serde_json::json!({"a": 1})));
    }

    #[test]
    fn channel_follows_phoenix_naming() {
        assert_eq!(
            channel_name("Fawkes.PubSub"),
            "phx:Elixir.Fawkes.PubSub.Adapter"
        );
    }

    #[test]
    fn pubsub_names_must_be_elixir_modules() {
        for good in [
            "Fawkes.PubSub",
            "MyApp.PubSub",
            "Conf.PubSub",
            "Elixir.A_1.B2",
            "X",
        ] {
            assert_eq!(check_pubsub_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "myapp.pubsub",
            "MyApp..PubSub",
            "MyApp.PubSub.",
            ":my_pubsub",
            "My App",
            "Elixir.",
            "Ünï.PubSub",
        ] {
            let error = check_pubsub_name(bad).expect_err(bad);
            assert!(error.to_string().contains("Elixir module name"), "{error}");
        }
    }

    #[test]
    fn compression_levels_choose_the_encoding() {
        assert_eq!(encode_options(None), Some(EncodeOptions::default()));
        assert_eq!(encode_options(Some(0)), Some(EncodeOptions::default()));
        assert_eq!(encode_options(Some(9)).and_then(|o| o.compression), Some(9));
        assert_eq!(encode_options(Some(10)), None);
        // A payload worth compressing goes out as `83 50 <size>`, and decodes back.
        let b = broadcast(Payload::Json(serde_json::json!({"body": "a".repeat(500)})));
        let options = encode_options(Some(6)).expect("valid level");
        let bytes = encode_with("node_a", &b, &options).expect("encodes");
        assert_eq!(bytes.get(..2), Some(&[131, 80][..]));
        assert!(bytes.len() < encode("node_a", &b).expect("encodes").len());
        assert_eq!(
            decode(&bytes, "node_b").expect("decodes"),
            Incoming::Broadcast(b)
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"", "n").is_err());
        assert!(decode(b"hello world", "n").is_err());
        let good = encode("n", &broadcast(Payload::Json(serde_json::json!(1)))).expect("encodes");
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], "m").is_err(), "prefix of {cut} bytes");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes, "n");
            let mut framed = vec![131];
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed, "n");
        }
    }
}
