//! `fawkes::testing`, the `Phoenix.ChannelTest` of fawkes: drive an
//! endpoint's channels in-process, with no socket opened. [`connect`] runs
//! the socket's connect callback and starts a session exactly as a
//! transport would (V2 JSON serializer); a [`TestClient`] then joins,
//! pushes, awaits replies and asserts on the pushes and broadcasts it
//! receives, the way phoenix.js would see them.
//!
//! Every wait is bounded ([`TestClient::timeout`], 1 s by default) and ends
//! in a panic that says what was awaited and what arrived meanwhile. Under
//! `#[tokio::test(start_paused = true)]` the waits cost no wall-clock time.
//!
//! ```
//! use fawkes::prelude::*;
//! use fawkes::{testing, Endpoint, Socket};
//! use serde_json::json;
//!
//! #[derive(Default)]
//! struct Room;
//!
//! impl Channel for Room {
//!     async fn handle_in(&mut self, event: &str, payload: Payload, socket: &mut ChannelSocket) -> HandleResult {
//!         socket.broadcast(event, payload.clone());
//!         reply_ok(payload)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let endpoint = Endpoint::builder()
//!     .socket("/socket", Socket::new().channel("room:*", Room::default))
//!     .build();
//! let mut client = testing::connect(&endpoint, "/socket", &[("user", "alice")])
//!     .await
//!     .expect("connect accepted");
//! client.join("room:lobby", json!({})).await.expect("join accepted");
//! let reply = client.request("room:lobby", "new_msg", json!({"body": "hi"})).await;
//! assert_eq!(reply.status, "ok");
//! assert_eq!(client.assert_broadcast("room:lobby", "new_msg").await, json!({"body": "hi"}).into());
//! client.leave("room:lobby").await;
//! # }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use fawkes_protocol::client::{decode_server_binary, decode_server_text, ServerFrame};
use fawkes_protocol::{Message, Payload, Serializer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::session::{self, DisconnectReason, InFrame, OutboundReceiver, WireFrame};
use crate::socket::{ConnectInfo, ConnectRefused};
use crate::Endpoint;

/// How long an assertion waits by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A reply the client received (`phx_reply`).
#[derive(Debug, Clone, PartialEq)]
pub struct TestReply {
    /// `"ok"`, `"error"` or another status.
    pub status: String,
    /// The reply's response.
    pub response: Payload,
}

/// Connect to the socket mounted at `path` on `endpoint` with these connect
/// params, as phoenix.js would (`vsn=2.0.0` is added), and start its
/// session. Refused as the connect callback refuses. Panics if nothing is
/// mounted at `path`.
pub async fn connect(
    endpoint: &Endpoint,
    path: &str,
    params: &[(&str, &str)],
) -> Result<TestClient, ConnectRefused> {
    let inner = endpoint.inner();
    let path = path.trim_end_matches('/');
    let Some((_, socket)) = inner.sockets.iter().find(|(p, _)| p == path) else {
        let mounted: Vec<&str> = inner.sockets.iter().map(|(p, _)| p.as_str()).collect();
        panic!("testing::connect: no socket at {path:?} (mounted: {mounted:?})");
    };
    let mut map = serde_json::Map::new();
    map.insert("vsn".into(), "2.0.0".into());
    for (key, value) in params {
        map.insert((*key).into(), (*value).into());
    }
    let info = ConnectInfo {
        params: map,
        state: inner.shared.state.clone(),
        ..ConnectInfo::default()
    };
    let connected = (socket.connect)(info).await?;
    let handle = session::start(socket.clone(), &inner.shared, Serializer::V2, connected);
    Ok(TestClient {
        inbound: Some(handle.inbound),
        outbound: handle.outbound,
        done: Some(handle.done),
        ended: None,
        received: VecDeque::new(),
        next_ref: 0,
        joins: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
    })
}

/// One connected client of an in-process session.
pub struct TestClient {
    inbound: Option<mpsc::Sender<InFrame>>,
    outbound: OutboundReceiver,
    done: Option<JoinHandle<DisconnectReason>>,
    ended: Option<String>,
    /// Frames received and not yet asserted on, in order.
    received: VecDeque<ServerFrame>,
    next_ref: u64,
    /// The join ref of each joined topic.
    joins: Vec<(String, String)>,
    timeout: Duration,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("joins", &self.joins)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl TestClient {
    /// Wait at most `timeout` in each assertion from now on.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Join `topic` with `params`: `Ok(response)` when the join is
    /// accepted, `Err(response)` when refused.
    pub async fn join(
        &mut self,
        topic: &str,
        params: impl Into<Payload>,
    ) -> Result<Payload, Payload> {
        let join_ref = self.make_ref();
        self.joins.retain(|(t, _)| t != topic);
        self.send(
            Some(join_ref.clone()),
            &join_ref,
            topic,
            "phx_join",
            params.into(),
        )
        .await;
        let reply = self.assert_reply(topic, &join_ref).await;
        if reply.status == "ok" {
            self.joins.push((topic.to_owned(), join_ref));
            Ok(reply.response)
        } else {
            Err(reply.response)
        }
    }

    /// Push `event` on a joined `topic` and return its ref (for
    /// [`TestClient::assert_reply`]).
    pub async fn push(&mut self, topic: &str, event: &str, payload: impl Into<Payload>) -> String {
        let ref_ = self.make_ref();
        let join_ref = self.join_ref(topic);
        self.send(join_ref, &ref_, topic, event, payload.into())
            .await;
        ref_
    }

    /// Push `event` on `topic` and wait for its reply.
    pub async fn request(
        &mut self,
        topic: &str,
        event: &str,
        payload: impl Into<Payload>,
    ) -> TestReply {
        let ref_ = self.push(topic, event, payload).await;
        self.assert_reply(topic, &ref_).await
    }

    /// Leave `topic` (`phx_leave`) and wait for the leave's reply.
    pub async fn leave(&mut self, topic: &str) -> TestReply {
        let reply = self.request(topic, "phx_leave", Payload::empty()).await;
        self.joins.retain(|(t, _)| t != topic);
        reply
    }

    /// Wait for the reply to the push `ref_` on `topic`.
    pub async fn assert_reply(&mut self, topic: &str, ref_: &str) -> TestReply {
        let what = format!("a reply to ref {ref_:?} on {topic:?}");
        let frame = self
            .expect(&what, |frame| match frame {
                ServerFrame::Reply(r) => r.topic == topic && r.ref_.as_deref() == Some(ref_),
                _ => false,
            })
            .await;
        match frame {
            ServerFrame::Reply(reply) => TestReply {
                status: reply.status,
                response: reply.response,
            },
            _ => unreachable!("expect returns what the predicate matched"),
        }
    }

    /// Wait for a push of `event` on `topic` to this client (from
    /// `ChannelSocket::push`, `phx_close`, `phx_error`...) and return its
    /// payload. Other frames stay for later assertions.
    pub async fn assert_push(&mut self, topic: &str, event: &str) -> Payload {
        let what = format!("a push {event:?} on {topic:?}");
        let frame = self
            .expect(&what, |frame| {
                matches!(frame, ServerFrame::Message(m) if m.topic == topic && m.event == event)
            })
            .await;
        frame.into_message().payload
    }

    /// Wait for a broadcast of `event` on `topic` delivered to this client
    /// (it must have joined `topic`) and return its payload.
    pub async fn assert_broadcast(&mut self, topic: &str, event: &str) -> Payload {
        let what = format!("a broadcast {event:?} on {topic:?}");
        let frame = self
            .expect(&what, |frame| {
                matches!(frame, ServerFrame::Broadcast(b) if b.topic == topic && b.event == event)
            })
            .await;
        frame.into_message().payload
    }

    /// Assert that no push or broadcast of `event` on `topic` arrives
    /// within `within` (Phoenix's `refute_push`/`refute_broadcast`).
    pub async fn refute_event(&mut self, topic: &str, event: &str, within: Duration) {
        let matches = |frame: &ServerFrame| frame.topic() == topic && frame.event() == event;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.received.iter().find(|f| matches(f)) {
                panic!("refute_event: got {event:?} on {topic:?}: {frame:?}");
            }
            match tokio::time::timeout_at(deadline, self.next_frame()).await {
                Err(_) => return,
                Ok(Some(frame)) => self.received.push_back(frame),
                Ok(None) => return,
            }
        }
    }

    /// Wait until the server ends this connection (a `disconnect`, a
    /// channel killing the socket...) and return why, as the session saw it.
    pub async fn assert_closed(&mut self) -> String {
        if let Some(reason) = &self.ended {
            return reason.clone();
        }
        let Some(done) = self.done.take() else {
            panic!("assert_closed: the client already closed");
        };
        match tokio::time::timeout(self.timeout, done).await {
            Ok(Ok(reason)) => {
                let label = reason.label().to_owned();
                self.ended = Some(label.clone());
                label
            }
            Ok(Err(error)) => panic!("assert_closed: the session task failed: {error}"),
            Err(_) => panic!(
                "assert_closed: the connection is still open after {:?}; unasserted frames: {:?}",
                self.timeout, self.received
            ),
        }
    }

    /// Every frame received and not asserted on yet (drained).
    pub fn take_received(&mut self) -> Vec<ServerFrame> {
        self.received.drain(..).collect()
    }

    /// Close the connection as a client going away, and wait for the
    /// session to end its channels.
    pub async fn close(mut self) {
        self.inbound = None;
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(self.timeout, done).await;
        }
    }

    fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    fn join_ref(&self, topic: &str) -> Option<String> {
        self.joins
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, r)| r.clone())
    }

    async fn send(
        &mut self,
        join_ref: Option<String>,
        ref_: &str,
        topic: &str,
        event: &str,
        payload: Payload,
    ) {
        let message = Message {
            join_ref,
            ref_: Some(ref_.to_owned()),
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        };
        let frame = match fawkes_protocol::client::encode_client_push(&message) {
            Ok(fawkes_protocol::Frame::Text(text)) => InFrame::Text(Utf8Bytes::from(text)),
            Ok(fawkes_protocol::Frame::Binary(bytes)) => InFrame::Binary(bytes),
            Err(error) => panic!("testing: cannot encode {event:?} on {topic:?}: {error}"),
        };
        let Some(inbound) = &self.inbound else {
            panic!("testing: the client is closed");
        };
        if inbound.send(frame).await.is_err() {
            panic!("testing: cannot push {event:?} on {topic:?}: the session has ended");
        }
    }

    /// The first received frame `wanted` accepts (earlier ones stay
    /// queued), waiting up to the timeout; a readable panic otherwise.
    async fn expect(&mut self, what: &str, wanted: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some(index) = self.received.iter().position(&wanted) {
                if let Some(frame) = self.received.remove(index) {
                    return frame;
                }
            }
            match tokio::time::timeout_at(deadline, self.next_frame()).await {
                Ok(Some(frame)) => self.received.push_back(frame),
                Ok(None) => panic!(
                    "expected {what}, but the connection ended; received meanwhile: {:?}",
                    self.received
                ),
                Err(_) => panic!(
                    "expected {what} within {:?}; received meanwhile: {:?}",
                    self.timeout, self.received
                ),
            }
        }
    }

    /// The next frame the session wrote, decoded as phoenix.js would.
    async fn next_frame(&mut self) -> Option<ServerFrame> {
        let frame = self.outbound.recv().await?;
        let decoded = match &frame {
            WireFrame::Text(text) => decode_server_text(text),
            WireFrame::Binary(bytes) => decode_server_binary(bytes.clone()),
        };
        match decoded {
            Ok(frame) => Some(frame),
            Err(error) => panic!("testing: the server wrote an undecodable frame: {error}"),
        }
    }
}
