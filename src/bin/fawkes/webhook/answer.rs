//! What each webhook sends and what the backend must answer. Answers are
//! parsed strictly: a wrong `status`, a missing field or a value of the
//! wrong type is a malformed answer, never a guess.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Parse an answer body: a JSON object of the shape `T` describes.
/// (Checked as an object first: serde would read `["ok"]` as a tagged enum.)
pub(crate) fn parse_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let value: Value = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    if !value.is_object() {
        return Err("the answer is not a JSON object".into());
    }
    serde_json::from_value(value).map_err(|error| error.to_string())
}

/// Answer to a `connect` webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum ConnectAnswer {
    /// Accept the connection.
    Ok {
        /// Merged into the socket's assigns.
        #[serde(default)]
        assigns: Map<String, Value>,
        /// The socket id (e.g. `users_socket:42`), if any.
        #[serde(default)]
        id: Option<String>,
    },
    /// Refuse it (HTTP 403).
    Error {},
}

/// Answer to a `join` webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum JoinAnswer {
    /// Join accepted; `response` is the client's join reply.
    Ok {
        /// The reply's response object.
        #[serde(default)]
        response: Map<String, Value>,
    },
    /// Join refused; `response` (e.g. `{"reason": "..."}`) is the client's
    /// error reply.
    Error {
        /// The reply's response object.
        #[serde(default)]
        response: Map<String, Value>,
    },
}

/// Answer to a `handle_in` webhook: the reply to the client's push and an
/// optional broadcast on the topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventAnswer {
    /// `"ok"` or `"error"`: the reply's status.
    pub(crate) status: ReplyStatus,
    /// The reply's response object.
    #[serde(default)]
    pub(crate) response: Map<String, Value>,
    /// Broadcast this on the topic as well.
    #[serde(default)]
    pub(crate) broadcast: Option<BroadcastAsk>,
}

/// The two reply statuses phoenix.js's `receive` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReplyStatus {
    /// `receive("ok", ...)`.
    Ok,
    /// `receive("error", ...)`.
    Error,
}

impl ReplyStatus {
    /// The wire word.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
        }
    }
}

/// A broadcast the backend asks for in its `handle_in` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastAsk {
    /// The event name.
    pub(crate) event: String,
    /// The payload.
    #[serde(default = "empty_object")]
    pub(crate) payload: Value,
    /// Leave out the client that pushed (Phoenix's `broadcast_from`).
    #[serde(default)]
    pub(crate) exclude_sender: bool,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse<T: DeserializeOwned>(value: Value) -> Result<T, String> {
        parse_answer(value.to_string().as_bytes())
    }

    #[test]
    fn well_formed_answers_parse() {
        assert_eq!(
            parse::<ConnectAnswer>(
                json!({"status": "ok", "assigns": {"user_id": 7}, "id": "users_socket:7"})
            )
            .expect("ok"),
            ConnectAnswer::Ok {
                assigns: json!({"user_id": 7})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                id: Some("users_socket:7".into()),
            }
        );
        assert_eq!(
            parse::<ConnectAnswer>(json!({"status": "error"})).expect("error"),
            ConnectAnswer::Error {}
        );
        assert_eq!(
            parse::<JoinAnswer>(json!({"status": "error", "response": {"reason": "no"}}))
                .expect("error"),
            JoinAnswer::Error {
                response: json!({"reason": "no"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            }
        );
        let event = parse::<EventAnswer>(
            json!({"status": "ok", "broadcast": {"event": "shout", "payload": {"a": 1}}}),
        )
        .expect("event");
        assert_eq!(event.status, ReplyStatus::Ok);
        assert_eq!(event.broadcast.map(|b| b.event), Some("shout".into()));
    }

    #[test]
    fn malformed_answers_are_refused() {
        assert!(parse::<ConnectAnswer>(json!({"assigns": {}})).is_err());
        assert!(parse::<ConnectAnswer>(json!({"status": "maybe"})).is_err());
        assert!(parse::<ConnectAnswer>(json!({"status": "ok", "assigns": [1]})).is_err());
        assert!(parse::<ConnectAnswer>(json!({"status": "ok", "id": 5})).is_err());
        assert!(parse::<JoinAnswer>(json!({"status": "ok", "response": "yes"})).is_err());
        assert!(parse::<JoinAnswer>(json!(["ok"])).is_err());
        assert!(parse::<EventAnswer>(json!({"status": "ok", "broadcast": {}})).is_err());
        assert!(parse::<EventAnswer>(json!({"status": "noreply"})).is_err());
        assert!(parse::<EventAnswer>(json!({"status": "ok", "reply": {}})).is_err());
        assert!(parse_answer::<JoinAnswer>(b"not json").is_err());
        assert!(parse_answer::<JoinAnswer>(b"").is_err());
    }
}
