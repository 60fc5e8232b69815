//! The V2 binary decoder (`vsn=2.0.0` binary frames): never panics; a
//! decoded message encodes again, and server frames decode for the client.
#![no_main]

use bytes::Bytes;
use fawkes_protocol::{client, Serializer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let serializer = Serializer::V2;
    let frame = Bytes::copy_from_slice(data);
    if let Ok(message) = serializer.decode_binary(frame.clone()) {
        let _ = serializer.encode_message(&message);
    }
    let _ = client::decode_server_binary(frame);
});
