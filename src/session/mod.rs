//! One connected client, whatever its transport: decodes inbound frames with
//! the socket's serializer, answers heartbeats, routes joins to channel
//! tasks, keeps the table of joined channels, and owns the single close
//! path.

mod context;
mod control;
mod outbound;
mod queue;
mod reason;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use fawkes_protocol::{Message, Payload, Reply, Serializer};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

pub use context::SessionContext;
pub use control::SessionControl;
pub(crate) use control::SessionEvent;
pub use outbound::{Outbound, QueueError, WireFrame};
pub(crate) use queue::{queue, QueueReceiver, QueueSender, TryPushError};
pub use reason::DisconnectReason;

use crate::channel::{ChannelExit, ExitKind, JoinOutcome, StartChannel, TerminateReason};
use crate::pubsub::{Subscriber, SubscriptionId, Target};
use crate::socket::{Connected, SocketConfig};
use table::{ChannelEntry, ChannelState, ChannelTable};

/// One frame received from the client.
#[derive(Debug, Clone)]
pub enum InFrame {
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
    pub(crate) outbound: QueueReceiver<WireFrame>,
    /// Resolves with why the session ended.
    pub(crate) done: JoinHandle<DisconnectReason>,
}

/// Channel instance ids, unique in this process (also presence owners).
static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(1);

/// Start a session for a client that `connect` accepted.
pub(crate) fn start(
    socket: Arc<SocketConfig>,
    shared: &crate::endpoint::Shared,
    serializer: Serializer,
    connected: Connected,
) -> SessionHandle {
    let (inbound_tx, inbound_rx) = mpsc::channel(socket.options.inbound_capacity);
    let (run, outbound) = prepare(socket, shared, serializer, connected, inbound_rx);
    SessionHandle {
        inbound: inbound_tx,
        outbound,
        done: tokio::spawn(run),
    }
}

/// Where a session's frames come from: a queue fed by a transport, or a
/// transport read directly by the session's own task.
pub(crate) trait InboundSource: Send + 'static {
    /// The next frame, or why the client is gone.
    fn next_frame(
        &mut self,
    ) -> impl std::future::Future<Output = Result<InFrame, DisconnectReason>> + Send;
}

impl InboundSource for mpsc::Receiver<InFrame> {
    async fn next_frame(&mut self) -> Result<InFrame, DisconnectReason> {
        self.recv().await.ok_or(DisconnectReason::ClientClosed)
    }
}

/// Build a session reading from `inbound`: the future that runs it (to
/// await in the caller's task or to spawn) and the receiver of its frames.
pub(crate) fn prepare<I: InboundSource>(
    socket: Arc<SocketConfig>,
    shared: &crate::endpoint::Shared,
    serializer: Serializer,
    connected: Connected,
    inbound: I,
) -> (
    impl std::future::Future<Output = DisconnectReason> + Send + 'static,
    QueueReceiver<WireFrame>,
) {
    let (control, events) = SessionControl::new();
    let (outbound, outbound_rx) = Outbound::new(socket.options.outbound_capacity, control.clone());
    let closed = shared.shutdown.child_token();
    let context = SessionContext {
        serializer,
        outbound,
        pubsub: shared.pubsub.clone(),
        presence: shared.presence.clone(),
        assigns: connected.assigns.into_iter().collect(),
        control: control.clone(),
    };
    let id_subscription = connected.id.as_ref().map(|id| {
        let sub = shared.pubsub.subscribe(
            id,
            Subscriber {
                target: Target::Socket { control },
            },
        );
        (id.clone(), sub)
    });
    let session = Session {
        socket,
        context,
        channels: ChannelTable::default(),
        closed,
        shutdown: shared.shutdown.clone(),
        id_subscription,
    };
    (session.run(inbound, events), outbound_rx)
}

impl Drop for Session {
    fn drop(&mut self) {
        self.release();
    }
}

struct Session {
    socket: Arc<SocketConfig>,
    context: SessionContext,
    channels: ChannelTable,
    /// Cancelled when this session ends: every channel task stops.
    closed: CancellationToken,
    shutdown: CancellationToken,
    id_subscription: Option<(String, SubscriptionId)>,
}

impl Session {
    async fn run<I: InboundSource>(
        mut self,
        mut inbound: I,
        mut events: QueueReceiver<SessionEvent>,
    ) -> DisconnectReason {
        let reason = loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break DisconnectReason::ServerShutdown,
                Some(event) = events.recv() => {
                    if let Some(reason) = self.on_event(event) {
                        break reason;
                    }
                }
                frame = inbound.next_frame() => match frame {
                    Err(reason) => break reason,
                    Ok(frame) => {
                        if let Err(reason) = self.on_frame(frame).await {
                            break reason;
                        }
                    }
                },
            }
        };
        self.close(&reason);
        reason
    }

    /// The single close path: stop every channel (their tasks unsubscribe
    /// and untrack presences) and leave the id topic.
    fn close(&mut self, reason: &DisconnectReason) {
        match reason {
            DisconnectReason::ClientClosed => tracing::debug!("session closed by client"),
            other => tracing::info!(reason = %other, "closing session"),
        }
        self.release();
    }

    /// Stop the channels and leave the id topic (idempotent; also run on
    /// drop, so a session future dropped mid-way leaks nothing).
    fn release(&mut self) {
        self.closed.cancel();
        self.channels.clear();
        if let Some((topic, id)) = self.id_subscription.take() {
            self.context.pubsub.unsubscribe(&topic, id);
        }
    }

    fn on_event(&mut self, event: SessionEvent) -> Option<DisconnectReason> {
        match event {
            SessionEvent::Disconnect => Some(DisconnectReason::Disconnected),
            SessionEvent::Overflow => Some(DisconnectReason::SlowClient),
            SessionEvent::ChannelExit(exit) => {
                self.on_channel_exit(exit);
                None
            }
        }
    }

    fn on_channel_exit(&mut self, exit: ChannelExit) {
        let Some((topic, entry)) = self.channels.remove_by_id(exit.channel_id) else {
            return;
        };
        let (event, payload) = match exit.kind {
            ExitKind::Silent => return,
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
    }

    async fn on_frame(&mut self, frame: InFrame) -> Result<(), DisconnectReason> {
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
            // Boxed: the join path is the largest state of the session loop.
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
        let channel_msg = if msg.event == "phx_leave" {
            entry.state = ChannelState::Leaving;
            crate::channel::ChannelMsg::Leave { ref_: msg.ref_ }
        } else {
            crate::channel::ChannelMsg::In(Box::new(crate::channel::Incoming {
                event: msg.event,
                payload: msg.payload,
                ref_: msg.ref_,
            }))
        };
        let mailbox = entry.mailbox.clone();
        // The channel may have just ended; its exit event is on the way.
        let _ = mailbox.0.push(channel_msg).await;
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
            tracing::warn!(topic = %msg.topic, "ignoring join of unmatched topic");
            return self.reply(None, msg.ref_, msg.topic, "error", unmatched_topic());
        }
        let replaced = self.channels.remove(&msg.topic);
        if let Some(old) = &replaced {
            tracing::debug!(topic = %msg.topic, "duplicate join: closing the previous channel");
            old.kill(TerminateReason::DuplicateJoin);
        } else if self.channels.len() >= self.socket.options.max_channels {
            tracing::error!(topic = %msg.topic, "too many channels joined");
            let reason = Payload::Json(json!({"reason": "too many channels joined"}));
            return self.reply(join_ref, msg.ref_, msg.topic, "error", reason);
        }

        let channel_id = NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed);
        let kill = self.closed.child_token();
        let kill_reason = Arc::new(OnceLock::new());
        let start = StartChannel {
            session: self.context.clone(),
            topic: msg.topic.clone(),
            join_ref: join_ref.clone(),
            params: msg.payload,
            channel_id,
            kill: kill.clone(),
            kill_reason: kill_reason.clone(),
        };
        let Some(spawned) = self.socket.router.start(&msg.topic, start) else {
            return;
        };
        match spawned.joined.await {
            Ok(JoinOutcome::Joined(response)) => {
                self.reply(
                    join_ref.clone(),
                    msg.ref_,
                    msg.topic.clone(),
                    "ok",
                    response,
                );
                self.channels.insert(
                    msg.topic.clone(),
                    ChannelEntry {
                        channel_id,
                        join_ref,
                        mailbox: spawned.mailbox,
                        state: ChannelState::Joined,
                        kill,
                        kill_reason,
                    },
                );
                self.close_replaced(replaced, &msg.topic);
                let _ = spawned.go.send(());
            }
            Ok(JoinOutcome::Refused(response)) => {
                self.reply(join_ref, msg.ref_, msg.topic.clone(), "error", response);
                self.close_replaced(replaced, &msg.topic);
            }
            Err(_) => {
                let reason = Payload::Json(json!({"reason": "join crashed"}));
                self.reply(join_ref, msg.ref_, msg.topic.clone(), "error", reason);
                self.close_replaced(replaced, &msg.topic);
            }
        }
    }

    /// After a duplicate join's reply, tell the client its old instance closed.
    fn close_replaced(&mut self, replaced: Option<ChannelEntry>, topic: &str) {
        if let Some(old) = replaced {
            self.send_message(Message {
                join_ref: old.join_ref.clone(),
                ref_: old.join_ref,
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
        let _ = self.context.outbound.deliver(frame);
    }
}

fn unmatched_topic() -> Payload {
    Payload::Json(json!({"reason": "unmatched topic"}))
}
