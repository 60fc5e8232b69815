//! Entry points for the `fuzz/` crate, compiled only with `--cfg fuzzing`
//! (as `cargo fuzz` builds): the paths a client's bytes take that are not
//! public API, the longpoll body parser and a session's frame handling.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::presence::{Presence, PresenceOptions};
use crate::pubsub::PubSub;
use crate::session::InFrame;
use crate::session::Services;
use crate::{
    Channel, ChannelSocket, Connected, HandleResult, JoinResult, Payload, Reply, Serializer,
    Socket, SocketOptions, StopReason,
};

/// Parse a longpoll `POST` body; the number of frames, or `None` if refused.
pub fn longpoll_body(content_type: Option<&str>, body: &[u8]) -> Option<usize> {
    crate::transport::longpoll::body::frames(content_type, Bytes::copy_from_slice(body))
        .ok()
        .map(|frames| frames.len())
}

/// One client frame for [`session_frames`].
#[derive(Debug, Clone)]
pub enum ClientFrame {
    /// A websocket text frame (already valid UTF-8, as the websocket checks).
    Text(String),
    /// A websocket binary frame.
    Binary(Vec<u8>),
}

/// Run a session with `serializer` over `frames`, as a client would send
/// them, then close it; everything the session answers is read and dropped.
/// The socket routes `room:*` to a channel that echoes, broadcasts, pushes,
/// tracks presence and stops on request.
pub fn session_frames(serializer: Serializer, frames: Vec<ClientFrame>) {
    let harness = harness();
    harness.runtime.block_on(async {
        let handle = crate::session::start(
            harness.socket.clone(),
            &harness.shared,
            serializer,
            Connected::default(),
        );
        let mut outbound = handle.outbound;
        let reader = tokio::spawn(async move {
            while let Some(frame) = std::future::poll_fn(|cx| outbound.poll_recv(cx)).await {
                drop(frame);
            }
        });
        for frame in frames {
            let frame = match frame {
                ClientFrame::Text(text) => InFrame::Text(Utf8Bytes::from(text)),
                ClientFrame::Binary(bytes) => InFrame::Binary(Bytes::from(bytes)),
            };
            if handle.inbound.send(frame).await.is_err() {
                break;
            }
        }
        drop(handle.inbound);
        let _ = handle.done.await;
        let _ = reader.await;
    });
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    socket: Arc<Socket>,
    shared: Services,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("fuzz runtime: {error}"));
        let pubsub = PubSub::new();
        let presence = runtime.block_on(async {
            Presence::new(
                pubsub.clone(),
                PresenceOptions {
                    batch_window: Duration::ZERO,
                },
            )
        });
        let socket = Socket::new()
            .channel("room:*", FuzzChannel::default)
            .options(SocketOptions {
                max_channels: 4,
                ..SocketOptions::default()
            });
        Harness {
            runtime,
            socket: Arc::new(socket),
            shared: Services {
                pubsub,
                presence: Some(presence),
                shutdown: CancellationToken::new(),
                drain: Default::default(),
                tasks: TaskTracker::new(),
            },
        }
    })
}

/// A channel that does a bit of everything a client can ask for.
#[derive(Default)]
struct FuzzChannel;

impl Channel for FuzzChannel {
    async fn join(
        &mut self,
        topic: &str,
        params: Payload,
        socket: &mut ChannelSocket,
    ) -> JoinResult {
        if topic.ends_with(":refuse") {
            return JoinResult::Error(Payload::Json(json!({"reason": "refused"})));
        }
        if let Some(presence) = socket.presence() {
            let mut meta = serde_json::Map::new();
            meta.insert("params".into(), json!(params_summary(&params)));
            let _ = presence.track("user", meta);
        }
        JoinResult::Ok(params)
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "echo" => HandleResult::Reply(Reply::ok(payload)),
            "broadcast" => {
                socket.broadcast("broadcast", payload);
                HandleResult::NoReply
            }
            "push" => {
                let _ = socket.push("pushed", payload);
                HandleResult::NoReply
            }
            "stop" => HandleResult::Stop {
                reason: StopReason::Normal,
                reply: None,
            },
            _ => HandleResult::Reply(Reply::error(json!({"reason": "unknown"}))),
        }
    }
}

fn params_summary(params: &Payload) -> &'static str {
    match params {
        Payload::Json(_) | Payload::RawJson(_) => "json",
        Payload::Binary(_) => "binary",
    }
}
