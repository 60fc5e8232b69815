//! The codec's data model: payloads, the three kinds of outbound message, and
//! encoded frames.
//!
//! These types are independent of any serializer: the same [`Message`] can be
//! written as a V1 object, a V2 array or a V2 binary frame.

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Why a payload could not be read as the type a channel asked for
/// ([`Payload::deserialize`]).
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The payload is binary where JSON was expected.
    #[error("invalid payload: expected JSON, got binary")]
    Binary,
    /// The JSON does not fit the type (a missing field, a wrong type...).
    #[error("invalid payload: {0}")]
    Invalid(serde_json::Error),
}

/// The body of a message: either arbitrary JSON or raw bytes.
///
/// Raw bytes only travel in V2 binary frames; the V1 serializer refuses them.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A JSON value (normally an object).
    Json(Value),
    /// Opaque bytes carried by a binary frame.
    Binary(Bytes),
    /// JSON that is already encoded, written into frames as is. The text
    /// must be valid JSON (the codec does not check it); this lets a server
    /// encode a large payload once and share it, e.g. a presence list.
    RawJson(Arc<str>),
}

/// A JSON payload as the text encoders see it: a value to serialize, or
/// text that is already JSON.
#[derive(Clone, Copy, Debug)]
pub(crate) enum JsonRef<'a> {
    /// Serialize this value.
    Value(&'a Value),
    /// Write this text verbatim.
    Raw(&'a str),
}

impl Payload {
    /// The empty JSON object `{}`, which Phoenix uses when there is nothing to say.
    pub fn empty() -> Payload {
        Payload::Json(Value::Object(serde_json::Map::new()))
    }

    /// True for [`Payload::Binary`].
    pub fn is_binary(&self) -> bool {
        matches!(self, Payload::Binary(_))
    }

    /// The JSON value, if this is a (not pre-encoded) JSON payload.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Payload::Json(value) => Some(value),
            Payload::Binary(_) | Payload::RawJson(_) => None,
        }
    }

    /// The value under `key`, if this is a JSON object that has it
    /// (`payload.get("body")`, for one field without a struct to
    /// [`deserialize`](Payload::deserialize) into).
    ///
    /// ```
    /// use fawkes_protocol::Payload;
    /// let payload = Payload::Json(serde_json::json!({"body": "hi"}));
    /// assert_eq!(payload.get("body").and_then(|v| v.as_str()), Some("hi"));
    /// assert_eq!(payload.get("missing"), None);
    /// assert_eq!(Payload::Json(serde_json::json!([1])).get("body"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_json()?.as_object()?.get(key)
    }

    /// The raw bytes, if this is a binary payload.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Payload::Binary(bytes) => Some(bytes),
            Payload::Json(_) | Payload::RawJson(_) => None,
        }
    }

    /// Read the payload as a `T` (serde), e.g. a
    /// `#[derive(Deserialize)] struct NewMsg { body: String }`.
    ///
    /// A binary payload, or JSON that does not fit `T`, is a
    /// [`PayloadError`] whose message says why (fawkes answers a channel
    /// callback that fails with it by an error reply carrying that reason).
    ///
    /// ```
    /// use fawkes_protocol::Payload;
    /// #[derive(Debug, serde::Deserialize)]
    /// struct NewMsg { body: String }
    ///
    /// let payload = Payload::Json(serde_json::json!({"body": "hi"}));
    /// assert_eq!(payload.deserialize::<NewMsg>().unwrap().body, "hi");
    /// let error = Payload::empty().deserialize::<NewMsg>().unwrap_err();
    /// assert_eq!(error.to_string(), "invalid payload: missing field `body`");
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        match self {
            Payload::Json(value) => T::deserialize(value).map_err(PayloadError::Invalid),
            Payload::RawJson(text) => serde_json::from_str(text).map_err(PayloadError::Invalid),
            Payload::Binary(_) => Err(PayloadError::Binary),
        }
    }

    /// A JSON payload holding `value` serialized with serde (a struct, a
    /// map, `serde_json::json!(...)`...).
    ///
    /// # Panics
    ///
    /// If `value` has no JSON form (a map whose keys are not strings, or a
    /// `Serialize` impl that fails): that is a bug in the server's own
    /// value, not bad input, and in a channel callback the panic ends only
    /// that channel (the client gets `phx_error`). [`Payload::try_json`]
    /// returns the error instead.
    ///
    /// ```
    /// use fawkes_protocol::Payload;
    /// #[derive(serde::Serialize)]
    /// struct Msg<'a> { body: &'a str }
    ///
    /// let payload = Payload::json(&Msg { body: "hi" });
    /// assert_eq!(payload, Payload::Json(serde_json::json!({"body": "hi"})));
    /// ```
    #[allow(clippy::panic)]
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Payload {
        match Payload::try_json(value) {
            Ok(payload) => payload,
            Err(error) => panic!("value has no JSON form: {error}"),
        }
    }

    /// [`Payload::json`] that returns the serializer's error instead of
    /// panicking.
    pub fn try_json<T: Serialize + ?Sized>(value: &T) -> Result<Payload, serde_json::Error> {
        serde_json::to_value(value).map(Payload::Json)
    }

    /// The payload as JSON for a text encoder; `None` for binary.
    pub(crate) fn json_ref(&self) -> Option<JsonRef<'_>> {
        match self {
            Payload::Json(value) => Some(JsonRef::Value(value)),
            Payload::RawJson(text) => Some(JsonRef::Raw(text)),
            Payload::Binary(_) => None,
        }
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload::Json(value)
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Self {
        Payload::Binary(bytes)
    }
}

/// A generic channel message.
///
/// Used for everything a client sends and, outbound, for pushes
/// (`ref_ == None`) and for `phx_error` / `phx_close` (`ref_ == join_ref`).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The ref of the join that opened the channel, if any.
    pub join_ref: Option<String>,
    /// The ref of this message, echoed in the reply to it.
    pub ref_: Option<String>,
    /// Channel topic, e.g. `"room:lobby"`.
    pub topic: String,
    /// Event name, e.g. `"phx_join"` or an application event.
    pub event: String,
    /// Message body.
    pub payload: Payload,
}

impl Message {
    /// A message with no join ref and no ref (a server push outside a join).
    pub fn new(topic: impl Into<String>, event: impl Into<String>, payload: Payload) -> Message {
        Message {
            join_ref: None,
            ref_: None,
            topic: topic.into(),
            event: event.into(),
            payload,
        }
    }
}

/// A reply (`phx_reply`) to the client message whose ref is `ref_`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Join ref of the channel the reply belongs to (`None` for unjoined topics).
    pub join_ref: Option<String>,
    /// Ref of the message being answered.
    pub ref_: Option<String>,
    /// Channel topic.
    pub topic: String,
    /// Reply status, e.g. `"ok"` or `"error"`.
    pub status: String,
    /// Reply body (`response` in JSON frames, the payload in binary frames).
    pub response: Payload,
}

/// A fastlane broadcast: the same frame for every subscriber, with no refs.
#[derive(Clone, Debug, PartialEq)]
pub struct Broadcast {
    /// Channel topic.
    pub topic: String,
    /// Event name.
    pub event: String,
    /// Message body.
    pub payload: Payload,
}

impl Broadcast {
    /// Build a broadcast from its parts.
    pub fn new(topic: impl Into<String>, event: impl Into<String>, payload: Payload) -> Broadcast {
        Broadcast {
            topic: topic.into(),
            event: event.into(),
            payload,
        }
    }
}

/// One encoded WebSocket frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (JSON).
    Text(String),
    /// A binary frame (V2 binary layout).
    Binary(Bytes),
}

impl Frame {
    /// The frame's bytes, whatever its kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Frame::Text(text) => text.as_bytes(),
            Frame::Binary(bytes) => bytes,
        }
    }

    /// Length of the frame in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True when the frame carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for [`Frame::Text`].
    pub fn is_text(&self) -> bool {
        matches!(self, Frame::Text(_))
    }

    /// The frame's bytes as a cheaply clonable [`Bytes`] (no copy).
    pub fn into_bytes(self) -> Bytes {
        match self {
            Frame::Text(text) => Bytes::from(text),
            Frame::Binary(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_payload_is_an_empty_object() {
        assert_eq!(Payload::empty(), Payload::Json(json!({})));
        assert!(!Payload::empty().is_binary());
    }

    #[test]
    fn payload_accessors() {
        let json = Payload::from(json!({"a": 1}));
        assert_eq!(json.as_json(), Some(&json!({"a": 1})));
        assert_eq!(json.as_binary(), None);
        let bin = Payload::from(Bytes::from_static(b"\x00\x01"));
        assert!(bin.is_binary());
        assert_eq!(bin.as_binary().map(|b| &b[..]), Some(&b"\x00\x01"[..]));
        assert_eq!(bin.as_json(), None);
    }

    #[test]
    fn constructors_leave_refs_empty() {
        let msg = Message::new("t", "e", Payload::empty());
        assert_eq!((msg.join_ref, msg.ref_), (None, None));
        assert_eq!(msg.topic, "t");
        let b = Broadcast::new("t", "e", Payload::empty());
        assert_eq!(b.event, "e");
    }

    #[test]
    fn frame_helpers() {
        let text = Frame::Text("[1]".into());
        assert!(text.is_text());
        assert_eq!(text.len(), 3);
        assert_eq!(text.as_bytes(), b"[1]");
        assert_eq!(text.into_bytes(), Bytes::from_static(b"[1]"));
        let bin = Frame::Binary(Bytes::new());
        assert!(!bin.is_text());
        assert!(bin.is_empty());
        assert_eq!(bin.into_bytes(), Bytes::new());
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct NewMsg {
        body: String,
    }

    #[test]
    fn deserialize_reads_json_and_pre_encoded_json_and_refuses_binary() {
        let json = Payload::Json(serde_json::json!({"body": "hi"}));
        assert_eq!(json.deserialize::<NewMsg>().unwrap().body, "hi");
        let raw = Payload::RawJson(r#"{"body":"raw"}"#.into());
        assert_eq!(raw.deserialize::<NewMsg>().unwrap().body, "raw");
        let binary = Payload::Binary(Bytes::from_static(b"x"));
        assert!(matches!(
            binary.deserialize::<NewMsg>(),
            Err(PayloadError::Binary)
        ));
        let wrong = Payload::Json(serde_json::json!({"body": 3}));
        let error = wrong.deserialize::<NewMsg>().unwrap_err().to_string();
        assert!(
            error.starts_with("invalid payload: invalid type"),
            "{error}"
        );
    }

    #[test]
    fn json_serializes_and_try_json_reports_what_has_no_json_form() {
        assert_eq!(
            Payload::json(&[1, 2]),
            Payload::Json(serde_json::json!([1, 2]))
        );
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        assert!(Payload::try_json(&map).is_err());
    }
}
