//! Base64url without padding, decoded leniently as Elixir's
//! `Base.url_decode64(_, padding: false)` does: the unused low bits of the last
//! character are ignored (so `...A` and `...B` can decode alike).

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encode without padding.
pub(super) fn encode(bytes: &[u8]) -> String {
    ENGINE.encode(bytes)
}

/// Decode leniently; `None` for characters outside the alphabet or a bad length.
pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
    ENGINE.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_unused_trailing_bits_like_elixir() {
        assert_eq!(decode("SFMyNTY"), Some(b"HS256".to_vec()));
        assert_eq!(decode("SFMyNTZ"), Some(b"HS256".to_vec()));
        assert_eq!(decode("SFMyNT"), Some(b"HS25".to_vec()));
        assert_eq!(
            decode("SFMyN"),
            None,
            "a 5-character group cannot be base64"
        );
        assert_eq!(decode("a+b/"), None, "standard alphabet");
        assert_eq!(encode(b"HS256"), "SFMyNTY");
    }
}
