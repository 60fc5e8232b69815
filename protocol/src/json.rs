//! Small JSON helpers shared by the V1 and V2 text serializers.
//!
//! Writing: envelopes are written piece by piece straight into one byte
//! buffer (strings and payloads go through `serde_json::to_writer`), so no
//! intermediate `serde_json::Value` tree is ever built for the envelope.
//!
//! Reading: frames are parsed into a `Value` once, and fields are moved out
//! of it with type checks that map to precise [`DecodeError`]s.

use serde_json::Value;

use crate::error::{DecodeError, EncodeError};
use crate::message::JsonRef;

/// Room reserved for the payload when sizing an output buffer; a typical
/// small payload then fits without reallocating.
const PAYLOAD_GUESS: usize = 128;

/// Fixed punctuation and key names around the envelope fields.
const ENVELOPE_OVERHEAD: usize = 64;

/// What goes in the payload slot of an envelope.
#[derive(Clone, Copy)]
pub(crate) enum Body<'a> {
    /// A payload written as is.
    Value(JsonRef<'a>),
    /// A reply body, written as `{"response":..,"status":..}`.
    Reply {
        /// Reply status.
        status: &'a str,
        /// Reply response.
        response: JsonRef<'a>,
    },
}

/// A growable output buffer for one JSON text frame.
pub(crate) struct JsonWriter {
    buf: Vec<u8>,
}

impl JsonWriter {
    /// A writer sized for an envelope whose string fields total `fields` bytes.
    pub(crate) fn for_fields(fields: usize) -> JsonWriter {
        JsonWriter {
            buf: Vec::with_capacity(fields + ENVELOPE_OVERHEAD + PAYLOAD_GUESS),
        }
    }

    /// Append literal JSON punctuation or a pre-quoted key.
    pub(crate) fn raw(&mut self, text: &'static str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// Append a quoted, escaped JSON string.
    pub(crate) fn string(&mut self, text: &str) -> Result<(), EncodeError> {
        serde_json::to_writer(&mut self.buf, text)?;
        Ok(())
    }

    /// Append a JSON string, or `null` for `None`.
    pub(crate) fn opt_string(&mut self, text: Option<&str>) -> Result<(), EncodeError> {
        match text {
            Some(text) => self.string(text),
            None => {
                self.raw("null");
                Ok(())
            }
        }
    }

    /// Append a JSON value in compact form, or pre-encoded JSON as is.
    pub(crate) fn value(&mut self, value: JsonRef<'_>) -> Result<(), EncodeError> {
        match value {
            JsonRef::Value(value) => serde_json::to_writer(&mut self.buf, value)?,
            JsonRef::Raw(text) => self.buf.extend_from_slice(text.as_bytes()),
        }
        Ok(())
    }

    /// Append the reply body `{"response":<response>,"status":<status>}`
    /// (keys in the order Phoenix emits them).
    pub(crate) fn reply_body(
        &mut self,
        status: &str,
        response: JsonRef<'_>,
    ) -> Result<(), EncodeError> {
        self.raw("{\"response\":");
        self.value(response)?;
        self.raw(",\"status\":");
        self.string(status)?;
        self.raw("}");
        Ok(())
    }

    /// Append an envelope body.
    pub(crate) fn body(&mut self, body: Body<'_>) -> Result<(), EncodeError> {
        match body {
            Body::Value(value) => self.value(value),
            Body::Reply { status, response } => self.reply_body(status, response),
        }
    }

    /// The finished frame text.
    pub(crate) fn finish(self) -> Result<String, EncodeError> {
        String::from_utf8(self.buf).map_err(|err| EncodeError::Json(err.to_string()))
    }
}

/// Total length of the given string fields, for buffer sizing.
pub(crate) fn fields_len(fields: &[Option<&str>]) -> usize {
    fields.iter().map(|f| f.map_or(0, str::len)).sum()
}

/// Parse a text frame into a JSON value.
pub(crate) fn parse(text: &str) -> Result<Value, DecodeError> {
    Ok(serde_json::from_str(text)?)
}

/// Take a field that must be a JSON string.
pub(crate) fn take_string(value: Value, field: &'static str) -> Result<String, DecodeError> {
    match value {
        Value::String(text) => Ok(text),
        _ => Err(DecodeError::InvalidField {
            field,
            expected: "a string",
        }),
    }
}

/// Take a field that must be a JSON string or `null`.
pub(crate) fn take_opt_string(
    value: Value,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    match value {
        Value::String(text) => Ok(Some(text)),
        Value::Null => Ok(None),
        _ => Err(DecodeError::InvalidField {
            field,
            expected: "a string or null",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::JsonRef;
    use serde_json::json;

    #[test]
    fn writer_escapes_strings_and_writes_values() {
        let mut w = JsonWriter::for_fields(0);
        w.raw("[");
        w.string("a\"b\\c\n\u{1}é").unwrap();
        w.raw(",");
        w.opt_string(None).unwrap();
        w.raw(",");
        w.opt_string(Some("x")).unwrap();
        w.raw(",");
        w.value(JsonRef::Value(&json!({"k": [1, null]}))).unwrap();
        w.raw(",");
        w.body(Body::Reply {
            status: "ok",
            response: JsonRef::Value(&json!({})),
        })
        .unwrap();
        w.raw(",");
        w.body(Body::Value(JsonRef::Value(&json!(2)))).unwrap();
        w.raw(",");
        w.value(JsonRef::Raw("{\"pre\":true}")).unwrap();
        w.raw("]");
        assert_eq!(
            w.finish().unwrap(),
            r#"["a\"b\\c\n\u0001é",null,"x",{"k":[1,null]},{"response":{},"status":"ok"},2,{"pre":true}]"#
        );
    }

    #[test]
    fn fields_len_sums_present_fields() {
        assert_eq!(fields_len(&[Some("ab"), None, Some("c")]), 3);
    }

    #[test]
    fn field_type_checks() {
        assert_eq!(take_string(json!("t"), "topic"), Ok("t".to_string()));
        assert_eq!(
            take_string(Value::Null, "topic"),
            Err(DecodeError::InvalidField {
                field: "topic",
                expected: "a string"
            })
        );
        assert_eq!(take_opt_string(Value::Null, "ref"), Ok(None));
        assert_eq!(take_opt_string(json!("1"), "ref"), Ok(Some("1".into())));
        assert_eq!(
            take_opt_string(json!(1), "ref"),
            Err(DecodeError::InvalidField {
                field: "ref",
                expected: "a string or null"
            })
        );
    }

    #[test]
    fn parse_reports_invalid_json() {
        assert!(matches!(parse("nope"), Err(DecodeError::InvalidJson(_))));
        assert_eq!(parse("[1]"), Ok(json!([1])));
    }
}
