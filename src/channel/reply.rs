//! Replies to client pushes, now or later.

use fawkes_protocol::{Payload, Serializer};

use super::PushError;
use crate::session::Outbound;

/// A reply: a status (`"ok"`, `"error"` or any other word) and a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The reply status, e.g. `"ok"`.
    pub status: String,
    /// The reply's `response` (JSON or binary).
    pub response: Payload,
}

impl Reply {
    /// `{:ok, response}`.
    pub fn ok(response: impl Into<Payload>) -> Self {
        Self::new("ok", response)
    }

    /// `:ok`: status ok with an empty response.
    pub fn ok_empty() -> Self {
        Self::new("ok", Payload::empty())
    }

    /// `{:error, response}`.
    pub fn error(response: impl Into<Payload>) -> Self {
        Self::new("error", response)
    }

    /// Any status with a response.
    pub fn new(status: impl Into<String>, response: impl Into<Payload>) -> Self {
        Self {
            status: status.into(),
            response: response.into(),
        }
    }
}

/// Replies to one client push later, from anywhere (Phoenix's `socket_ref`
/// and `reply/2`). Get one with [`crate::ChannelSocket::reply_handle`].
#[derive(Debug, Clone)]
pub struct ReplyHandle {
    pub(crate) outbound: Outbound,
    pub(crate) serializer: Serializer,
    pub(crate) topic: String,
    pub(crate) join_ref: Option<String>,
    pub(crate) ref_: Option<String>,
}

impl ReplyHandle {
    /// Send the reply. It is written even if the channel has ended meanwhile.
    pub fn reply(&self, reply: Reply) -> Result<(), PushError> {
        let frame = self.serializer.encode_reply(&fawkes_protocol::Reply {
            join_ref: self.join_ref.clone(),
            ref_: self.ref_.clone(),
            topic: self.topic.clone(),
            status: reply.status,
            response: reply.response,
        })?;
        self.outbound.deliver(frame.into())?;
        Ok(())
    }
}
