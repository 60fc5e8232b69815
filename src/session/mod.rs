//! One connected client, whatever its transport: decodes inbound frames with
//! the socket's serializer, answers heartbeats, joins channels and hands
//! each its messages one at a time, keeps the table of joined channels, and
//! owns the single close path.

mod context;
mod control;
mod drain;
mod driver;
mod outbound;
mod queue;
mod rate;
mod reason;
mod services;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use fawkes_protocol::{Message, Payload, Reply, Serializer};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub(crate) use crate::pubsub::WireFrame;
pub(crate) use context::SessionContext;
pub(crate) use control::SessionControl;
pub(crate) use control::SessionEvent;
pub use drain::DrainOptions;
pub(crate) use driver::Driver;
pub(crate) use outbound::Outbound;
pub(crate) use outbound::OutboundReceiver;
pub use outbound::QueueError;
pub(crate) use queue::TryPushError;
pub use rate::RateLimit;
use rate::TokenBucket;
pub(crate) use reason::DisconnectReason;
pub(crate) use services::Services;

use crate::channel::{ChannelMsg, ChannelSocket, ExitKind, Finished, Incoming, TerminateReason};
use crate::metrics::{JoinOutcome, Transport};
use crate::pubsub::{Subscriber, SubscriptionId, Target};
use crate::socket::{Connected, SocketConfig};
use table::{ChannelEntry, ChannelTable, MAX_WAITING};

/// One frame received from the client.
#[derive(Debug, Clone)]
pub(crate) enum InFrame {
    /// A text frame.
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
}

/// What a transport holds of a running session.
pub(crate) struct SessionHandle {
    /// Frames from the client; dropping it ends the session.
    pub(crate) inbound: mpsc::Sender<InFrame>,
    /// Frames for the client.
    pub(crate) outbound: OutboundReceiver,
    /// Resolves with why the session ended.
    pub(crate) done: JoinHandle<DisconnectReason>,
    /// The endpoint's counters (what the transport could not deliver).
    pub(crate) counters: Arc<crate::metrics::Counters>,
}

/// Channel instance ids, unique in this process (also presence owners).
static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(1);

/// Start a session for a client that `connect` accepted, fed through a
/// queue (the LongPoll transport).
pub(crate) fn start(
    socket: Arc<SocketConfig>,
    shared: &Services,
    serializer: Serializer,
    connected: Connected,
) -> SessionHandle {
    let (inbound_tx, inbound_rx) = mpsc::channel(socket.options.inbound_capacity);
    let transport = Transport::LongPoll;
    let (run, outbound) = prepare(socket, shared, serializer, connected, inbound_rx, transport);
    SessionHandle {
        inbound: inbound_tx,
        outbound,
        done: tokio::spawn(run),
        counters: shared.pubsub.counters().clone(),
    }
}

/// Where a session's frames come from: a queue fed by a transport, or a
/// transport read directly by the session's own task.
pub(crate) trait InboundSource: Send + Unpin + 'static {
    /// Poll for the next frame, or why the client is gone.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<InFrame, DisconnectReason>>;
}

impl InboundSource for mpsc::Receiver<InFrame> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<InFrame, DisconnectReason>> {
        self.poll_recv(cx)
            .map(|frame| frame.ok_or(DisconnectReason::ClientClosed))
    }
}

/// Build a session reading from `inbound`: the [`Driver`] that runs it (to
/// poll in the caller's task or to spawn) and the receiver of its frames.
pub(crate) fn prepare<I: InboundSource>(
    socket: Arc<SocketConfig>,
    shared: &Services,
    serializer: Serializer,
    connected: Connected,
    inbound: I,
    transport: Transport,
) -> (Driver<I>, OutboundReceiver) {
    shared.pubsub.counters().session_opened(transport);
    let (control, events) = SessionControl::new();
    let (outbound, outbound_rx) = Outbound::new(socket.options.outbound_capacity, control.clone());
    let context = SessionContext {
        serializer,
        outbound,
        pubsub: shared.pubsub.clone(),
        presence: shared.presence.clone(),
        assigns: connected.assigns.into_iter().collect(),
        control: control.clone(),
        id: connected.id.as_deref().map(Arc::from),
        state: shared.state.clone(),
    };
    let id_subscription = connected.id.as_ref().map(|id| {
        let sub = shared.pubsub.subscribe(
            id,
            Subscriber {
                target: Target::Socket {
                    sink: context.outbound.sink(),
                },
            },
        );
        (id.clone(), sub)
    });
    let socket_join_rate = socket.options.join_rate;
    let socket_message_rate = socket.options.message_rate;
    let session = Box::new(Session {
        socket,
        context,
        channels: ChannelTable::default(),
        id_subscription,
        refused_joins: 0,
        join_bucket: socket_join_rate.map(|_| TokenBucket::new()),
        message_bucket: socket_message_rate.map(|_| TokenBucket::new()),
        transport: Some(transport),
    });
    let driver = Driver::new(session, events, shared.drain.session_token(), inbound);
    (driver, outbound_rx)
}

impl Drop for Session {
    fn drop(&mut self) {
        self.release();
    }
}

/// A session's state; [`Driver`] decides what it handles next.
pub(crate) struct Session {
    socket: Arc<SocketConfig>,
    context: SessionContext,
    channels: ChannelTable,
    id_subscription: Option<(String, SubscriptionId)>,
    /// Joins refused so far (unmatched topic, too many channels).
    refused_joins: u32,
    /// The socket's `join_rate`, if limited.
    join_bucket: Option<TokenBucket>,
    /// The socket's `message_rate`, if limited.
    message_bucket: Option<TokenBucket>,
    /// The transport, counted among the open sessions until taken at the
    /// close (one byte, in what was padding).
    transport: Option<Transport>,
}

impl Session {
    /// The single close path: end every channel (each leaves its topic,
    /// untracks its presences and runs `terminate`) and leave the id topic.
    fn close(&mut self, reason: &DisconnectReason) {
        match reason {
            DisconnectReason::ClientClosed => tracing::debug!("session closed by client"),
            other => tracing::info!(reason = %other, "closing session"),
        }
        if let Some(transport) = self.transport.take() {
            let counters = self.context.pubsub.counters();
            counters.session_closed(transport, reason.label());
        }
        self.release();
    }

    /// End the channels and leave the id topic (idempotent; also run on
    /// drop, so a session future dropped mid-way leaks nothing).
    fn release(&mut self) {
        if let Some(transport) = self.transport.take() {
            // Dropped without a close (its task was cancelled).
            let counters = self.context.pubsub.counters();
            counters.session_closed(transport, "other");
        }
        self.channels.clear(&TerminateReason::Closed);
        if let Some((topic, id)) = self.id_subscription.take() {
            self.context.pubsub.unsubscribe(&topic, id);
        }
    }

    fn on_event(&mut self, event: SessionEvent) -> Option<DisconnectReason> {
        match event {
            SessionEvent::Disconnect => Some(DisconnectReason::Disconnected),
            SessionEvent::Overflow => Some(DisconnectReason::SlowClient),
            SessionEvent::Kill => Some(DisconnectReason::Killed),
            SessionEvent::Channel(channel_id, msg) => {
                self.channels.deliver(channel_id, msg);
                None
            }
        }
    }

    /// A channel's callback finished: keep the channel, or end it and tell
    /// the client (`phx_close` after a leave or a normal stop, `phx_error`
    /// after a crash or an abnormal stop).
    fn on_handled(&mut self, channel_id: u64, handled: Finished) {
        let (channel, reason, kind) = match handled {
            Finished::Continue(channel) => return self.channels.resume(channel_id, channel),
            Finished::End {
                channel,
                reason,
                kind,
            } => (channel, reason, kind),
        };
        let Some((topic, entry)) = self.channels.remove_by_id(channel_id) else {
            return;
        };
        tracing::debug!(topic = %topic, ?reason, "channel ended");
        let (event, payload) = match kind {
            ExitKind::Close => ("phx_close", json!({})),
            ExitKind::Error => ("phx_error", json!({"reason": "channel_crash"})),
        };
        self.send_message(Message {
            join_ref: entry.join_ref.clone(),
            ref_: entry.join_ref,
            topic,
            event: event.to_owned(),
            payload: Payload::Json(payload),
        });
        // After the client is told, so nothing `terminate` pushes precedes it.
        if let Some(channel) = channel {
            channel.terminate(reason);
        }
    }

    async fn on_frame(&mut self, frame: InFrame) -> Result<(), DisconnectReason> {
        self.context.pubsub.counters().message_in();
        if let (Some(bucket), Some(limit)) =
            (&mut self.message_bucket, &self.socket.options.message_rate)
        {
            if !bucket.take(limit) {
                self.socket.limit_counters.session_rate_limited();
                tracing::info!(
                    socket_id = self.socket_id(),
                    "closing connection: message rate limit exceeded"
                );
                return Err(DisconnectReason::RateLimited);
            }
        }
        let serializer = self.context.serializer;
        let message = match frame {
            InFrame::Text(text) => serializer.decode_text(&text),
            InFrame::Binary(bytes) => serializer.decode_binary(bytes),
        };
        let message = message.map_err(|error| {
            tracing::warn!(%error, "closing connection: undecodable frame");
            DisconnectReason::InvalidFrame(error)
        })?;
        self.on_message(message).await;
        Ok(())
    }

    async fn on_message(&mut self, msg: Message) {
        if msg.topic == "phoenix" && msg.event == "heartbeat" {
            return self.reply(None, msg.ref_, msg.topic, "ok", Payload::empty());
        }
        if msg.event == "phx_join" {
            // Boxed: the join is the largest state a frame's handling holds.
            return Box::pin(self.join(msg)).await;
        }
        let Some(entry) = self.channels.get_mut(&msg.topic) else {
            return self.unjoined(msg);
        };
        // A message for an older instance of this topic is dropped silently.
        if msg.join_ref.is_some() && msg.join_ref != entry.join_ref {
            tracing::debug!(topic = %msg.topic, "dropping message with stale join_ref");
            return;
        }
        let channel_id = entry.channel_id;
        let channel_msg = if msg.event == "phx_leave" {
            ChannelMsg::Leave { ref_: msg.ref_ }
        } else {
            ChannelMsg::In(Box::new(Incoming {
                event: msg.event,
                payload: msg.payload,
                ref_: msg.ref_,
            }))
        };
        // A client pushing faster than its channel handles waits here: the
        // socket is not read until the channel catches up.
        while self.channels.waiting(channel_id) >= MAX_WAITING {
            let (finished, handled) = self.channels.next_finished().await;
            self.on_handled(finished, handled);
        }
        self.channels.deliver(channel_id, channel_msg);
    }

    fn unjoined(&mut self, msg: Message) {
        if msg.event == "phx_leave" {
            self.reply(msg.join_ref, msg.ref_, msg.topic, "ok", Payload::empty());
        } else {
            self.reply(None, msg.ref_, msg.topic, "error", unmatched_topic());
        }
    }

    async fn join(&mut self, msg: Message) {
        // V1 clients may omit join_ref; the join's ref stands in for it.
        let join_ref = msg.join_ref.clone().or_else(|| msg.ref_.clone());
        if !self.socket.router.has_route(&msg.topic) {
            self.join_refused(&msg.topic, "unmatched topic");
            return self.reply(None, msg.ref_, msg.topic, "error", unmatched_topic());
        }
        if let (Some(bucket), Some(limit)) = (&mut self.join_bucket, &self.socket.options.join_rate)
        {
            if !bucket.take(limit) {
                self.socket.limit_counters.join_rate_limited();
                self.join_refused(&msg.topic, "join rate limit exceeded");
                let reason = Payload::Json(json!({"reason": "join rate limit exceeded"}));
                return self.reply(join_ref, msg.ref_, msg.topic, "error", reason);
            }
        }
        let replaced = self.channels.remove(&msg.topic).map(|old| {
            tracing::debug!(topic = %msg.topic, "duplicate join: closing the previous channel");
            let join_ref = old.join_ref.clone();
            self.channels.end(old, TerminateReason::DuplicateJoin);
            join_ref
        });
        if replaced.is_none() && self.channels.len() >= self.socket.options.max_channels {
            self.socket.limit_counters.join_over_max_channels();
            self.join_refused(&msg.topic, "too many channels joined");
            let reason = Payload::Json(json!({"reason": "too many channels joined"}));
            return self.reply(join_ref, msg.ref_, msg.topic, "error", reason);
        }

        let channel_id = NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed);
        let socket = ChannelSocket {
            session: self.context.clone(),
            topic: msg.topic.clone(),
            join_ref: join_ref.clone(),
            channel_id,
            subscription: None,
            current_ref: None,
            held: Default::default(),
            _info: std::marker::PhantomData,
        };
        let Some(mut joining) = self.socket.router.join(socket, msg.payload) else {
            return;
        };
        // Other channels' callbacks go on finishing while this one joins.
        let joined = loop {
            tokio::select! {
                biased;
                joined = &mut joining => break joined,
                (finished, handled) = self.channels.next_finished() => {
                    self.on_handled(finished, handled);
                }
            }
        };
        let topic = msg.topic;
        match joined {
            Ok(Some((mut channel, Ok(response)))) => {
                self.context.pubsub.counters().join(JoinOutcome::Ok);
                // Subscribed before the reply, as Phoenix; the pushes and
                // presence diffs the join produced go out after it.
                channel.subscribe();
                self.reply(join_ref.clone(), msg.ref_, topic.clone(), "ok", response);
                self.close_replaced(replaced, &topic);
                channel.release_pushes();
                channel.flush_presence();
                let entry = ChannelEntry {
                    channel_id,
                    join_ref,
                    idle: None,
                    waiting: Default::default(),
                };
                self.channels.insert(topic, entry);
                self.channels.resume(channel_id, channel);
            }
            Ok(Some((channel, Err(error)))) => {
                self.context.pubsub.counters().join(JoinOutcome::Error);
                let response = error.into_response();
                self.reply(join_ref, msg.ref_, topic.clone(), "error", response);
                self.close_replaced(replaced, &topic);
                channel.flush_presence();
            }
            Ok(None) | Err(_) => {
                self.context.pubsub.counters().join(JoinOutcome::Crash);
                let reason = Payload::Json(json!({"reason": "join crashed"}));
                self.reply(join_ref, msg.ref_, topic.clone(), "error", reason);
                self.close_replaced(replaced, &topic);
            }
        }
    }

    /// The span of this session's work (a client frame, a wake-up, the
    /// close): its socket id and transport. Made when the session runs,
    /// not kept: a waiting session holds no span.
    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "session",
            socket_id = self.socket_id(),
            transport = self.transport.map(Transport::label),
        )
    }

    /// The socket's id (`Connected::id`), if it has one.
    fn socket_id(&self) -> Option<&str> {
        self.id_subscription.as_ref().map(|(id, _)| id.as_str())
    }

    /// Log a join the session refused. A refusal is the client's mistake,
    /// not the server's: the first one of a session is logged at INFO, the
    /// rest at DEBUG, so one client repeating it cannot flood the log.
    fn join_refused(&mut self, topic: &str, reason: &str) {
        self.context.pubsub.counters().join(JoinOutcome::Refused);
        self.refused_joins = self.refused_joins.saturating_add(1);
        let socket_id = self.socket_id();
        if self.refused_joins == 1 {
            tracing::info!(
                topic,
                reason,
                socket_id,
                "join refused (later refusals of this socket at DEBUG)"
            );
        } else {
            tracing::debug!(
                topic,
                reason,
                socket_id,
                refused = self.refused_joins,
                "join refused"
            );
        }
    }

    /// After a duplicate join's reply, tell the client its old instance closed.
    fn close_replaced(&mut self, replaced: Option<Option<String>>, topic: &str) {
        if let Some(join_ref) = replaced {
            self.send_message(Message {
                join_ref: join_ref.clone(),
                ref_: join_ref,
                topic: topic.to_owned(),
                event: "phx_close".to_owned(),
                payload: Payload::empty(),
            });
        }
    }

    fn reply(
        &self,
        join_ref: Option<String>,
        ref_: Option<String>,
        topic: String,
        status: &str,
        response: Payload,
    ) {
        let reply = Reply {
            join_ref,
            ref_,
            topic,
            status: status.to_owned(),
            response,
        };
        match self.context.serializer.encode_reply(&reply) {
            Ok(frame) => self.queue(frame.into()),
            Err(error) => tracing::warn!(%error, "reply not encodable"),
        }
    }

    fn send_message(&self, message: Message) {
        match self.context.serializer.encode_message(&message) {
            Ok(frame) => self.queue(frame.into()),
            Err(error) => tracing::warn!(%error, "message not encodable"),
        }
    }

    fn queue(&self, frame: WireFrame) {
        // A full queue has already asked this session to close.
        if self.context.outbound.deliver(frame).is_ok() {
            self.context.pubsub.counters().message_out();
        }
    }
}

fn unmatched_topic() -> Payload {
    Payload::Json(json!({"reason": "unmatched topic"}))
}
