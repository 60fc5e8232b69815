//! Bearer secrets for HTTP APIs: `Authorization: Bearer <secret>`, compared
//! in constant time so the answer's timing tells nothing about the secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A secret an HTTP request must present as `Authorization: Bearer <secret>`.
///
/// The comparison is HMAC-SHA256 of the presented value checked with
/// `verify_slice` (constant time), under a key drawn per process: neither the
/// secret's content nor its length leaks through timing.
#[derive(Clone)]
pub struct BearerSecret {
    keyed: HmacSha256,
    expected: Vec<u8>,
}

impl std::fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerSecret(..)")
    }
}

/// Why a bearer secret could not be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BearerSecretError {
    /// An empty secret would let anyone in.
    #[error("the secret is empty")]
    Empty,
    /// The operating system gave no random bytes for the comparison key.
    #[error("no entropy for the comparison key")]
    Entropy,
}

impl BearerSecret {
    /// A non-empty secret.
    pub fn new(secret: &str) -> Result<Self, BearerSecretError> {
        if secret.is_empty() {
            return Err(BearerSecretError::Empty);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| BearerSecretError::Entropy)?;
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(&key)
            .map_err(|_| BearerSecretError::Entropy)?;
        let mut mac = keyed.clone();
        mac.update(secret.as_bytes());
        let expected = mac.finalize().into_bytes().to_vec();
        Ok(Self { keyed, expected })
    }

    /// Whether `headers` carry `Authorization: Bearer <this secret>`.
    pub fn authorizes(&self, headers: &hyper::HeaderMap) -> bool {
        let Some(presented) = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, rest) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
        else {
            return false;
        };
        let mut mac = self.keyed.clone();
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.expected).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> hyper::HeaderMap {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::AUTHORIZATION,
            authorization.parse().expect("header value"),
        );
        headers
    }

    #[test]
    fn only_the_exact_secret_as_a_bearer_is_accepted() {
        let secret = BearerSecret::new("s3cret").expect("secret");
        assert!(secret.authorizes(&headers("Bearer s3cret")));
        assert!(secret.authorizes(&headers("bearer s3cret")));
        assert!(!secret.authorizes(&headers("Bearer s3cre")));
        assert!(!secret.authorizes(&headers("Bearer s3cret2")));
        assert!(!secret.authorizes(&headers("Bearer ")));
        assert!(!secret.authorizes(&headers("Basic s3cret")));
        assert!(!secret.authorizes(&headers("s3cret")));
        assert!(!secret.authorizes(&hyper::HeaderMap::new()));
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert_eq!(
            BearerSecret::new("").map(|_| ()),
            Err(BearerSecretError::Empty)
        );
    }
}
