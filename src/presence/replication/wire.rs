//! The gossip messages presence replicas exchange, and their encoding.
//!
//! A message is two header bytes, `b'P'` and the format version, followed
//! by the message as JSON. The version byte lets a future format live next
//! to this one; the header lets a channel shared with other traffic tell
//! presence gossip apart. Decoding never panics: anything that is not a
//! well-formed message of this version is a [`DecodeError`], and nothing
//! larger than [`MAX_GOSSIP_BYTES`] is parsed at all.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::presence::tracker::{Clock, Delta, ReplicaId};

/// First header byte of every presence gossip message.
const MAGIC: u8 = b'P';
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// The largest message decoded (a full state of ~100,000 presences with
/// small metas fits); larger ones are refused before parsing.
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024 * 1024;

/// One message between presence replicas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Gossip {
    /// Sent by every replica on its period: its clock, and its own changes
    /// since its previous heartbeat when there are any.
    Heartbeat {
        /// The sender.
        from: ReplicaId,
        /// The sender's clock, taken after `delta`.
        clock: Clock,
        /// The sender's own changes since its last heartbeat with a delta.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<Delta>,
    },
    /// "Send me what I lack": the requester's clock, for `to` only.
    TransferReq {
        /// The requester.
        from: ReplicaId,
        /// The replica asked.
        to: ReplicaId,
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: u64,
        /// The requester's clock.
        clock: Clock,
    },
    /// The answer to a [`Gossip::TransferReq`]: everything the requester's
    /// clock lacks, about every origin the sender knows.
    TransferAck {
        /// The replica that answers.
        from: ReplicaId,
        /// The requester.
        to: ReplicaId,
        /// The request's reference.
        #[serde(rename = "ref")]
        reference: u64,
        /// What the requester lacks.
        state: Delta,
    },
    /// A graceful shutdown: drop the sender's presences now.
    Leave {
        /// The replica that leaves.
        from: ReplicaId,
    },
}

impl Gossip {
    /// The replica that sent the message.
    pub(crate) fn from(&self) -> &ReplicaId {
        match self {
            Gossip::Heartbeat { from, .. }
            | Gossip::TransferReq { from, .. }
            | Gossip::TransferAck { from, .. }
            | Gossip::Leave { from } => from,
        }
    }

    /// The message kind, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Gossip::Heartbeat { .. } => "heartbeat",
            Gossip::TransferReq { .. } => "transfer_req",
            Gossip::TransferAck { .. } => "transfer_ack",
            Gossip::Leave { .. } => "leave",
        }
    }

    /// The wire form: header, then JSON.
    pub(crate) fn encode(&self) -> Result<Bytes, serde_json::Error> {
        let mut out = vec![MAGIC, VERSION];
        serde_json::to_writer(&mut out, self)?;
        Ok(Bytes::from(out))
    }

    /// Parses a message received from a peer.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Gossip, DecodeError> {
        if bytes.len() > MAX_GOSSIP_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        match bytes {
            [MAGIC, VERSION, body @ ..] => Ok(serde_json::from_slice(body)?),
            [MAGIC, version, ..] => Err(DecodeError::Version(*version)),
            _ => Err(DecodeError::NotGossip),
        }
    }
}

/// Why received bytes are not a gossip message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`MAX_GOSSIP_BYTES`].
    #[error("gossip message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not a presence gossip message (wrong header).
    #[error("not a presence gossip message")]
    NotGossip,
    /// A format version this build does not read.
    #[error("presence gossip version {0} is not supported")]
    Version(u8),
    /// The header is right but the body is not a message.
    #[error("malformed presence gossip: {0}")]
    Malformed(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::tracker::{Meta, Tracker};

    #[test]
    fn every_message_round_trips() {
        let me = ReplicaId::new("a", 1);
        let mut t = Tracker::new(me.clone());
        let owner = t.owner(1);
        t.track(owner, "t", "k", Meta::new(), "r".into()).unwrap();
        let other = ReplicaId::new("b", 2);
        let messages = [
            Gossip::Heartbeat {
                from: me.clone(),
                clock: t.clock(),
                delta: Some(t.local_delta(0)),
            },
            Gossip::Heartbeat {
                from: me.clone(),
                clock: t.clock(),
                delta: None,
            },
            Gossip::TransferReq {
                from: me.clone(),
                to: other.clone(),
                reference: 7,
                clock: t.clock(),
            },
            Gossip::TransferAck {
                from: other,
                to: me.clone(),
                reference: 7,
                state: t.full_state(),
            },
            Gossip::Leave { from: me.clone() },
        ];
        for message in messages {
            let bytes = message.encode().unwrap();
            assert_eq!(&bytes[..2], b"P\x01");
            assert_eq!(Gossip::decode(&bytes).unwrap(), message);
            let sender = if message.kind() == "transfer_ack" {
                "b"
            } else {
                "a"
            };
            assert_eq!(message.from().node, sender);
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert!(matches!(Gossip::decode(b""), Err(DecodeError::NotGossip)));
        assert!(matches!(Gossip::decode(b"{}"), Err(DecodeError::NotGossip)));
        assert!(matches!(
            Gossip::decode(b"P\x09{}"),
            Err(DecodeError::Version(9))
        ));
        assert!(matches!(
            Gossip::decode(b"P\x01{\"type\":\"nope\"}"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Gossip::decode(b"P\x01[[[[[["),
            Err(DecodeError::Malformed(_))
        ));
        let deep = format!("P\x01{}", "[".repeat(100_000));
        assert!(matches!(
            Gossip::decode(deep.as_bytes()),
            Err(DecodeError::Malformed(_))
        ));
        let huge = vec![b'P'; MAX_GOSSIP_BYTES + 1];
        assert!(matches!(
            Gossip::decode(&huge),
            Err(DecodeError::TooLarge(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut bytes = b"P\x01".to_vec();
            bytes.extend(&body);
            let _ = Gossip::decode(&bytes);
            let _ = Gossip::decode(&body);
        }
    }
}
