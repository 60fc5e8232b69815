//! Fuzz target: the term decoder, the JSON mapping and the phoenix_pubsub_redis
//! decoder on arbitrary bytes. None may panic; a decoded term must survive
//! encode → decode unchanged, and its JSON text must be valid JSON syntax.

#![no_main]

use fawkes_etf::{decode, encode, json, pubsub_redis, EncodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pubsub_redis::decode(data);
    let Ok(term) = decode(data) else { return };
    if let Ok(text) = json::to_json_text(&term) {
        // Syntax only: integers of any size are valid JSON (serde_json's
        // `Value` refuses those beyond f64's range, which is not a syntax error).
        let parsed = serde_json::from_str::<serde::de::IgnoredAny>(&text);
        assert!(parsed.is_ok(), "bad JSON text {text}");
    }
    let _ = json::to_json_value(&term);
    let bytes = encode(&term, &EncodeOptions::default()).expect("a decoded term encodes");
    assert_eq!(decode(&bytes).expect("re-encoded term decodes"), term);
});
