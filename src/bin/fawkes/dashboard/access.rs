//! Who may see the dashboard: HTTP basic auth (user `admin`, the configured
//! secret) for the page, and short-lived socket tokens the page request
//! mints for the dashboard socket's connect. Both comparisons are HMACs
//! under a key drawn per process, checked in constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The only user name the dashboard accepts.
pub(crate) const USER: &str = "admin";

/// How long a socket token minted by a page request opens the socket.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Why the dashboard's access check cannot be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// An empty secret would let anyone in.
    #[error("[dashboard] secret is empty")]
    Empty,
    /// The operating system gave no random bytes for the keys.
    #[error("no entropy for the dashboard's keys")]
    Entropy,
}

/// The dashboard's credentials and token key.
#[derive(Clone)]
pub(crate) struct Access {
    /// Keyed HMAC for comparing `admin:<secret>` with what a request presents.
    basic_key: HmacSha256,
    basic_expected: Vec<u8>,
    /// Keyed HMAC signing socket tokens.
    token_key: HmacSha256,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Access(..)")
    }
}

fn random_key() -> Result<HmacSha256, AccessError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| AccessError::Entropy)?;
    <HmacSha256 as KeyInit>::new_from_slice(&key).map_err(|_| AccessError::Entropy)
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Access {
    /// Access for `admin` with `secret` (non-empty).
    pub(crate) fn new(secret: &str) -> Result<Self, AccessError> {
        if secret.is_empty() {
            return Err(AccessError::Empty);
        }
        let basic_key = random_key()?;
        let mut mac = basic_key.clone();
        mac.update(format!("{USER}:{secret}").as_bytes());
        Ok(Self {
            basic_expected: mac.finalize().into_bytes().to_vec(),
            basic_key,
            token_key: random_key()?,
        })
    }

    /// Whether `headers` carry `Authorization: Basic` with `admin` and the
    /// secret.
    pub(crate) fn authorizes(&self, headers: &hyper::HeaderMap) -> bool {
        let Some(encoded) = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, rest) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
            })
        else {
            return false;
        };
        let Ok(presented) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let mut mac = self.basic_key.clone();
        mac.update(&presented);
        mac.verify_slice(&self.basic_expected).is_ok()
    }

    /// A socket token valid until `now` + [`TOKEN_LIFETIME`]:
    /// `<expiry unix seconds>.<hex HMAC of it>`.
    pub(crate) fn mint(&self, now: SystemTime) -> String {
        let expires = unix_seconds(now + TOKEN_LIFETIME);
        format!("{expires}.{}", hex(&self.sign(expires)))
    }

    /// Whether `token` was minted by this process and is not expired at `now`.
    pub(crate) fn token_valid(&self, token: &str, now: SystemTime) -> bool {
        let Some((expires, signature)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires), Some(signature)) = (expires.parse::<u64>(), unhex(signature)) else {
            return false;
        };
        let mut mac = self.token_key.clone();
        mac.update(&expires.to_be_bytes());
        mac.verify_slice(&signature).is_ok() && unix_seconds(now) < expires
    }

    fn sign(&self, expires: u64) -> Vec<u8> {
        let mut mac = self.token_key.clone();
        mac.update(&expires.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> hyper::HeaderMap {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::AUTHORIZATION,
            format!("Basic {encoded}").parse().expect("header"),
        );
        headers
    }

    #[test]
    fn only_admin_with_the_secret_is_let_in() {
        let access = Access::new("s3cret").expect("access");
        assert!(access.authorizes(&basic("admin:s3cret")));
        assert!(!access.authorizes(&basic("admin:s3cre")));
        assert!(!access.authorizes(&basic("admin:s3cret ")));
        assert!(!access.authorizes(&basic("root:s3cret")));
        assert!(!access.authorizes(&basic("s3cret")));
        let mut bearer = hyper::HeaderMap::new();
        bearer.insert(
            hyper::header::AUTHORIZATION,
            "Bearer s3cret".parse().expect("header"),
        );
        assert!(!access.authorizes(&bearer));
        let mut garbage = hyper::HeaderMap::new();
        garbage.insert(
            hyper::header::AUTHORIZATION,
            "Basic %%%".parse().expect("header"),
        );
        assert!(!access.authorizes(&garbage));
        assert!(!access.authorizes(&hyper::HeaderMap::new()));
        assert_eq!(Access::new("").map(|_| ()), Err(AccessError::Empty));
    }

    #[test]
    fn tokens_expire_and_belong_to_their_process() {
        let access = Access::new("s3cret").expect("access");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = access.mint(now);
        assert!(access.token_valid(&token, now));
        assert!(access.token_valid(&token, now + TOKEN_LIFETIME - Duration::from_secs(1)));
        assert!(!access.token_valid(&token, now + TOKEN_LIFETIME));
        // another process (another key) did not mint it
        let other = Access::new("s3cret").expect("access");
        assert!(!other.token_valid(&token, now));
        // a later expiry with the old signature is refused
        let (_, signature) = token.split_once('.').expect("dot");
        let forged = format!("{}.{signature}", 1_000_000 + 10 * 600);
        assert!(!access.token_valid(&forged, now));
        for bad in ["", ".", "1.", "x.00", "1.zz", "1.abc", "ö.ö"] {
            assert!(!access.token_valid(bad, now), "{bad}");
        }
    }
}
