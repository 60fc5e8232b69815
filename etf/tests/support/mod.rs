//! Helpers shared by the interop tests: where the recordings are, hex.

#![allow(dead_code)]

use std::path::PathBuf;

/// The folder holding the interop recordings: `$FAWKES_SHARED/interop`, else
/// `../shared/interop` beside the repository.
pub(crate) fn interop_dir() -> PathBuf {
    match std::env::var_os("FAWKES_SHARED") {
        Some(shared) => PathBuf::from(shared).join("interop"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/interop"),
    }
}

/// Load one of the interop JSON files.
pub(crate) fn load(name: &str) -> serde_json::Value {
    let path = interop_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Bytes from lowercase or uppercase hex.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
