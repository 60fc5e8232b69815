//! Entry points for the `fuzz/` crate, compiled only with `--cfg fuzzing`
//! (as `cargo fuzz` builds) and in unit tests: the paths a client's bytes
//! take that are not public API, the longpoll body parser and a session's
//! frame handling. The `smoke` tests below feed them mutated frames in
//! every `cargo test`: seconds of random input, not coverage-guided
//! fuzzing, which `fuzz/README.md` explains how to run.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::prelude::*;
use crate::presence::{Presence, PresenceOptions};
use crate::pubsub::PubSub;
use crate::session::InFrame;
use crate::session::Services;
use crate::{Connected, Serializer, Socket, SocketOptions};

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
                state: Default::default(),
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
            return Err(ChannelError::reason("refused"));
        }
        if let Some(presence) = socket.presence() {
            let mut meta = serde_json::Map::new();
            meta.insert("params".into(), json!(params_summary(&params)));
            let _ = presence.track("user", meta);
        }
        Ok(params)
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "echo" => reply_ok(payload),
            "broadcast" => {
                socket.broadcast("broadcast", payload);
                noreply()
            }
            "push" => {
                let _ = socket.push("pushed", payload);
                noreply()
            }
            "stop" => stop(),
            _ => Err(ChannelError::reason("unknown")),
        }
    }
}

fn params_summary(params: &Payload) -> &'static str {
    match params {
        Payload::Json(_) | Payload::RawJson(_) => "json",
        Payload::Binary(_) => "binary",
    }
}

#[cfg(test)]
mod smoke {
    //! A short, deterministic random run through every entry point.

    use super::{longpoll_body, session_frames, ClientFrame};
    use crate::Serializer;

    /// Frames a phoenix.js client sends, V2 and V1, to mutate.
    const SEEDS: &[&str] = &[
        r#"["1","1","room:lobby","phx_join",{"user":"a"}]"#,
        r#"["1","2","room:lobby","echo",{"body":"hi"}]"#,
        r#"["1","3","room:lobby","broadcast",{"n":1}]"#,
        r#"["1","4","room:lobby","push",[1,2.5,null,true,"x"]]"#,
        r#"["1","5","room:lobby","phx_leave",{}]"#,
        r#"[null,"6","phoenix","heartbeat",{}]"#,
        r#"["2","7","room:x:refuse","phx_join",{}]"#,
        r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}"#,
        r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}"#,
    ];

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A seed (or two spliced), then a few byte-level mutations.
    fn mutated(rng: &mut Rng) -> Vec<u8> {
        let mut bytes = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
        if rng.below(4) == 0 {
            let other = SEEDS[rng.below(SEEDS.len())].as_bytes();
            let cut = rng.below(bytes.len());
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[rng.below(other.len())..]);
        }
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                2 => {
                    const PUNCTUATION: &[u8] = b"[]{}\",:0-9e\x00\xff";
                    bytes.insert(at, PUNCTUATION[rng.below(PUNCTUATION.len())]);
                }
                3 => bytes.truncate(at),
                _ => bytes.insert(at, rng.next() as u8),
            }
        }
        bytes
    }

    /// A V2 binary frame: kind, lengths, fields, payload, in random sizes.
    fn binary(rng: &mut Rng) -> Vec<u8> {
        let mut bytes = vec![rng.below(4) as u8];
        let header: Vec<u8> = (0..4).map(|_| rng.below(12) as u8).collect();
        bytes.extend_from_slice(&header);
        for _ in 0..rng.below(40) {
            bytes.push(b"room:lobby1echo"[rng.below(15)]);
        }
        bytes
    }

    #[test]
    fn the_decoders_survive_mutated_frames() {
        let mut rng = Rng(0x5eed_f00d);
        let (mut decoded, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let bytes = mutated(&mut rng);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                for serializer in [Serializer::V2, Serializer::V1] {
                    if let Ok(message) = serializer.decode_text(text) {
                        decoded += 1;
                        let _ = serializer.encode_message(&message);
                    } else {
                        refused += 1;
                    }
                }
            }
            let frame = binary(&mut rng);
            if let Ok(message) = Serializer::V2.decode_binary(bytes::Bytes::from(frame)) {
                let _ = Serializer::V2.encode_message(&message);
            }
            let content_type = ["application/ndjson", "application/json", "text/plain"];
            let _ = longpoll_body(Some(content_type[rng.below(3)]), &bytes);
        }
        // Both outcomes are exercised, or the mutations are too tame (or
        // too wild) to be worth running.
        assert!(
            decoded > 1_000 && refused > 1_000,
            "{decoded} decoded, {refused} refused"
        );
    }

    #[test]
    fn a_session_survives_mutated_frames() {
        let mut rng = Rng(0x00fa_3ce5);
        for _ in 0..1_500 {
            let frames = (0..=rng.below(6))
                .map(|_| {
                    if rng.below(5) == 0 {
                        ClientFrame::Binary(binary(&mut rng))
                    } else {
                        let bytes = mutated(&mut rng);
                        ClientFrame::Text(String::from_utf8_lossy(&bytes).into_owned())
                    }
                })
                .collect();
            let serializer = if rng.below(3) == 0 {
                Serializer::V1
            } else {
                Serializer::V2
            };
            session_frames(serializer, frames);
        }
    }
}
