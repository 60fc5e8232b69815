//! The errors of this crate: what can go wrong decoding bytes, encoding a term,
//! and mapping a term to JSON.

use thiserror::Error;

/// Why bytes could not be decoded as an Erlang term.
///
/// Every variant is a property of the input (hostile or corrupt bytes) or of
/// the [`Limits`](crate::Limits) the caller chose; none is a bug in the caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input is empty or does not start with the version byte 131.
    #[error("not Erlang term format: missing version byte 131")]
    BadVersion,
    /// A length or element count asks for more bytes than the message holds.
    #[error("truncated term: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Byte offset where the read was attempted.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A tag byte this decoder does not know or refuses (distribution-only tags).
    #[error("unsupported term tag {tag} at offset {offset}")]
    UnsupportedTag {
        /// The tag byte.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// Terms nested deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("terms nested deeper than {limit}")]
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A compressed term announces (or inflates to) more than the limit.
    #[error("compressed term of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A big integer longer than [`Limits::max_big_bytes`](crate::Limits::max_big_bytes).
    #[error("big integer of {size} bytes exceeds the limit of {limit}")]
    BigIntegerTooLarge {
        /// Its length in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The zlib stream of a compressed term is corrupt or has the wrong size.
    #[error("corrupt compressed term: {0}")]
    Compression(String),
    /// A structurally invalid term (bad atom text, NaN float, duplicate map key...).
    #[error("invalid term at offset {offset}: {reason}")]
    Invalid {
        /// Offset of the term.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why a term could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// Atoms hold at most 255 characters.
    #[error("atom longer than 255 characters")]
    AtomTooLong,
    /// Erlang has no NaN or infinity.
    #[error("float is not finite")]
    NonFiniteFloat,
    /// A list, tuple, map, binary or big integer longer than 2^32 - 1.
    #[error("term too large for the term format")]
    TooLarge,
    /// A bitstring whose bit count is not 1..=8 or that has no bytes.
    #[error("invalid bitstring")]
    InvalidBitBinary,
    /// Terms nested deeper than the encoder's limit.
    #[error("terms nested deeper than {0}")]
    TooDeep(usize),
    /// Compression levels are 0..=9.
    #[error("compression level {0} is not 0..=9")]
    BadCompressionLevel(u32),
    /// The zlib compressor failed (out of memory).
    #[error("compression failed: {0}")]
    Compression(String),
}

/// A term that has no JSON form, so a broadcast or token carrying it cannot be
/// delivered as JSON. Callers count these and log them; they are never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoJsonForm {
    /// A pid, port, reference or fun.
    #[error("a {0} has no JSON form")]
    Opaque(&'static str),
    /// A tuple (only `{:binary, bytes}` is mapped, and only as a whole payload).
    #[error("a tuple of arity {0} has no JSON form")]
    Tuple(usize),
    /// A list whose tail is not `[]`.
    #[error("an improper list has no JSON form")]
    ImproperList,
    /// A bitstring that is not a whole number of bytes.
    #[error("a bitstring has no JSON form")]
    BitBinary,
    /// A binary that is not UTF-8 (Jason refuses these too).
    #[error("a binary that is not UTF-8 has no JSON form")]
    InvalidUtf8,
    /// A map key that is not a binary, atom or integer.
    #[error("a map key that is not a string, atom or integer has no JSON form")]
    MapKey,
    /// Two keys of one map that become the same JSON key (e.g. `:a` and `"a"`).
    #[error("map keys collide as JSON key {0:?}")]
    DuplicateKey(String),
    /// An integer outside -2^63..2^64 cannot be held by a `serde_json::Value`
    /// exactly; [`to_json_text`](crate::json::to_json_text) writes it exactly.
    #[error("integer {0} is beyond 64 bits; only its JSON text is exact")]
    IntegerBeyond64Bits(String),
    /// Nested deeper than the mapping's limit.
    #[error("terms nested deeper than {0}")]
    TooDeep(usize),
}
