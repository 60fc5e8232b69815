//! Signed tokens (Plug.Crypto.MessageVerifier): `b64(protected) "." b64(payload)
//! "." b64(HMAC(key, b64(protected) "." b64(payload)))`, where `protected` is
//! `HS256`, `HS384` or `HS512` and the key is the same 32 bytes for all three.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384, Sha512};

use super::{base64url, TokenError};

/// `base64url("HS256")`: every token fawkes signs starts with it.
const HS256_PREFIX: &str = "SFMyNTY";

/// Sign a payload with HMAC-SHA256.
pub(super) fn sign(key: &[u8; 32], payload: &[u8]) -> String {
    let plain_text = format!("{HS256_PREFIX}.{}", base64url::encode(payload));
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_mac());
    mac.update(plain_text.as_bytes());
    let signature = mac.finalize().into_bytes();
    format!("{plain_text}.{}", base64url::encode(&signature))
}

/// HMAC takes keys of any length; this cannot happen with a 32-byte key.
fn unreachable_mac<T>() -> T {
    unreachable!("HMAC accepts any key length")
}

/// Check a token's MAC (in constant time) and return its payload bytes.
pub(super) fn verify(key: &[u8; 32], token: &str) -> Result<Vec<u8>, TokenError> {
    // Like Plug: split in at most 3 parts; a dot in the last one fails its base64.
    let mut parts = token.splitn(3, '.');
    let (Some(protected), Some(payload), Some(signature)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid);
    };
    let algorithm = base64url::decode(protected).ok_or(TokenError::Invalid)?;
    let payload_bytes = base64url::decode(payload).ok_or(TokenError::Invalid)?;
    let signature = base64url::decode(signature).ok_or(TokenError::Invalid)?;
    // The MAC covers the text as received, not a re-encoding of the bytes.
    let plain_text = &token[..protected.len() + 1 + payload.len()];
    let ok = match algorithm.as_slice() {
        b"HS256" => check::<Hmac<Sha256>>(key, plain_text, &signature),
        b"HS384" => check::<Hmac<Sha384>>(key, plain_text, &signature),
        b"HS512" => check::<Hmac<Sha512>>(key, plain_text, &signature),
        _ => false,
    };
    if ok {
        Ok(payload_bytes)
    } else {
        Err(TokenError::Invalid)
    }
}

fn check<M: Mac + KeyInit>(key: &[u8], plain_text: &str, signature: &[u8]) -> bool {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(plain_text.as_bytes());
            mac.verify_slice(signature).is_ok()
        }
        Err(_) => false,
    }
}
