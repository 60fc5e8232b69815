//! Longpoll session tokens: a random session id and an issue time, signed
//! with HMAC-SHA256 under a secret drawn once per process.
//!
//! Phoenix signs `{:v1, endpoint_id, server_pid, priv_topic}` with
//! `Phoenix.Token`; the client treats the token as opaque, so ours only has
//! to be unforgeable, bound to one session and URL-safe:
//! `base64url(version ‖ id ‖ issued_ms) "." base64url(hmac)`, no padding.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `Phoenix.Token`'s `max_age` for longpoll tokens (two weeks).
pub(super) const MAX_AGE: Duration = Duration::from_secs(1_209_600);

/// Format version, the first payload byte.
const VERSION: u8 = 1;
/// Payload length: version, 16-byte id, 8-byte issue time.
const PAYLOAD_LEN: usize = 1 + 16 + 8;

/// HMAC-SHA256.
type HmacSha256 = Hmac<Sha256>;

/// A longpoll session's identity: 128 random bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct SessionId([u8; 16]);

impl SessionId {
    /// The id as 32 lowercase hex digits (for pubsub topics).
    pub(super) fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A fresh random id.
    pub(super) fn random() -> Result<Self, TokenError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|_| TokenError::Entropy)?;
        Ok(Self(id))
    }
}

/// Why a token was not accepted (or could not be made).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum TokenError {
    /// Not two base64url parts, or the payload has the wrong shape.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match: forged or tampered with.
    #[error("bad token signature")]
    BadSignature,
    /// Older than [`MAX_AGE`].
    #[error("token expired")]
    Expired,
    /// The operating system gave no random bytes.
    #[error("no entropy for the longpoll secret or session id")]
    Entropy,
}

/// The process's signing key: shared by the nodes of a cluster when set
/// with [`share_secret`], else random.
static SECRET: OnceLock<[u8; 32]> = OnceLock::new();

/// The key every node derives from the cluster's shared secret.
fn derive(shared: &str) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hash = Sha256::new();
    hash.update(b"fawkes longpoll token key\0");
    hash.update(shared.as_bytes());
    hash.finalize().into()
}

/// Sign and verify this process's tokens with a key derived from `shared`,
/// so that every node of a cluster accepts the others' tokens. Must run
/// before the first token; `false` if another key is already in use.
pub(crate) fn share_secret(shared: &str) -> bool {
    let key = derive(shared);
    *SECRET.get_or_init(|| key) == key
}

/// The per-process signing secret.
fn secret() -> Result<&'static [u8; 32], TokenError> {
    if let Some(secret) = SECRET.get() {
        return Ok(secret);
    }
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|_| TokenError::Entropy)?;
    Ok(SECRET.get_or_init(|| fresh))
}

/// A MAC keyed with the process secret, fed with `payload`.
fn mac(payload: &[u8]) -> Result<HmacSha256, TokenError> {
    let mut mac = HmacSha256::new_from_slice(secret()?).map_err(|_| TokenError::Entropy)?;
    mac.update(payload);
    Ok(mac)
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sign a token for session `id`, issued now.
pub(super) fn sign(id: SessionId) -> Result<String, TokenError> {
    sign_at(id, now_ms())
}

/// Sign a token for session `id`, issued at `issued_ms`.
fn sign_at(id: SessionId, issued_ms: u64) -> Result<String, TokenError> {
    let mut payload = [0u8; PAYLOAD_LEN];
    payload[0] = VERSION;
    payload[1..17].copy_from_slice(&id.0);
    payload[17..].copy_from_slice(&issued_ms.to_be_bytes());
    let tag = mac(&payload)?.finalize().into_bytes();
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// Check a token's signature and age; the session id it names.
pub(super) fn verify(token: &str) -> Result<SessionId, TokenError> {
    let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    mac(&payload)?
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    if payload.len() != PAYLOAD_LEN || payload[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&payload[1..17]);
    let mut issued = [0u8; 8];
    issued.copy_from_slice(&payload[17..]);
    let age_ms = now_ms().saturating_sub(u64::from_be_bytes(issued));
    if u128::from(age_ms) > MAX_AGE.as_millis() {
        return Err(TokenError::Expired);
    }
    Ok(SessionId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_derive_the_same_key_from_the_same_secret() {
        assert_eq!(derive("s3cret"), derive("s3cret"));
        assert_ne!(derive("s3cret"), derive("s3cret!"));
        assert_ne!(derive(""), [0u8; 32]);
    }

    #[test]
    fn round_trip() {
        let id = SessionId::random().expect("entropy");
        let token = sign(id).expect("sign");
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
        assert_eq!(verify(&token), Ok(id));
    }

    #[test]
    fn tampering_is_refused() {
        let id = SessionId::random().expect("entropy");
        let token = sign(id).expect("sign");
        let (payload, tag) = token.split_once('.').expect("two parts");
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).expect("b64");
        bytes[5] ^= 1;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(verify(&forged), Err(TokenError::BadSignature));
        let mut tag_bytes = URL_SAFE_NO_PAD.decode(tag).expect("b64");
        tag_bytes[0] ^= 1;
        let forged = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag_bytes));
        assert_eq!(verify(&forged), Err(TokenError::BadSignature));
        assert_eq!(verify("nonsense"), Err(TokenError::Malformed));
        assert_eq!(verify("a.b.c"), Err(TokenError::Malformed));
        assert_eq!(verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn old_tokens_expire() {
        let id = SessionId::random().expect("entropy");
        let old = now_ms() - u64::try_from(MAX_AGE.as_millis()).expect("fits") - 1000;
        let token = sign_at(id, old).expect("sign");
        assert_eq!(verify(&token), Err(TokenError::Expired));
    }
}
