//! Property tests: JSON → term → bytes → term → JSON round trips, and
//! "never panics" on arbitrary and on mutated real bytes.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::json::{from_json, to_json_text, to_json_value};
use crate::pubsub_redis::{self, Mode, PayloadRef};
use crate::{decode, encode, AtomEncoding, EncodeOptions};

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..20).prop_map(String::from_iter)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..40)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn options() -> impl Strategy<Value = EncodeOptions> {
    (any::<bool>(), prop::option::of(0u32..=9)).prop_map(|(utf8, compression)| EncodeOptions {
        atoms: if utf8 {
            AtomEncoding::Utf8
        } else {
            AtomEncoding::Latin1
        },
        compression,
    })
}

proptest! {
    #[test]
    fn json_survives_the_term_format(value in json_value(), options in options()) {
        let bytes = encode(&from_json(&value), &options).unwrap();
        let term = decode(&bytes).unwrap();
        prop_assert_eq!(&to_json_value(&term).unwrap(), &value);
        // The text is serde_json's own (same key order, same float digits);
        // parsing it back would test serde_json's float parser instead.
        prop_assert_eq!(to_json_text(&term).unwrap(), value.to_string());
    }

    #[test]
    fn broadcasts_survive_the_redis_wire(value in json_value(), topic in text(), event in text(), options in options()) {
        let bytes = pubsub_redis::encode_broadcast(Mode::Except, "fawkes_b", &topic, &event, PayloadRef::Json(&value), &options).unwrap();
        let message = pubsub_redis::decode(&bytes).unwrap();
        prop_assert_eq!(message.topic, topic);
        prop_assert_eq!(message.event, event);
        prop_assert_eq!(message.payload, pubsub_redis::BroadcastPayload::Json(value));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut with_version = vec![131];
        with_version.extend_from_slice(&bytes);
        for input in [&bytes, &with_version] {
            if let Ok(term) = decode(input) {
                let _ = to_json_text(&term);
                prop_assert_eq!(decode(&encode(&term, &EncodeOptions::default()).unwrap()).unwrap(), term);
            }
            let _ = pubsub_redis::decode(input);
        }
    }

    #[test]
    fn mutated_broadcasts_never_panic(value in json_value(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = pubsub_redis::encode_broadcast(Mode::Only, "n", "t", "e", PayloadRef::Json(&value), &EncodeOptions::default()).unwrap();
        for (index, byte) in flips {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = pubsub_redis::decode(&bytes);
    }
}
