//! What channel callbacks return: [`JoinResult`] and [`HandleResult`], the
//! short constructors for the common answers, and [`ChannelError`], the
//! error reply a callback answers with (`?` on a [`PayloadError`] gives one).

use fawkes_protocol::{Payload, PayloadError};

use super::Reply;

/// The outcome of [`crate::Channel::join`]: `Ok(response)` accepts the
/// join (`{:ok, response, socket}`), `Err` refuses it (`{:error, response}`).
pub type JoinResult = Result<Payload, ChannelError>;

/// The outcome of a channel callback: what to do ([`Handled`]), or an error
/// answered with an error reply (the channel goes on).
pub type HandleResult = Result<Handled, ChannelError>;

/// Why a channel asked to stop. `Normal` and `Shutdown` close the channel on
/// the client (`phx_close`); `Crash` is reported as `phx_error`, like a
/// Phoenix channel exiting with an abnormal reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A normal stop (`{:stop, :normal, socket}`).
    Normal,
    /// A shutdown stop (`{:stop, :shutdown, socket}`).
    Shutdown,
    /// An abnormal stop, reported to the client as a crash.
    Crash(String),
}

/// What a callback did: reply, stay silent, or stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// No reply (`{:noreply, socket}`; the client's push times out unless
    /// replied later through a [`crate::ReplyHandle`]).
    NoReply,
    /// Reply to the message being handled (`{:reply, reply, socket}`).
    Reply(Reply),
    /// Stop the channel, optionally replying first.
    Stop {
        /// Why the channel stops.
        reason: StopReason,
        /// A reply sent before the channel closes.
        reply: Option<Reply>,
    },
}

/// An error reply: the `response` of a reply with status `"error"`, sent
/// when a join is refused or a callback returns `Err`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelError {
    response: Payload,
}

impl ChannelError {
    /// An error reply with this response.
    pub fn new(response: impl Into<Payload>) -> Self {
        Self {
            response: response.into(),
        }
    }

    /// An error reply `{"reason": reason}`, Phoenix's usual shape.
    pub fn reason(reason: impl std::fmt::Display) -> Self {
        Self::new(serde_json::json!({ "reason": reason.to_string() }))
    }

    /// The error reply's response.
    pub fn response(&self) -> &Payload {
        &self.response
    }

    /// Take the response out.
    pub fn into_response(self) -> Payload {
        self.response
    }
}

/// A payload that does not fit: `{"reason": "invalid payload: ..."}`.
impl From<PayloadError> for ChannelError {
    fn from(error: PayloadError) -> Self {
        Self::reason(error)
    }
}

/// A push that could not be sent (`socket.push(..)?`): the message being
/// handled gets an error reply `{"reason": ...}`.
impl From<super::PushError> for ChannelError {
    fn from(error: super::PushError) -> Self {
        Self::reason(error)
    }
}

/// An info message that could not be queued (`socket.send_info(..)?`): in
/// a join, the join is refused with the reason.
impl From<super::InfoError> for ChannelError {
    fn from(error: super::InfoError) -> Self {
        Self::reason(error)
    }
}

/// `{:reply, {:ok, response}, socket}`.
pub fn reply_ok(response: impl Into<Payload>) -> HandleResult {
    Ok(Handled::Reply(Reply::ok(response)))
}

/// `{:reply, {:error, response}, socket}`.
pub fn reply_error(response: impl Into<Payload>) -> HandleResult {
    Ok(Handled::Reply(Reply::error(response)))
}

/// `{:reply, {status, response}, socket}`, any status.
pub fn reply(status: impl Into<String>, response: impl Into<Payload>) -> HandleResult {
    Ok(Handled::Reply(Reply::new(status, response)))
}

/// `{:noreply, socket}`.
pub fn noreply() -> HandleResult {
    Ok(Handled::NoReply)
}

/// `{:stop, :normal, socket}`: the channel closes (`phx_close`).
pub fn stop() -> HandleResult {
    Ok(Handled::Stop {
        reason: StopReason::Normal,
        reply: None,
    })
}

/// `{:stop, :normal, reply, socket}`: reply, then close the channel.
pub fn stop_with_reply(reply: Reply) -> HandleResult {
    Ok(Handled::Stop {
        reason: StopReason::Normal,
        reply: Some(reply),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_error_becomes_an_error_reply_with_its_reason() {
        let error: ChannelError = Payload::Binary(bytes::Bytes::new())
            .deserialize::<String>()
            .unwrap_err()
            .into();
        assert_eq!(
            error.response(),
            &Payload::Json(
                serde_json::json!({"reason": "invalid payload: expected JSON, got binary"})
            )
        );
    }
}
