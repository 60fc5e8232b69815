//! Phoenix.Token, byte for byte as Plug.Crypto (plug_crypto 2.x) makes and
//! checks it: signed tokens (`SFMyNTY.` HS256; `SFMzODQ.`/`SFM1MTI.` HS384/HS512
//! accepted on verify) and encrypted ones (`XCP.`, XChaCha20-Poly1305).
//!
//! A [`TokenKey`] holds the key derived from an app's `secret_key_base` and a
//! salt (PBKDF2-HMAC-SHA256, 1000 iterations, 32 bytes): derive it once and
//! reuse it, as Plug caches it. The signed or encrypted payload is the Erlang
//! term `{data, signed_at_ms, max_age_s}` ([`fawkes_etf`]); verifying gives the
//! data back as a [`TokenData`] (a term, with its JSON form), or a
//! [`TokenError`]: `Invalid`, `Expired` or `Missing`, the three errors
//! `Phoenix.Token.verify/4` returns.
//!
//! ```
//! use fawkes::token::{SignOptions, TokenKey, VerifyOptions};
//! use serde_json::json;
//!
//! let key = TokenKey::derive(b"a secret_key_base of at least 64 bytes ........................", b"user socket");
//! let token = key.sign_json(&json!({"user_id": 42}), &SignOptions::default());
//! let data = key.verify(Some(&token), &VerifyOptions::default()).unwrap();
//! assert_eq!(data.to_json().unwrap(), json!({"user_id": 42}));
//! ```

mod base64url;
mod encrypted;
mod payload;
mod signed;

use std::fmt;

use fawkes_etf::{json, AtomEncoding, NoJsonForm, Term};
use serde_json::Value;
use thiserror::Error;

pub use payload::MaxAge;

/// Why a token was refused; the `Display` form is Phoenix's reason atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Bad MAC, bad format, wrong key or salt, undecryptable (`{:error, :invalid}`).
    #[error("invalid")]
    Invalid,
    /// Older than its max age (`{:error, :expired}`).
    #[error("expired")]
    Expired,
    /// No token at all (`{:error, :missing}`).
    #[error("missing")]
    Missing,
}

/// Options of [`TokenKey::verify`] and [`TokenKey::decrypt`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VerifyOptions {
    /// Overrides the max age stored in the token (Phoenix's `:max_age` option).
    pub max_age: Option<MaxAge>,
    /// The current time in ms since the Unix epoch (default: the system clock).
    pub now_ms: Option<i64>,
}

/// Options of [`TokenKey::sign`] and [`TokenKey::encrypt`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignOptions {
    /// Max age stored in the token (default 86400 seconds, as Phoenix).
    pub max_age: MaxAge,
    /// Signing time in ms since the Unix epoch (default: the system clock).
    pub signed_at_ms: Option<i64>,
    /// Atom tags to write: OTP 25 style (default) or OTP 26+.
    pub atoms: AtomEncoding,
}

impl Default for SignOptions {
    fn default() -> SignOptions {
        SignOptions {
            max_age: MaxAge::Seconds(86400.0),
            signed_at_ms: None,
            atoms: AtomEncoding::Latin1,
        }
    }
}

/// The data of a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenData(Term);

impl TokenData {
    /// The data as the Erlang term it was signed as.
    pub fn term(&self) -> &Term {
        &self.0
    }

    /// The data as JSON (atom keys become strings; see [`fawkes_etf::json`]).
    /// Integers beyond 64 bits are refused here; [`TokenData::to_json_text`] has them exactly.
    pub fn to_json(&self) -> Result<Value, NoJsonForm> {
        json::to_json_value(&self.0)
    }

    /// The data as JSON text, exact for integers of any size.
    pub fn to_json_text(&self) -> Result<String, NoJsonForm> {
        json::to_json_text(&self.0)
    }
}

/// The key derived from a `secret_key_base` and a salt, for one kind of token.
#[derive(Clone)]
pub struct TokenKey {
    key: [u8; 32],
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Plug.Crypto's key derivation defaults (`Plug.Crypto.KeyGenerator`).
const PBKDF2_ITERATIONS: u32 = 1000;

impl TokenKey {
    /// Derive the key as `Phoenix.Token` does: PBKDF2-HMAC-SHA256 of the
    /// `secret_key_base` with the salt, 1000 iterations, 32 bytes.
    /// This costs about a millisecond: do it once per secret and salt.
    pub fn derive(secret_key_base: &[u8], salt: &[u8]) -> TokenKey {
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(secret_key_base, salt, PBKDF2_ITERATIONS, &mut key);
        TokenKey { key }
    }

    /// The derived key bytes (to compare with Plug's `KeyGenerator.generate/3`).
    pub fn derived_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// Verify a signed token (`Phoenix.Token.verify/4`). `None` is a missing token.
    pub fn verify(
        &self,
        token: Option<&str>,
        options: &VerifyOptions,
    ) -> Result<TokenData, TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let payload = signed::verify(&self.key, token)?;
        payload::open(&payload, options).map(TokenData)
    }

    /// Decrypt an encrypted token (`Phoenix.Token.decrypt/4`). `None` is a missing token.
    pub fn decrypt(
        &self,
        token: Option<&str>,
        options: &VerifyOptions,
    ) -> Result<TokenData, TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let payload = encrypted::decrypt(&self.key, token)?;
        payload::open(&payload, options).map(TokenData)
    }

    /// Sign a term (`Phoenix.Token.sign/4`), HS256.
    pub fn sign(
        &self,
        data: &Term,
        options: &SignOptions,
    ) -> Result<String, fawkes_etf::EncodeError> {
        let payload = payload::seal(data, options)?;
        Ok(signed::sign(&self.key, &payload))
    }

    /// Sign JSON data, which Elixir sees as Jason-decoded JSON (maps with string keys).
    pub fn sign_json(&self, data: &Value, options: &SignOptions) -> String {
        let payload = payload::seal_json(data, options);
        signed::sign(&self.key, &payload)
    }

    /// Encrypt a term (`Phoenix.Token.encrypt/4`) with a random 24-byte IV.
    pub fn encrypt(&self, data: &Term, options: &SignOptions) -> Result<String, EncryptError> {
        let mut iv = [0u8; 24];
        getrandom::fill(&mut iv).map_err(|_| EncryptError::Entropy)?;
        self.encrypt_with_iv(data, options, iv)
    }

    /// Encrypt with a given IV. Only for reproducible tests: an IV must never repeat.
    pub fn encrypt_with_iv(
        &self,
        data: &Term,
        options: &SignOptions,
        iv: [u8; 24],
    ) -> Result<String, EncryptError> {
        let payload = payload::seal(data, options)?;
        encrypted::encrypt(&self.key, &payload, iv)
    }
}

/// Why a token could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncryptError {
    /// The data has no term encoding (e.g. an atom over 255 characters).
    #[error("cannot encode the token data: {0}")]
    Encode(#[from] fawkes_etf::EncodeError),
    /// The system's random source failed.
    #[error("no randomness for the IV")]
    Entropy,
    /// The cipher refused the message (too long).
    #[error("encryption failed")]
    Cipher,
}

/// Milliseconds since the Unix epoch, from the system clock.
fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
