//! The longpoll `POST` body parser (an ndjson batch or one frame): never
//! panics. The first byte picks the content type.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let content_type = match kind % 3 {
        0 => Some("application/x-ndjson"),
        1 => Some("application/json"),
        _ => None,
    };
    let _ = fawkes::fuzzing::longpoll_body(content_type, body);
});
