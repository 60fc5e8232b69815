//! [`ChannelSocket`]: what a channel's callbacks use to talk to the client,
//! the topic and the rest of the server (Phoenix's `socket` in a channel).

use fawkes_protocol::{EncodeError, Message, Payload};

use std::marker::PhantomData;

use super::{ChannelMsg, Held, Mailbox, Pending, ReplyHandle};
use crate::presence::ChannelPresence;
use crate::pubsub::{PubSub, SubscriptionId};
use crate::session::{QueueError, SessionContext, TryPushError};
use crate::state::AppState;

/// The event of the presence list pushed to a joining client.
const PRESENCE_STATE_EVENT: &str = "presence_state";

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
    /// `presence_state` asked for on an endpoint without presence.
    #[error("presence is not enabled on this endpoint")]
    NoPresence,
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

/// Sends messages to one channel's [`crate::Channel::handle_info`] from
/// anywhere (another task, a timer, another channel). `I` is the channel's
/// `Info` type.
pub struct InfoSender<I> {
    mailbox: Mailbox,
    _info: PhantomData<fn(I)>,
}

impl<I> Clone for InfoSender<I> {
    fn clone(&self) -> Self {
        Self {
            mailbox: self.mailbox.clone(),
            _info: PhantomData,
        }
    }
}

impl<I> std::fmt::Debug for InfoSender<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InfoSender").field(&self.mailbox).finish()
    }
}

impl<I: Send + 'static> InfoSender<I> {
    /// Deliver `info` to the channel's `handle_info`.
    pub fn send(&self, info: I) -> Result<(), InfoError> {
        self.mailbox
            .send(ChannelMsg::Info(Box::new(info)))
            .map_err(|error| match error {
                TryPushError::Full => InfoError::Full,
                TryPushError::Closed => InfoError::Closed,
            })
    }
}

/// The channel's view of its client, its topic and the server (Phoenix's
/// `socket` in a channel). `I` is the channel's `Info` type (see
/// [`crate::Channel`]).
pub struct ChannelSocket<I = ()> {
    pub(crate) session: SessionContext,
    pub(crate) topic: String,
    pub(crate) join_ref: Option<String>,
    pub(crate) channel_id: u64,
    pub(crate) subscription: Option<SubscriptionId>,
    pub(crate) current_ref: Option<String>,
    /// Presence diffs the running callback produced, published after its
    /// reply, and the pushes `join` made, written after the `ok` join reply.
    pub(crate) held: Held,
    pub(crate) _info: PhantomData<fn(I)>,
}

impl<I> std::fmt::Debug for ChannelSocket<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSocket")
            .field("topic", &self.topic)
            .field("join_ref", &self.join_ref)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static> ChannelSocket<I> {
    /// Send `info` to this channel's own `handle_info` (handled after the
    /// current callback returns; Phoenix's `send(self(), info)`).
    pub fn send_info(&self, info: I) -> Result<(), InfoError> {
        self.info_sender().send(info)
    }

    /// A handle that sends `handle_info` messages to this channel.
    pub fn info_sender(&self) -> InfoSender<I> {
        InfoSender {
            mailbox: Mailbox {
                control: self.session.control.clone(),
                channel_id: self.channel_id,
            },
            _info: PhantomData,
        }
    }
}

impl<I> ChannelSocket<I> {
    /// The joined topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The same socket seen by a channel with another `Info` type.
    pub(crate) fn retype<J>(self) -> ChannelSocket<J> {
        ChannelSocket {
            session: self.session,
            topic: self.topic,
            join_ref: self.join_ref,
            channel_id: self.channel_id,
            subscription: self.subscription,
            current_ref: self.current_ref,
            held: self.held,
            _info: PhantomData,
        }
    }

    /// The socket's id (`Connected::id`, Phoenix's `id/1`), if the connect
    /// callback gave it one: a `disconnect` broadcast on it closes every
    /// socket with this id.
    pub fn id(&self) -> Option<&str> {
        self.session.id.as_deref()
    }

    /// The application's value of type `T`, given with
    /// [`crate::EndpointBuilder::state`].
    pub fn state<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.session.state.get::<T>()
    }

    /// All of the application's state.
    pub fn app_state(&self) -> &AppState {
        &self.session.state
    }

    /// The endpoint's pubsub (Phoenix's `Endpoint`: broadcast anywhere,
    /// subscribe).
    pub fn pubsub(&self) -> &PubSub {
        &self.session.pubsub
    }

    /// Broadcast to every subscriber of another `topic` (Phoenix's
    /// `Endpoint.broadcast/3` from a channel), e.g. to tell the channels of
    /// `user:42` that a permission was revoked.
    pub fn broadcast_to(&self, topic: &str, event: &str, payload: impl Into<Payload>) {
        self.session.pubsub.broadcast(topic, event, payload.into());
    }

    /// End this socket politely, as a `disconnect` broadcast on its id
    /// does (Phoenix's `Endpoint.broadcast(id, "disconnect", %{})`): every
    /// socket with this id closes (websocket close 1001; what was queued
    /// before is still written). A socket without an id closes alone.
    pub fn disconnect(&self) {
        match &self.session.id {
            Some(id) => self
                .session
                .pubsub
                .broadcast(id, "disconnect", Payload::empty()),
            None => self.session.control.disconnect(),
        }
    }

    /// End this socket abruptly (Phoenix's
    /// `Process.exit(socket.transport_pid, :kill)`): the connection drops
    /// with no close frame and nothing queued is written; phoenix.js sees
    /// an abnormal close and reconnects.
    pub fn kill(&self) {
        self.session.control.kill();
    }

    /// The join reference of this channel instance.
    pub fn join_ref(&self) -> Option<&str> {
        self.join_ref.as_deref()
    }

    /// The socket's assigns, set by the socket's connect callback.
    pub fn assigns(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.session.assigns.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The socket's assigns as one JSON object (e.g. to hand them to a
    /// backend).
    pub fn assigns_object(&self) -> serde_json::Map<String, serde_json::Value> {
        self.assigns()
            .map(|(key, value)| (key.to_owned(), value.clone()))
            .collect()
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

    /// Push `event` with `payload` to this client only. `?` on the error
    /// in a callback answers the client's message with an error reply.
    ///
    /// A push made in `join` is sent right after the `ok` join reply (and
    /// not at all if the join is refused or crashes), so a channel can
    /// greet the client from `join` itself, where Phoenix needs
    /// `send(self(), :after_join)` and a `handle_info`. Its payload is
    /// taken when `push` is called: for the presence list, use
    /// [`ChannelSocket::push_presence_state`].
    pub fn push(&self, event: &str, payload: impl Into<Payload>) -> Result<(), PushError> {
        let payload = payload.into();
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
        // Not subscribed yet: `join` is running (a joined channel is
        // subscribed until it is dropped).
        if self.subscription.is_none() {
            self.held.hold_push(Pending::Frame(frame.into()));
            return Ok(());
        }
        self.session.outbound.deliver(frame.into())?;
        self.session.pubsub.counters().message_out();
        Ok(())
    }

    /// Write what `join` pushed (after its `ok` reply; the channel is
    /// subscribed by then, so later pushes go out directly). What the
    /// queue refuses is dropped, with the rest: a full queue closes the
    /// session anyway, and a closed one has nobody to read it.
    pub(crate) fn release_pushes(&self) {
        for push in self.held.take_pushes() {
            let sent = match push {
                Pending::Frame(frame) => self
                    .session
                    .outbound
                    .deliver(frame)
                    .map(|()| self.session.pubsub.counters().message_out())
                    .map_err(PushError::from),
                Pending::PresenceState => self.push_presence_state(),
            };
            if let Err(error) = sent {
                tracing::debug!(topic = %self.topic, %error, "push from join not sent");
                return;
            }
        }
    }

    /// Push the topic's presence list to this client as `presence_state`
    /// (Phoenix's `push(socket, "presence_state", Presence.list(socket))`).
    ///
    /// In `join` it is sent after the `ok` join reply, and the list is
    /// taken then, once the channel is subscribed: a change made before
    /// that is in the list, one made after it comes as a `presence_diff`.
    /// (A list taken in `join` itself could miss a change made between
    /// it and the subscription.)
    pub fn push_presence_state(&self) -> Result<(), PushError> {
        let Some(presence) = self.presence() else {
            return Err(PushError::NoPresence);
        };
        if self.subscription.is_none() {
            self.held.hold_push(Pending::PresenceState);
            return Ok(());
        }
        self.push(PRESENCE_STATE_EVENT, presence.list())
    }

    /// Broadcast to every subscriber of the topic, this client included.
    pub fn broadcast(&self, event: &str, payload: impl Into<Payload>) {
        self.session
            .pubsub
            .broadcast(&self.topic, event, payload.into());
    }

    /// Broadcast to every subscriber of the topic except this channel.
    pub fn broadcast_from(&self, event: &str, payload: impl Into<Payload>) {
        let payload = payload.into();
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

    /// Presence on this channel's topic, owned by this channel: entries it
    /// tracks leave when it ends. `None` when the endpoint has no presence.
    pub fn presence(&self) -> Option<ChannelPresence<'_>> {
        self.session.presence.as_ref().map(|presence| {
            ChannelPresence::new(presence, self.presence_owner(), &self.topic, &self.held)
        })
    }

    pub(crate) fn presence_owner(&self) -> u64 {
        self.channel_id
    }

    /// Publish the presence diffs the last callback produced.
    pub(crate) fn flush_presence(&self) {
        // Without presence nothing holds diffs (and the only pushes still
        // held, a refused join's, go with the channel).
        let Some(presence) = &self.session.presence else {
            return;
        };
        for diff in self.held.take_diffs() {
            presence.publish_held(diff);
        }
    }
}
