//! The V2 JSON decoder (`vsn=2.0.0` text frames): never panics; a decoded
//! message encodes again.
#![no_main]

use fawkes_protocol::Serializer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let serializer = Serializer::V2;
    if let Ok(message) = serializer.decode_text(text) {
        let _ = serializer.encode_message(&message);
    }
});
