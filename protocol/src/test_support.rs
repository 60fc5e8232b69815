//! Helpers for unit tests only.

use bytes::Bytes;

/// Decode standard base64 (with `=` padding), as found in the recorded
/// transcripts' `binary_b64` fields. Panics on malformed input (tests only).
pub(crate) fn b64(text: &str) -> Bytes {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("valid base64 character");
        acc = (acc << 6) | u32::try_from(v).expect("6-bit value");
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).expect("byte"));
        }
    }
    Bytes::from(out)
}

#[test]
fn b64_decodes_padding_variants() {
    assert_eq!(b64("aGVsbG8="), Bytes::from_static(b"hello"));
    assert_eq!(b64("aGk="), Bytes::from_static(b"hi"));
    assert_eq!(b64("YWJj"), Bytes::from_static(b"abc"));
    assert_eq!(b64(""), Bytes::new());
}
