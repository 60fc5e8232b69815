//! Error types returned by the codec.
//!
//! Every way an inbound frame can be malformed has its own [`DecodeError`]
//! variant so that callers (and logs) can tell exactly what was wrong. None of
//! the codec functions panic; they report one of these errors instead.

use thiserror::Error;

/// The `vsn` connect parameter named a serializer version this crate does
/// not speak (Phoenix answers such a handshake with HTTP 403).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unsupported serializer version {vsn:?} (expected 1.0.x or 2.0.x)")]
pub struct VsnError {
    /// The refused `vsn` value, exactly as the client sent it.
    pub vsn: String,
}

/// Why an inbound frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The text frame is not valid JSON (the message comes from the parser).
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    /// A V2 text frame must be a JSON array.
    #[error("V2 frame is not a JSON array")]
    NotAnArray,
    /// A V1 text frame must be a JSON object.
    #[error("V1 frame is not a JSON object")]
    NotAnObject,
    /// A V2 text frame array has fewer than five elements.
    #[error("V2 frame array has {len} elements, expected at least 5")]
    WrongArity {
        /// Number of elements actually present.
        len: usize,
    },
    /// A field is present but has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    InvalidField {
        /// Name of the offending field (`join_ref`, `ref`, `topic`, `event`, ...).
        field: &'static str,
        /// Human readable description of what was expected.
        expected: &'static str,
    },
    /// A required key is absent from a V1 object frame.
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    /// A binary frame arrived on a connection using the V1 serializer.
    #[error("the V1 serializer does not support binary frames")]
    BinaryNotSupported,
    /// The first byte of a binary frame is not a kind this decoder accepts.
    #[error("unknown binary frame kind {0}")]
    UnknownBinaryKind(u8),
    /// A binary frame ends before the part named by `field` is complete.
    #[error("binary frame truncated in `{field}`: needed {needed} bytes, {available} available")]
    Truncated {
        /// The header or metadata field being read when the frame ran out.
        field: &'static str,
        /// Bytes that part needs.
        needed: usize,
        /// Bytes that were left in the frame.
        available: usize,
    },
    /// A metadata field of a binary frame is not valid UTF-8.
    #[error("binary frame field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// Name of the offending field.
        field: &'static str,
    },
}

/// Why an outbound message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A binary payload cannot be sent with the V1 serializer.
    #[error("the V1 serializer does not support binary payloads")]
    BinaryNotSupported,
    /// A metadata field is too long for the one-byte length of a binary frame.
    #[error("field `{field}` is {len} bytes long; binary frames allow at most 255")]
    FieldTooLong {
        /// Name of the offending field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The JSON writer failed. Writing a `serde_json::Value` into memory does
    /// not fail in practice; this variant exists so the codec never panics.
    #[error("JSON serialization failed: {0}")]
    Json(String),
}

impl From<serde_json::Error> for DecodeError {
    fn from(err: serde_json::Error) -> Self {
        DecodeError::InvalidJson(err.to_string())
    }
}

impl From<serde_json::Error> for EncodeError {
    fn from(err: serde_json::Error) -> Self {
        EncodeError::Json(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsn_error_names_the_refused_version() {
        let err = VsnError {
            vsn: "3.0.0".into(),
        };
        assert!(err.to_string().contains("\"3.0.0\""));
    }

    #[test]
    fn decode_error_messages_are_descriptive() {
        let cases = [
            (
                DecodeError::InvalidJson("eof".into()),
                "not valid JSON: eof",
            ),
            (DecodeError::NotAnArray, "not a JSON array"),
            (DecodeError::NotAnObject, "not a JSON object"),
            (DecodeError::WrongArity { len: 3 }, "has 3 elements"),
            (
                DecodeError::InvalidField {
                    field: "topic",
                    expected: "a string",
                },
                "`topic` must be a string",
            ),
            (DecodeError::MissingField("ref"), "`ref` is missing"),
            (DecodeError::BinaryNotSupported, "V1 serializer"),
            (DecodeError::UnknownBinaryKind(7), "kind 7"),
            (
                DecodeError::Truncated {
                    field: "topic",
                    needed: 4,
                    available: 1,
                },
                "truncated in `topic`: needed 4 bytes, 1 available",
            ),
            (
                DecodeError::InvalidUtf8 { field: "event" },
                "`event` is not valid UTF-8",
            ),
        ];
        for (err, needle) in cases {
            let text = err.to_string();
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
    }

    #[test]
    fn encode_error_messages_are_descriptive() {
        assert!(EncodeError::BinaryNotSupported.to_string().contains("V1"));
        let long = EncodeError::FieldTooLong {
            field: "topic",
            len: 300,
        };
        assert!(long.to_string().contains("`topic` is 300 bytes"));
        assert!(EncodeError::Json("boom".into())
            .to_string()
            .contains("boom"));
    }

    #[test]
    fn serde_json_errors_convert() {
        let Err(err) = serde_json::from_str::<serde_json::Value>("{") else {
            panic!("expected a parse error");
        };
        let text = err.to_string();
        assert_eq!(
            DecodeError::from(err),
            DecodeError::InvalidJson(text.clone())
        );
        let Err(err) = serde_json::from_str::<serde_json::Value>("{") else {
            panic!("expected a parse error");
        };
        assert_eq!(EncodeError::from(err), EncodeError::Json(text));
    }
}
