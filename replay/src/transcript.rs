//! The transcript file format (see `shared/conformance/APP.md`), read and
//! written, and its grouping into actions, each with the observations
//! recorded after it.
//!
//! Two optional step markers extend the format for recorded traffic (see
//! `docs/migrating.md`): `"pipelined": true` on an action means the client
//! performed it before the previous action's answers settled (replay performs
//! both before collecting their observations), and `"server_initiated": true`
//! on a `recv` means the server pushed it on its own (replay accepts it but
//! does not demand it).

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// A transcript could not be read or does not follow the format.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a transcript in JSON.
    #[error("invalid transcript JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A step is malformed or out of place.
    #[error("step {step}: {message}")]
    Step {
        /// Index of the offending step.
        step: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// One recorded scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Transcript {
    /// Scenario name.
    pub scenario: String,
    /// What the scenario shows.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The versions of the recording server.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub server: serde_json::Value,
    /// The settle window in milliseconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_ms: Option<u64>,
    /// The steps as recorded.
    pub steps: Vec<RawStep>,
}

/// The settle window used when a transcript names none.
pub const DEFAULT_SETTLE_MS: u64 = 300;

impl Transcript {
    /// Parses a transcript from JSON text.
    pub fn from_json(text: &str) -> Result<Self, TranscriptError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The transcript as pretty JSON, one step per line as in the recordings.
    pub fn to_json(&self) -> Result<String, TranscriptError> {
        let mut head = self.clone();
        head.steps.clear();
        let head = serde_json::to_string_pretty(&head)?;
        let Some(open) = head.rfind("\"steps\": []") else {
            return Ok(serde_json::to_string_pretty(self)?);
        };
        let mut out = String::with_capacity(head.len() + self.steps.len() * 96);
        out.push_str(&head[..open]);
        out.push_str("\"steps\": [");
        for (i, step) in self.steps.iter().enumerate() {
            out.push_str(if i == 0 { "\n  " } else { ",\n  " });
            out.push_str(&serde_json::to_string(step)?);
        }
        out.push_str("\n ]");
        out.push_str(&head[open + "\"steps\": []".len()..]);
        out.push('\n');
        Ok(out)
    }

    /// Reads and parses a transcript file.
    pub fn load(path: &Path) -> Result<Self, TranscriptError> {
        let text = std::fs::read_to_string(path).map_err(|source| TranscriptError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// The transcript's settle window in milliseconds.
    pub fn settle_ms(&self) -> u64 {
        self.settle_ms.unwrap_or(DEFAULT_SETTLE_MS)
    }

    /// Groups the steps into actions, each carrying the observations recorded
    /// after it (and, for `connect`/`http`, the paired `connected` /
    /// `http_response` step).
    pub fn plan(&self) -> Result<Vec<Action>, TranscriptError> {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, raw)| raw.classify(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut actions: Vec<Action> = Vec::new();
        let mut i = 0;
        while i < steps.len() {
            let step = i;
            let kind = match &steps[i] {
                Step::Recv { conn, expected } => {
                    let Some(last) = actions.last_mut() else {
                        return Err(step_err(step, "recv before any action"));
                    };
                    last.expect.push(ExpectedRecv {
                        step,
                        conn: conn.clone(),
                        expected: expected.clone(),
                        server_initiated: self.steps[step].server_initiated,
                    });
                    i += 1;
                    continue;
                }
                Step::Connected { .. } => {
                    return Err(step_err(step, "connected without a preceding connect"))
                }
                Step::HttpResponse { .. } => {
                    return Err(step_err(
                        step,
                        "http_response without a preceding http request",
                    ))
                }
                Step::Connect { conn, path, query } => {
                    let Some(Step::Connected {
                        conn: c2,
                        status: expected_status,
                    }) = steps.get(i + 1)
                    else {
                        return Err(step_err(step, "connect must be followed by connected"));
                    };
                    if c2 != conn {
                        return Err(step_err(
                            i + 1,
                            &format!("connected names conn {c2:?}, connect named {conn:?}"),
                        ));
                    }
                    i += 2;
                    ActionKind::Connect {
                        conn: conn.clone(),
                        path: path.clone(),
                        query: query.clone(),
                        expected_status: *expected_status,
                    }
                }
                Step::Send { conn, frame } => {
                    i += 1;
                    ActionKind::Send {
                        conn: conn.clone(),
                        frame: frame.clone(),
                    }
                }
                Step::Close { conn, code } => {
                    i += 1;
                    ActionKind::Close {
                        conn: conn.clone(),
                        code: *code,
                    }
                }
                Step::Http(request) => {
                    let Some(Step::HttpResponse { status, body }) = steps.get(i + 1) else {
                        return Err(step_err(step, "http must be followed by http_response"));
                    };
                    i += 2;
                    ActionKind::Http {
                        request: request.clone(),
                        expected_status: *status,
                        expected_body: body.clone(),
                    }
                }
                Step::Sleep(ms) => {
                    i += 1;
                    ActionKind::Sleep(*ms)
                }
            };
            actions.push(Action {
                step,
                kind,
                expect: Vec::new(),
                pipelined: self.steps[step].pipelined && !actions.is_empty(),
            });
        }
        Ok(actions)
    }
}

fn step_err(step: usize, message: &str) -> TranscriptError {
    TranscriptError::Step {
        step,
        message: message.to_owned(),
    }
}

/// A step as it appears in the file: an object with an optional `conn` and
/// exactly one of the other keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// The connection the step concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<String>,
    /// Open a websocket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<RawConnect>,
    /// The handshake's HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<RawConnected>,
    /// Send one frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<RawFrame>,
    /// A frame or close the server sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv: Option<RawRecv>,
    /// Client close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<RawClose>,
    /// An HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequestSpec>,
    /// The response to the preceding HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response: Option<RawHttpResponse>,
    /// Wait this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_ms: Option<u64>,
    /// On an action: performed before the previous action's answers settled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pipelined: bool,
    /// On a `recv`: pushed by the server on its own; accepted, not demanded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub server_initiated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `connect` payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RawConnect {
    /// Path of the websocket endpoint, e.g. `/socket/websocket`.
    pub path: String,
    /// Query parameters, in file order.
    #[serde(
        default,
        deserialize_with = "ordered_pairs",
        serialize_with = "pairs_as_object"
    )]
    pub query: Vec<(String, String)>,
}

/// `connected` payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RawConnected {
    /// HTTP status of the handshake (101, or the refusal status).
    pub status: u16,
}

/// `send` payload: exactly one of `text` / `binary_b64`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFrame {
    /// A text frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A binary frame, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_b64: Option<String>,
}

/// `recv` payload: exactly one of `text` / `binary_b64` / `closed`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecv {
    /// A text frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A binary frame, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_b64: Option<String>,
    /// The server closed the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<RawClosed>,
}

/// `closed` payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RawClosed {
    /// The close code; `null` when the TCP connection dropped without a close frame.
    #[serde(default)]
    pub code: Option<u16>,
    /// The close reason (informative only).
    #[serde(default)]
    pub reason: String,
}

/// `close` payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RawClose {
    /// The close code to send (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// An HTTP request as recorded.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HttpRequestSpec {
    /// The method, e.g. `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Request headers, in file order.
    #[serde(
        default,
        deserialize_with = "ordered_pairs",
        serialize_with = "pairs_as_object"
    )]
    pub headers: Vec<(String, String)>,
    /// The request body (empty when absent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
}

/// `http_response` payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RawHttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body text.
    #[serde(default)]
    pub body: String,
}

/// A frame the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// An observation recorded on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A text frame (compared as JSON).
    Text(String),
    /// A binary frame (compared byte for byte).
    Binary(Vec<u8>),
    /// The server closed the connection with this code (`None`: TCP drop).
    Closed {
        /// The close code.
        code: Option<u16>,
        /// The close reason, informative only.
        reason: String,
    },
}

/// A classified step.
#[derive(Debug, Clone)]
pub enum Step {
    /// Open a websocket.
    Connect {
        /// Connection name.
        conn: String,
        /// Endpoint path.
        path: String,
        /// Query parameters in order.
        query: Vec<(String, String)>,
    },
    /// Handshake status.
    Connected {
        /// Connection name.
        conn: String,
        /// HTTP status.
        status: u16,
    },
    /// Send a frame.
    Send {
        /// Connection name.
        conn: String,
        /// The frame.
        frame: Frame,
    },
    /// Client close.
    Close {
        /// Connection name.
        conn: String,
        /// The close code.
        code: u16,
    },
    /// HTTP request.
    Http(HttpRequestSpec),
    /// HTTP response.
    HttpResponse {
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
    /// Wait.
    Sleep(u64),
    /// An observation.
    Recv {
        /// Connection name.
        conn: String,
        /// What was observed.
        expected: Expected,
    },
}

fn decode_b64(step: usize, data: &str) -> Result<Vec<u8>, TranscriptError> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| step_err(step, &format!("invalid base64: {e}")))
}

impl RawStep {
    /// Classifies the raw step; `index` is used in errors.
    pub fn classify(&self, index: usize) -> Result<Step, TranscriptError> {
        let present = [
            self.connect.is_some(),
            self.connected.is_some(),
            self.send.is_some(),
            self.recv.is_some(),
            self.close.is_some(),
            self.http.is_some(),
            self.http_response.is_some(),
            self.sleep_ms.is_some(),
        ]
        .iter()
        .filter(|p| **p)
        .count();
        if present != 1 {
            return Err(step_err(index, "a step must have exactly one kind"));
        }
        let conn = || {
            self.conn
                .clone()
                .ok_or_else(|| step_err(index, "this step needs a conn"))
        };
        if let Some(c) = &self.connect {
            return Ok(Step::Connect {
                conn: conn()?,
                path: c.path.clone(),
                query: c.query.clone(),
            });
        }
        if let Some(c) = &self.connected {
            return Ok(Step::Connected {
                conn: conn()?,
                status: c.status,
            });
        }
        if let Some(f) = &self.send {
            let frame = match (&f.text, &f.binary_b64) {
                (Some(t), None) => Frame::Text(t.clone()),
                (None, Some(b)) => Frame::Binary(decode_b64(index, b)?),
                _ => return Err(step_err(index, "send needs exactly one of text/binary_b64")),
            };
            return Ok(Step::Send {
                conn: conn()?,
                frame,
            });
        }
        if let Some(r) = &self.recv {
            let expected = match (&r.text, &r.binary_b64, &r.closed) {
                (Some(t), None, None) => Expected::Text(t.clone()),
                (None, Some(b), None) => Expected::Binary(decode_b64(index, b)?),
                (None, None, Some(c)) => Expected::Closed {
                    code: c.code,
                    reason: c.reason.clone(),
                },
                _ => {
                    return Err(step_err(
                        index,
                        "recv needs exactly one of text/binary_b64/closed",
                    ))
                }
            };
            return Ok(Step::Recv {
                conn: conn()?,
                expected,
            });
        }
        if let Some(c) = &self.close {
            return Ok(Step::Close {
                conn: conn()?,
                code: c.code.unwrap_or(1000),
            });
        }
        if let Some(h) = &self.http {
            return Ok(Step::Http(h.clone()));
        }
        if let Some(r) = &self.http_response {
            return Ok(Step::HttpResponse {
                status: r.status,
                body: r.body.clone(),
            });
        }
        match self.sleep_ms {
            Some(ms) => Ok(Step::Sleep(ms)),
            None => Err(step_err(index, "a step must have exactly one kind")),
        }
    }
}

/// An observation expected after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedRecv {
    /// Index of the `recv` step in the transcript.
    pub step: usize,
    /// The connection it is expected on.
    pub conn: String,
    /// What is expected.
    pub expected: Expected,
    /// Pushed by the server on its own: accepted when it arrives, not demanded.
    pub server_initiated: bool,
}

/// What an action does.
#[derive(Debug, Clone)]
pub enum ActionKind {
    /// Open a websocket and check the handshake status.
    Connect {
        /// Connection name.
        conn: String,
        /// Endpoint path.
        path: String,
        /// Query parameters in order.
        query: Vec<(String, String)>,
        /// Expected handshake status (101 or a refusal).
        expected_status: u16,
    },
    /// Send a frame.
    Send {
        /// Connection name.
        conn: String,
        /// The frame.
        frame: Frame,
    },
    /// Client close with a code.
    Close {
        /// Connection name.
        conn: String,
        /// The close code.
        code: u16,
    },
    /// An HTTP request and its expected response.
    Http {
        /// The recorded request.
        request: HttpRequestSpec,
        /// The recorded response status.
        expected_status: u16,
        /// The recorded response body.
        expected_body: String,
    },
    /// Wait this many milliseconds.
    Sleep(u64),
}

/// An action with the observations recorded after it.
#[derive(Debug, Clone)]
pub struct Action {
    /// Index of the action's step in the transcript.
    pub step: usize,
    /// What to do.
    pub kind: ActionKind,
    /// What the server sent after it, in recorded order.
    pub expect: Vec<ExpectedRecv>,
    /// Performed right after the previous action, before its answers settled.
    pub pipelined: bool,
}

/// Serializes `(key, value)` pairs as a JSON object in their order.
fn pairs_as_object<S: Serializer>(
    pairs: &[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Deserializes a JSON object of scalars into `(key, value)` pairs, keeping
/// the file's order (serde_json's `Value` would sort the keys).
fn ordered_pairs<'de, D>(deserializer: D) -> Result<Vec<(String, String)>, D::Error>
where
    D: Deserializer<'de>,
{
    struct PairsVisitor;

    impl<'de> Visitor<'de> for PairsVisitor {
        type Value = Vec<(String, String)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of scalar values")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Null => String::new(),
                    other => {
                        return Err(de::Error::custom(format!(
                            "value of {key:?} must be a scalar, got {other}"
                        )))
                    }
                };
                out.push((key, value));
            }
            Ok(out)
        }
    }

    deserializer.deserialize_any(PairsVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_groups_observations_and_keeps_query_order() {
        let t = Transcript::from_json(
            r#"{"scenario":"x","steps":[
              {"conn":"a","connect":{"path":"/socket/websocket","query":{"vsn":"2.0.0","b":"1","a":"2"}}},
              {"conn":"a","connected":{"status":101}},
              {"conn":"a","send":{"text":"[]"}},
              {"conn":"a","recv":{"text":"[1]"}},
              {"conn":"b","recv":{"closed":{"code":null,"reason":""}}},
              {"http":{"method":"GET","path":"/x","headers":{"z":"1","a":"2"}}},
              {"http_response":{"status":200,"body":"{}"}},
              {"sleep_ms":5}
            ]}"#,
        )
        .expect("parses");
        let plan = t.plan().expect("plans");
        assert_eq!(plan.len(), 4);
        match &plan[0].kind {
            ActionKind::Connect { query, .. } => assert_eq!(
                query,
                &vec![
                    ("vsn".to_owned(), "2.0.0".to_owned()),
                    ("b".to_owned(), "1".to_owned()),
                    ("a".to_owned(), "2".to_owned())
                ]
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(plan[1].expect.len(), 2);
        assert_eq!(
            plan[1].expect[1].expected,
            Expected::Closed {
                code: None,
                reason: String::new()
            }
        );
        match &plan[2].kind {
            ActionKind::Http { request, .. } => {
                assert_eq!(request.headers[0].0, "z");
                assert_eq!(request.body, "");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(t.settle_ms(), DEFAULT_SETTLE_MS);
    }

    #[test]
    fn plan_rejects_misplaced_steps() {
        let t = Transcript::from_json(
            r#"{"scenario":"x","steps":[{"conn":"a","recv":{"text":"[]"}}]}"#,
        )
        .expect("parses");
        assert!(t.plan().is_err());
        let t = Transcript::from_json(
            r#"{"scenario":"x","steps":[{"conn":"a","connect":{"path":"/s"}},{"sleep_ms":1}]}"#,
        )
        .expect("parses");
        assert!(t.plan().is_err());
    }

    #[test]
    fn all_recorded_transcripts_plan() {
        let dir = Path::new("/work/shared/conformance/transcripts");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let t = Transcript::load(&path).expect("loads");
                t.plan()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}
