//! `phx_ref` values: unique, time-ordered, 16 URL-safe characters, shaped
//! like the ones Phoenix generates (12 bytes: time in ns, a node hash and a
//! counter).

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;

/// Generates `phx_ref` values for one node.
#[derive(Debug)]
pub(crate) struct RefGenerator {
    node: u16,
    counter: AtomicU16,
}

impl RefGenerator {
    pub(crate) fn new(node: u16) -> Self {
        Self {
            node,
            counter: AtomicU16::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..10].copy_from_slice(&self.node.to_be_bytes());
        bytes[10..].copy_from_slice(&self.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::RefGenerator;

    #[test]
    fn refs_are_16_url_safe_chars_and_unique() {
        let generator = RefGenerator::new(7);
        let a = generator.next();
        let b = generator.next();
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }
}
