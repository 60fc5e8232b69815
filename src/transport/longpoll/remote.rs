//! LongPoll behind a load balancer: a GET or POST whose token names a
//! session that lives on another node is carried there through pubsub, as
//! Phoenix does, and the answer comes back the same way.
//!
//! The node that owns a session subscribes it to `phx:lp:<id>`. A node that
//! receives a request for a session it does not have subscribes a one-shot
//! reply topic, broadcasts `poll` or `publish` (with the frames) to the
//! session's topic, and waits for the answer; no answer within the window
//! (plus a margin) means the session is gone.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use fawkes_protocol::{Broadcast, Payload};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::session::{LpSession, Poll, Publish};
use super::token::SessionId;
use crate::pubsub::{PubSub, Subscriber, SubscriptionId, Target};
use crate::session::InFrame;

/// Extra wait for an answer beyond the poll window (a round trip or two
/// through Redis).
const MARGIN: Duration = Duration::from_secs(3);

/// The topic a session listens on for requests from other nodes.
fn session_topic(id: SessionId) -> String {
    format!("phx:lp:{}", id.hex())
}

/// Subscribe `session` to requests from other nodes; the subscription
/// must be removed with [`unlisten`] when the session ends.
pub(super) fn listen(
    pubsub: &PubSub,
    id: SessionId,
    session: &Arc<LpSession>,
    window: Duration,
) -> (String, SubscriptionId) {
    let topic = session_topic(id);
    let weak: Weak<LpSession> = Arc::downgrade(session);
    let replies = pubsub.clone();
    let handler = move |request: &Broadcast| {
        let Some(session) = weak.upgrade() else {
            return;
        };
        let Payload::Json(body) = &request.payload else {
            return;
        };
        let Some(reply_to) = body["reply"].as_str().map(str::to_owned) else {
            return;
        };
        let replies = replies.clone();
        match request.event.as_str() {
            "poll" => {
                tokio::spawn(async move {
                    let answer = match session.poll(window).await {
                        Poll::Messages(frames) => {
                            let messages: Vec<&str> = frames.iter().map(|f| f.as_str()).collect();
                            json!({"status": 200, "messages": messages})
                        }
                        Poll::NoContent => json!({"status": 204, "messages": []}),
                    };
                    replies.broadcast(&reply_to, "answer", Payload::Json(answer));
                });
            }
            "publish" => {
                let Some(frames) = frames_from(&body["frames"]) else {
                    return;
                };
                tokio::spawn(async move {
                    let status = match session.publish(frames, window).await {
                        Publish::Ok => 200,
                        Publish::Timeout => 408,
                        Publish::Gone => 410,
                    };
                    replies.broadcast(&reply_to, "answer", json!({"status": status}).into());
                });
            }
            _ => {}
        }
    };
    let sub = pubsub.subscribe(
        &topic,
        Subscriber {
            target: Target::Handler(Arc::new(handler)),
        },
    );
    (topic, sub)
}

/// Remove what [`listen`] subscribed.
pub(super) fn unlisten(pubsub: &PubSub, (topic, sub): (String, SubscriptionId)) {
    pubsub.unsubscribe(&topic, sub);
}

/// What another node answered to a GET.
pub(super) enum RemotePoll {
    /// `200` with frames, or `204`.
    Answer(Poll),
    /// No node has this session.
    Gone,
}

/// Poll session `id` on whichever node has it.
pub(super) async fn poll(pubsub: &PubSub, id: SessionId, window: Duration) -> RemotePoll {
    let answer = request(pubsub, id, "poll", json!({}), window).await;
    let Some(answer) = answer else {
        return RemotePoll::Gone;
    };
    match answer["status"].as_u64() {
        Some(200) => {
            let frames = answer["messages"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(Utf8Bytes::from)
                        .collect()
                })
                .unwrap_or_default();
            RemotePoll::Answer(Poll::Messages(frames))
        }
        Some(204) => RemotePoll::Answer(Poll::NoContent),
        _ => RemotePoll::Gone,
    }
}

/// Hand `frames` to session `id` on whichever node has it.
pub(super) async fn publish(
    pubsub: &PubSub,
    id: SessionId,
    frames: Vec<InFrame>,
    window: Duration,
) -> Publish {
    let frames: Vec<Value> = frames
        .into_iter()
        .map(|frame| match frame {
            InFrame::Text(text) => json!({"text": text.as_str()}),
            InFrame::Binary(bytes) => json!({"binary": STANDARD.encode(&bytes)}),
        })
        .collect();
    let answer = request(pubsub, id, "publish", json!({"frames": frames}), window).await;
    match answer.as_ref().and_then(|a| a["status"].as_u64()) {
        Some(200) => Publish::Ok,
        Some(408) => Publish::Timeout,
        _ => Publish::Gone,
    }
}

/// Broadcast a request to the session's topic and wait for its answer.
async fn request(
    pubsub: &PubSub,
    id: SessionId,
    event: &str,
    mut body: Value,
    window: Duration,
) -> Option<Value> {
    let reply_to = format!("phx:lp:reply:{}", SessionId::random().ok()?.hex());
    let (tx, rx) = oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let handler = move |answer: &Broadcast| {
        if let Payload::Json(value) = &answer.payload {
            let sender = tx.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(sender) = sender {
                let _ = sender.send(value.clone());
            }
        }
    };
    let sub = pubsub.subscribe(
        &reply_to,
        Subscriber {
            target: Target::Handler(Arc::new(handler)),
        },
    );
    body["reply"] = Value::String(reply_to.clone());
    pubsub.broadcast(&session_topic(id), event, Payload::Json(body));
    let answer = tokio::time::timeout(window + MARGIN, rx).await;
    pubsub.unsubscribe(&reply_to, sub);
    answer.ok()?.ok()
}

/// The frames of a `publish` request; `None` if any is malformed.
fn frames_from(value: &Value) -> Option<Vec<InFrame>> {
    value
        .as_array()?
        .iter()
        .map(|frame| {
            if let Some(text) = frame["text"].as_str() {
                Some(InFrame::Text(Utf8Bytes::from(text)))
            } else {
                let bytes = STANDARD.decode(frame["binary"].as_str()?).ok()?;
                Some(InFrame::Binary(Bytes::from(bytes)))
            }
        })
        .collect()
}
