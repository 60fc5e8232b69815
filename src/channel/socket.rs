//! [`ChannelSocket`]: what a channel's callbacks use to talk to the client,
//! the topic and the rest of the server (Phoenix's `socket` in a channel).

use fawkes_protocol::{EncodeError, Message, Payload};

use super::{ChannelMsg, Info, Mailbox, ReplyHandle};
use crate::presence::{ChannelPresence, HeldDiffs};
use crate::pubsub::SubscriptionId;
use crate::session::{QueueError, SessionContext, TryPushError};

/// Why a push or reply could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The payload cannot be encoded for this client (binary on V1, or a
    /// topic/event longer than 255 bytes in a binary frame).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The client's queue is closed or full.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Why an info message could not be delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InfoError {
    /// The channel's session has ended (a message for a channel that ended
    /// while its session lives on is dropped by the session).
    #[error("channel has ended")]
    Closed,
    /// The session's queue of channel messages is full.
    #[error("channel mailbox is full")]
    Full,
}

/// Sends [`Info`] messages to one channel from anywhere.
#[derive(Clone, Debug)]
pub struct InfoSender(Mailbox);

impl InfoSender {
    /// Deliver `value` to the channel's `handle_info`.
    pub fn send<T: std::any::Any + Send>(&self, value: T) -> Result<(), InfoError> {
        self.0
            .send(ChannelMsg::Info(Info::new(value)))
            .map_err(|error| match error {
                TryPushError::Full => InfoError::Full,
                TryPushError::Closed => InfoError::Closed,
            })
    }
}

/// The channel's view of its client and topic.
pub struct ChannelSocket {
    pub(crate) session: SessionContext,
    pub(crate) topic: String,
    pub(crate) join_ref: Option<String>,
    pub(crate) channel_id: u64,
    pub(crate) subscription: Option<SubscriptionId>,
    pub(crate) current_ref: Option<String>,
    /// Presence diffs produced by the running callback, sent after it.
    pub(crate) held_diffs: HeldDiffs,
}

impl std::fmt::Debug for ChannelSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSocket")
            .field("topic", &self.topic)
            .field("join_ref", &self.join_ref)
            .finish_non_exhaustive()
    }
}

impl ChannelSocket {
    /// The joined topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The join reference of this channel instance.
    pub fn join_ref(&self) -> Option<&str> {
        self.join_ref.as_deref()
    }

    /// The socket's assigns, set by the socket's connect callback.
    pub fn assigns(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.session.assigns.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One assign, if set.
    pub fn assign(&self, key: &str) -> Option<&serde_json::Value> {
        self.session
            .assigns
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// One assign as a string, if it is one.
    pub fn assign_str(&self, key: &str) -> Option<&str> {
        self.assign(key).and_then(|v| v.as_str())
    }

    /// Push `event` with `payload` to this client only.
    pub fn push(&self, event: &str, payload: Payload) -> Result<(), PushError> {
        let encoded = self.session.serializer.encode_message(&Message {
            join_ref: self.join_ref.clone(),
            ref_: None,
            topic: self.topic.clone(),
            event: event.to_owned(),
            payload,
        });
        // A payload this client's serializer cannot carry (binary for V1):
        // counted, and the error goes back to the channel.
        let frame = encoded.inspect_err(|_| self.session.pubsub.counters().undeliverable(1))?;
        self.session.outbound.deliver(frame.into())?;
        self.session.pubsub.counters().message_out();
        Ok(())
    }

    /// Broadcast to every subscriber of the topic, this client included.
    pub fn broadcast(&self, event: &str, payload: Payload) {
        self.session.pubsub.broadcast(&self.topic, event, payload);
    }

    /// Broadcast to every subscriber of the topic except this channel.
    pub fn broadcast_from(&self, event: &str, payload: Payload) {
        match self.subscription {
            Some(id) => self
                .session
                .pubsub
                .broadcast_from(id, &self.topic, event, payload),
            None => self.session.pubsub.broadcast(&self.topic, event, payload),
        }
    }

    /// A handle to reply later to the message being handled (valid inside
    /// `handle_in` for a message that carries a ref).
    pub fn reply_handle(&self) -> Option<ReplyHandle> {
        self.current_ref.as_ref().map(|ref_| ReplyHandle {
            outbound: self.session.outbound.clone(),
            serializer: self.session.serializer,
            topic: self.topic.clone(),
            join_ref: self.join_ref.clone(),
            ref_: Some(ref_.clone()),
        })
    }

    /// Send `value` to this channel's own `handle_info` (handled after the
    /// current callback returns).
    pub fn send_info<T: std::any::Any + Send>(&self, value: T) -> Result<(), InfoError> {
        self.info_sender().send(value)
    }

    /// A handle that sends `handle_info` messages to this channel.
    pub fn info_sender(&self) -> InfoSender {
        InfoSender(Mailbox {
            control: self.session.control.clone(),
            channel_id: self.channel_id,
        })
    }

    /// Presence on this channel's topic, owned by this channel: entries it
    /// tracks leave when it ends. `None` when the endpoint has no presence.
    pub fn presence(&self) -> Option<ChannelPresence<'_>> {
        self.session.presence.as_ref().map(|presence| {
            ChannelPresence::new(
                presence,
                self.presence_owner(),
                &self.topic,
                &self.held_diffs,
            )
        })
    }

    pub(crate) fn presence_owner(&self) -> u64 {
        self.channel_id
    }

    /// Publish the presence diffs the last callback produced.
    pub(crate) fn flush_presence(&self) {
        if let Some(presence) = &self.session.presence {
            presence.flush(&self.held_diffs);
        }
    }
}
