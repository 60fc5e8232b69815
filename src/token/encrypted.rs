//! Encrypted tokens (Plug.Crypto.MessageEncryptor, plug_crypto 2.x):
//! `"XCP." b64(iv ‖ tag ‖ ciphertext)` with XChaCha20-Poly1305, a 24-byte IV,
//! and the additional data `"A128GCM"` (Plug's default `aad`, kept because
//! `Plug.Crypto.encrypt` passes only three arguments). The legacy
//! `QTEyOEdDTQ.` (AES-GCM key wrap) tokens of plug_crypto 1.x are not
//! accepted: they decrypt to [`TokenError::Invalid`].

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};

use super::{base64url, EncryptError, TokenError};

const PREFIX: &str = "XCP.";
const AAD: &[u8] = b"A128GCM";
const IV_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Encrypt a payload with the given IV.
pub(super) fn encrypt(
    key: &[u8; 32],
    payload: &[u8],
    iv: [u8; IV_LEN],
) -> Result<String, EncryptError> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let mut buffer = payload.to_vec();
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(iv), AAD, buffer.as_mut_slice().into())
        .map_err(|_| EncryptError::Cipher)?;
    let mut blob = Vec::with_capacity(IV_LEN + TAG_LEN + buffer.len());
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(&tag);
    blob.extend_from_slice(&buffer);
    Ok(format!("{PREFIX}{}", base64url::encode(&blob)))
}

/// Authenticate and decrypt a token; any failure is [`TokenError::Invalid`].
pub(super) fn decrypt(key: &[u8; 32], token: &str) -> Result<Vec<u8>, TokenError> {
    let body = token.strip_prefix(PREFIX).ok_or(TokenError::Invalid)?;
    let blob = base64url::decode(body).ok_or(TokenError::Invalid)?;
    let (Some(iv), Some(tag), Some(ciphertext)) = (
        blob.get(..IV_LEN),
        blob.get(IV_LEN..IV_LEN + TAG_LEN),
        blob.get(IV_LEN + TAG_LEN..),
    ) else {
        return Err(TokenError::Invalid);
    };
    let nonce = XNonce::try_from(iv).map_err(|_| TokenError::Invalid)?;
    let tag = Tag::try_from(tag).map_err(|_| TokenError::Invalid)?;
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let mut buffer = ciphertext.to_vec();
    cipher
        .decrypt_inout_detached(&nonce, AAD, buffer.as_mut_slice().into(), &tag)
        .map_err(|_| TokenError::Invalid)?;
    Ok(buffer)
}
