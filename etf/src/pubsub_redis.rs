//! The phoenix_pubsub_redis 3.x wire: one Redis channel per PubSub, and a
//! message `{3, :except | :only, node_name, topic, message, dispatcher}` in
//! Erlang term format.
//!
//! [`decode`] turns what a Phoenix node publishes into a [`RedisBroadcast`],
//! or says why it is skipped ([`Rejected`]): other versions and shapes, and
//! messages that are not a `%Phoenix.Socket.Broadcast{}` (Phoenix.Tracker
//! heartbeats on `phx_presence:*` topics arrive on the same channel and are
//! skipped quietly). [`accept`] applies the receiver's rule (`:except` from any
//! other node, `:only` addressed to this node's atom). [`encode_broadcast`]
//! writes a fawkes broadcast exactly as `Endpoint.broadcast/3` on a Phoenix
//! node would: node name as an atom, dispatcher `Phoenix.Channel.Server`.

use serde_json::Value;
use thiserror::Error;

use crate::decode::decode as decode_term;
use crate::encode::{encode, EncodeOptions};
use crate::error::{DecodeError, EncodeError, NoJsonForm};
use crate::json::{from_json, to_json_text, to_json_value};
use crate::term::Term;

/// The message version phoenix_pubsub_redis 3.x writes and accepts.
pub const VERSION: i64 = 3;
/// The dispatcher Phoenix uses for channel broadcasts (fastlane to transports).
pub const CHANNEL_SERVER_DISPATCHER: &str = "Elixir.Phoenix.Channel.Server";
/// The struct name of a channel broadcast.
pub const BROADCAST_STRUCT: &str = "Elixir.Phoenix.Socket.Broadcast";
/// The topic prefix Phoenix.Tracker (Presence) replicates on.
pub const TRACKER_TOPIC_PREFIX: &str = "phx_presence:";

/// The Redis channel of a PubSub: `channel_name("MyApp.PubSub")` is
/// `"phx:Elixir.MyApp.PubSub.Adapter"` (a leading `Elixir.` is accepted too).
pub fn channel_name(pubsub_name: &str) -> String {
    let name = pubsub_name.strip_prefix("Elixir.").unwrap_or(pubsub_name);
    format!("phx:Elixir.{name}.Adapter")
}

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every node except the one named (a broadcast; the name is the sender's).
    Except,
    /// Only the node named (a direct broadcast).
    Only,
}

impl Mode {
    fn atom(self) -> &'static str {
        match self {
            Mode::Except => "except",
            Mode::Only => "only",
        }
    }
}

/// The node name field. Phoenix writes an atom; other nodes may write anything,
/// and Phoenix compares it with `==` against its own atom.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeName {
    /// An atom, e.g. `:phx_a`.
    Atom(String),
    /// Anything else (a binary `"rust_b"`...): never equal to a node's atom.
    Other(Term),
}

/// The payload of a broadcast, in the forms fawkes frames carry.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastPayload {
    /// A JSON value.
    Json(Value),
    /// Exact JSON text, used when the payload holds an integer beyond 64 bits
    /// (which a `Value` cannot carry exactly).
    JsonText(String),
    /// `{:binary, bytes}`: a binary broadcast (V2 binary frame).
    Binary(Vec<u8>),
}

/// A `%Phoenix.Socket.Broadcast{}` received from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisBroadcast {
    /// `:except` or `:only`.
    pub mode: Mode,
    /// The sender's name (`:except`) or the target's (`:only`).
    pub node: NodeName,
    /// The PubSub topic of the message: the one that selects subscribers.
    pub topic: String,
    /// The struct's own `topic` field (normally equal to `topic`).
    pub broadcast_topic: String,
    /// The event name.
    pub event: String,
    /// The payload.
    pub payload: BroadcastPayload,
    /// The dispatcher module atom, e.g. `Elixir.Phoenix.Channel.Server`.
    pub dispatcher: String,
}

/// A message that is not for fawkes, for a reason that is expected on a
/// shared channel: log it at debug level.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Ignored {
    /// Not a 6-tuple.
    #[error("not a 6-tuple ({0})")]
    Shape(String),
    /// A version other than 3.
    #[error("message version {0}, only 3 is understood")]
    Version(String),
    /// A mode other than `:except` / `:only`.
    #[error("mode {0} is neither :except nor :only")]
    Mode(String),
    /// The topic is not a UTF-8 binary.
    #[error("topic is not a UTF-8 binary")]
    Topic,
    /// Phoenix.Tracker replication (presence heartbeats and deltas).
    #[error("Phoenix.Tracker message on {topic}")]
    Tracker {
        /// The tracker topic, e.g. `phx_presence:Elixir.MyAppWeb.Presence_shard0`.
        topic: String,
    },
    /// Some other PubSub message (not a `%Phoenix.Socket.Broadcast{}`).
    #[error("not a Phoenix.Socket.Broadcast on {topic}: a {kind}")]
    NotABroadcast {
        /// The topic.
        topic: String,
        /// What it is (the term's kind or struct name).
        kind: String,
    },
    /// A Broadcast struct with a missing or mistyped field.
    #[error("malformed Phoenix.Socket.Broadcast on {topic}: {reason}")]
    MalformedBroadcast {
        /// The topic.
        topic: String,
        /// Which field is wrong.
        reason: &'static str,
    },
}

/// Why a Redis message did not become a [`RedisBroadcast`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Rejected {
    /// Not valid Erlang term format (corrupt or hostile): log a warning.
    #[error("undecodable message: {0}")]
    Undecodable(#[from] DecodeError),
    /// Not for fawkes, expected on a shared channel: log at debug level.
    #[error("ignored: {0}")]
    Ignored(#[from] Ignored),
    /// A broadcast whose payload has no JSON form: count it and log a warning.
    #[error("broadcast {event:?} on {topic} has no JSON form: {reason}")]
    NoJsonForm {
        /// The topic.
        topic: String,
        /// The event.
        event: String,
        /// What could not be mapped.
        reason: NoJsonForm,
    },
}

impl Rejected {
    /// True when the message is expected traffic to skip quietly (debug log).
    pub fn is_quiet(&self) -> bool {
        matches!(self, Rejected::Ignored(_))
    }
}

/// Decode one message published on a PubSub's Redis channel.
pub fn decode(bytes: &[u8]) -> Result<RedisBroadcast, Rejected> {
    let term = decode_term(bytes)?;
    let fields = match &term {
        Term::Tuple(fields) if fields.len() == 6 => fields,
        Term::Tuple(fields) => {
            return Err(Ignored::Shape(format!("a tuple of arity {}", fields.len())).into())
        }
        other => return Err(Ignored::Shape(format!("a {}", other.kind())).into()),
    };
    let [version, mode, node, topic, message, dispatcher] = fields.as_slice() else {
        return Err(Ignored::Shape("a tuple".into()).into());
    };
    if *version != Term::Integer(VERSION) {
        return Err(Ignored::Version(describe(version)).into());
    }
    let mode = match mode.as_atom() {
        Some("except") => Mode::Except,
        Some("only") => Mode::Only,
        _ => return Err(Ignored::Mode(describe(mode)).into()),
    };
    let node = match node {
        Term::Atom(name) => NodeName::Atom(name.clone()),
        other => NodeName::Other(other.clone()),
    };
    let topic = utf8_binary(topic).ok_or(Ignored::Topic)?;
    let dispatcher = dispatcher.as_atom().unwrap_or_default().to_owned();
    let struct_name = message
        .map_get(&Term::atom("__struct__"))
        .and_then(Term::as_atom);
    if struct_name != Some(BROADCAST_STRUCT) {
        if topic.starts_with(TRACKER_TOPIC_PREFIX) {
            return Err(Ignored::Tracker { topic }.into());
        }
        let kind = struct_name.map_or_else(|| message.kind().to_owned(), str::to_owned);
        return Err(Ignored::NotABroadcast { topic, kind }.into());
    }
    let field = |name: &str| message.map_get(&Term::atom(name));
    let malformed = |reason| Ignored::MalformedBroadcast {
        topic: topic.clone(),
        reason,
    };
    let event = field("event")
        .and_then(utf8_binary)
        .ok_or_else(|| malformed("event is not a UTF-8 binary"))?;
    let broadcast_topic = field("topic")
        .and_then(utf8_binary)
        .ok_or_else(|| malformed("topic is not a UTF-8 binary"))?;
    let payload = field("payload").ok_or_else(|| malformed("no payload"))?;
    let payload = payload_of(payload).map_err(|reason| Rejected::NoJsonForm {
        topic: topic.clone(),
        event: event.clone(),
        reason,
    })?;
    Ok(RedisBroadcast {
        mode,
        node,
        topic,
        broadcast_topic,
        event,
        payload,
        dispatcher,
    })
}

/// The receiver's rule: `:except` is for every node but the one named,
/// `:only` for the node whose atom is named. `own_node` is this node's atom text.
pub fn accept(message: &RedisBroadcast, own_node: &str) -> bool {
    let named_self = matches!(&message.node, NodeName::Atom(name) if name == own_node);
    match message.mode {
        Mode::Except => !named_self,
        Mode::Only => named_self,
    }
}

fn payload_of(payload: &Term) -> Result<BroadcastPayload, NoJsonForm> {
    if let Term::Tuple(parts) = payload {
        if let [Term::Atom(tag), Term::Binary(bytes)] = parts.as_slice() {
            if tag == "binary" {
                return Ok(BroadcastPayload::Binary(bytes.clone()));
            }
        }
    }
    match to_json_value(payload) {
        Ok(value) => Ok(BroadcastPayload::Json(value)),
        Err(NoJsonForm::IntegerBeyond64Bits(_)) => {
            to_json_text(payload).map(BroadcastPayload::JsonText)
        }
        Err(other) => Err(other),
    }
}

fn utf8_binary(term: &Term) -> Option<String> {
    term.as_binary()
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .map(str::to_owned)
}

fn describe(term: &Term) -> String {
    match term {
        Term::Integer(i) => i.to_string(),
        Term::Atom(atom) => format!(":{atom}"),
        other => format!("a {}", other.kind()),
    }
}

/// A payload to publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PayloadRef<'a> {
    /// A JSON value (maps get binary keys, as Jason-decoded JSON in Elixir).
    Json(&'a Value),
    /// Raw bytes, sent as `{:binary, bytes}`.
    Binary(&'a [u8]),
}

/// The term of a broadcast message, exactly as a Phoenix node builds it.
pub fn broadcast_term(
    mode: Mode,
    node_name: &str,
    topic: &str,
    event: &str,
    payload: PayloadRef<'_>,
) -> Term {
    let payload = match payload {
        PayloadRef::Json(value) => from_json(value),
        PayloadRef::Binary(bytes) => {
            Term::Tuple(vec![Term::atom("binary"), Term::Binary(bytes.to_vec())])
        }
    };
    // Keys in term order (__struct__ < event < payload < topic), as OTP writes them.
    let message = Term::Map(vec![
        (Term::atom("__struct__"), Term::atom(BROADCAST_STRUCT)),
        (Term::atom("event"), Term::binary(event)),
        (Term::atom("payload"), payload),
        (Term::atom("topic"), Term::binary(topic)),
    ]);
    Term::Tuple(vec![
        Term::Integer(VERSION),
        Term::atom(mode.atom()),
        Term::atom(node_name),
        Term::binary(topic),
        message,
        Term::atom(CHANNEL_SERVER_DISPATCHER),
    ])
}

/// The bytes to `PUBLISH` for a broadcast: [`broadcast_term`] encoded with
/// `options` (atom style and optional compression level).
pub fn encode_broadcast(
    mode: Mode,
    node_name: &str,
    topic: &str,
    event: &str,
    payload: PayloadRef<'_>,
    options: &EncodeOptions,
) -> Result<Vec<u8>, EncodeError> {
    encode(
        &broadcast_term(mode, node_name, topic, event, payload),
        options,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn channel_name_follows_module_concat() {
        assert_eq!(
            channel_name("Conf.PubSub"),
            "phx:Elixir.Conf.PubSub.Adapter"
        );
        assert_eq!(
            channel_name("Elixir.Conf.PubSub"),
            "phx:Elixir.Conf.PubSub.Adapter"
        );
    }

    #[test]
    fn encode_then_decode_gives_the_broadcast_back() {
        let payload = json!({"k": "v", "n": [1, 2.5, null]});
        let bytes = encode_broadcast(
            Mode::Only,
            "fawkes_b",
            "room:x",
            "evt",
            PayloadRef::Json(&payload),
            &EncodeOptions::default(),
        )
        .unwrap();
        let message = decode(&bytes).unwrap();
        assert_eq!(message.mode, Mode::Only);
        assert_eq!(message.node, NodeName::Atom("fawkes_b".into()));
        assert_eq!(
            (message.topic.as_str(), message.event.as_str()),
            ("room:x", "evt")
        );
        assert_eq!(message.payload, BroadcastPayload::Json(payload));
        assert_eq!(message.dispatcher, CHANNEL_SERVER_DISPATCHER);
        assert!(accept(&message, "fawkes_b"));
        assert!(!accept(&message, "phx_a"));
    }

    #[test]
    fn accept_applies_except_and_only() {
        let bytes = encode_broadcast(
            Mode::Except,
            "fawkes_b",
            "t",
            "e",
            PayloadRef::Binary(&[0, 255]),
            &EncodeOptions::default(),
        )
        .unwrap();
        let mut message = decode(&bytes).unwrap();
        assert_eq!(message.payload, BroadcastPayload::Binary(vec![0, 255]));
        assert!(!accept(&message, "fawkes_b"), "own echo");
        assert!(accept(&message, "phx_a"));
        message.node = NodeName::Other(Term::binary("phx_a"));
        assert!(
            accept(&message, "phx_a"),
            "a binary name never equals an atom"
        );
        message.mode = Mode::Only;
        assert!(!accept(&message, "phx_a"));
    }

    #[test]
    fn other_shapes_are_ignored_with_a_reason() {
        let encode_term = |t: &Term| encode(t, &EncodeOptions::default()).unwrap();
        let five = Term::Tuple(vec![Term::Integer(3); 5]);
        assert!(matches!(
            decode(&encode_term(&five)),
            Err(Rejected::Ignored(Ignored::Shape(_)))
        ));
        let mut fields = match broadcast_term(Mode::Except, "a", "t", "e", PayloadRef::Binary(&[]))
        {
            Term::Tuple(fields) => fields,
            _ => unreachable!(),
        };
        fields[4] = Term::Tuple(vec![Term::atom("pub"), Term::atom("heartbeat")]);
        fields[3] = Term::binary("phx_presence:Elixir.X.Presence_shard0");
        let tracker = decode(&encode_term(&Term::Tuple(fields.clone()))).unwrap_err();
        assert!(matches!(
            tracker,
            Rejected::Ignored(Ignored::Tracker { .. })
        ));
        assert!(tracker.is_quiet());
        fields[3] = Term::binary("room:x");
        assert!(matches!(
            decode(&encode_term(&Term::Tuple(fields))),
            Err(Rejected::Ignored(Ignored::NotABroadcast { .. }))
        ));
        let pid_payload = Term::Tuple(vec![
            Term::Integer(3),
            Term::atom("except"),
            Term::atom("n"),
            Term::binary("t"),
            Term::Map(vec![
                (Term::atom("__struct__"), Term::atom(BROADCAST_STRUCT)),
                (Term::atom("event"), Term::binary("e")),
                (Term::atom("payload"), Term::Tuple(vec![Term::Integer(1)])),
                (Term::atom("topic"), Term::binary("t")),
            ]),
            Term::atom(CHANNEL_SERVER_DISPATCHER),
        ]);
        let err = decode(&encode_term(&pid_payload)).unwrap_err();
        assert!(matches!(
            err,
            Rejected::NoJsonForm {
                reason: NoJsonForm::Tuple(1),
                ..
            }
        ));
        assert!(!err.is_quiet());
    }
}
