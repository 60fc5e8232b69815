//! A client's frames through a whole session (decode, heartbeat, join,
//! leave, pushes to a channel, replies, presence): never panics.
//!
//! Input: the first byte picks the serializer (even: V2, odd: V1); the rest
//! is frames separated by `\n`; a frame starting with `0xb0` is a binary
//! frame (the rest of it), any other is a text frame (skipped unless UTF-8,
//! as the websocket layer refuses it).
#![no_main]

use fawkes::fuzzing::{session_frames, ClientFrame};
use fawkes::Serializer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let serializer = if kind % 2 == 0 {
        Serializer::V2
    } else {
        Serializer::V1
    };
    let frames = rest
        .split(|&b| b == b'\n')
        .take(64)
        .filter_map(|frame| match frame.split_first() {
            Some((0xb0, binary)) => Some(ClientFrame::Binary(binary.to_vec())),
            _ => std::str::from_utf8(frame)
                .ok()
                .map(|text| ClientFrame::Text(text.to_owned())),
        })
        .collect();
    session_frames(serializer, frames);
});
