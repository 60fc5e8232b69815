//! One upgraded websocket as a single future (one task): the session's
//! [`Driver`] reads the socket, the writer drains the session's outbound
//! queue into the same socket, and at the end the frames the session queued
//! before it ended, then the close frame its end maps to, go out.
//!
//! A plain state machine rather than an async fn: an idle connection holds
//! its socket, its session and one timer, nothing twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use fawkes_protocol::Serializer;
use futures_util::{Sink, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::wakeups::{Wakeups, SESSION, WRITER};
use crate::endpoint::limits::ConnectionPermit;
use crate::session::Services;
use crate::session::{self, DisconnectReason, Driver, InFrame, OutboundReceiver, WireFrame};
use crate::socket::{Connected, Socket};

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// How long a closing connection may take to send its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a websocket can run over: the TCP stream, or hyper's upgraded
/// connection when it cannot be unwrapped.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The future that runs one websocket connection to its end.
pub(super) fn run<S: Io>(
    ws: WebSocketStream<S>,
    socket: Arc<Socket>,
    shared: &Services,
    serializer: Serializer,
    connected: Connected,
    permit: ConnectionPermit,
) -> Connection<S> {
    let idle = socket.options.idle_timeout;
    let inbound = WsInbound {
        ws,
        idle,
        timer: Box::pin(tokio::time::sleep(idle)),
    };
    let transport = crate::metrics::Transport::WebSocket;
    let (driver, outbound) =
        session::prepare(socket, shared, serializer, connected, inbound, transport);
    Connection {
        driver,
        outbound,
        wakeups: Wakeups::new(),
        write_failed: false,
        closing: None,
        _permit: permit,
    }
}

/// One websocket connection.
pub(super) struct Connection<S> {
    driver: Driver<WsInbound<S>>,
    outbound: OutboundReceiver,
    /// Which half a wake-up is for.
    wakeups: Wakeups,
    /// The socket refused a write; the reading side will see it end.
    write_failed: bool,
    /// Set once the session ended.
    closing: Option<Closing>,
    /// This connection's place in the endpoint's connection count, freed
    /// when the connection is dropped. A field rather than an async wrapper
    /// around the connection: an `async fn` holding the connection future
    /// would keep room for it twice (+~560 B per idle connection, measured).
    _permit: ConnectionPermit,
}

/// The close handshake after the session ended.
enum Closing {
    /// What the session queued before it ended is still to be written
    /// (its queue is sealed), then a close frame with this code, if any.
    Drain(Option<u16>),
    /// A close frame with this code is still to be queued.
    Frame(u16),
    /// Flushing and closing the socket.
    Shutdown,
}

impl<S: Io> Future for Connection<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.closing.is_none() {
            let woken = this.wakeups.take(cx);
            if woken & WRITER != 0 && !this.write_failed {
                let mut writer_cx = Context::from_waker(this.wakeups.waker(WRITER));
                let ws = &mut this.driver.inbound_mut().ws;
                if let Err(error) = poll_write(ws, &mut this.outbound, &mut writer_cx) {
                    tracing::debug!(%error, "websocket write failed");
                    this.write_failed = true;
                }
            }
            if woken & SESSION == 0 {
                return Poll::Pending;
            }
            let mut session_cx = Context::from_waker(this.wakeups.waker(SESSION));
            let reason = ready!(this.driver.poll_session(&mut session_cx));
            // Killed: dropped with no close frame, as a killed transport.
            if this.write_failed || matches!(reason, DisconnectReason::Killed) {
                return Poll::Ready(());
            }
            this.closing = Some(match (&reason, reason.close_code()) {
                // Nobody reads what would be written.
                (DisconnectReason::ClientClosed, _) => Closing::Shutdown,
                // It does not read: its queue is full, the close goes first.
                (DisconnectReason::SlowClient, Some(code)) => Closing::Frame(code),
                // Frames queued before the end go out before the close, as
                // Phoenix writes them (a `disconnect` sealed the queue where
                // it arrived; any other end seals it now).
                (_, code) => {
                    this.outbound.seal();
                    Closing::Drain(code)
                }
            });
            // A client that does not read cannot hold the task.
            let inbound = this.driver.inbound_mut();
            let deadline = Instant::now() + CLOSE_TIMEOUT;
            inbound.timer.as_mut().reset(deadline);
        }
        let inbound = this.driver.inbound_mut();
        if inbound.timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        match poll_close(&mut inbound.ws, &mut this.outbound, &mut this.closing, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(()),
        }
    }
}

/// Write what the sealed outbound queue still holds, queue the close frame
/// (if any), flush, and close the socket.
fn poll_close<S: Io>(
    ws: &mut WebSocketStream<S>,
    outbound: &mut OutboundReceiver,
    closing: &mut Option<Closing>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), tungstenite::Error>> {
    let mut ws = Pin::new(ws);
    if let Some(Closing::Drain(code)) = *closing {
        loop {
            ready!(ws.as_mut().poll_ready(cx))?;
            match ready!(outbound.poll_recv(cx)) {
                Some(frame) => ws.as_mut().start_send(to_message(frame))?,
                None => break,
            }
        }
        *closing = Some(match code {
            Some(code) => Closing::Frame(code),
            None => Closing::Shutdown,
        });
    }
    if let Some(Closing::Frame(code)) = *closing {
        ready!(ws.as_mut().poll_ready(cx))?;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        ws.as_mut().start_send(Message::Close(Some(frame)))?;
        *closing = Some(Closing::Shutdown);
    }
    ws.poll_close(cx)
}

/// Move queued frames into the socket, one flush per batch; `Ok` once the
/// queue is drained or the socket is full (woken again by either).
fn poll_write<S: Io>(
    ws: &mut WebSocketStream<S>,
    outbound: &mut OutboundReceiver,
    cx: &mut Context<'_>,
) -> Result<(), tungstenite::Error> {
    let mut ws = Pin::new(ws);
    loop {
        let mut written = 0;
        while written < WRITE_BATCH {
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(ready) => ready?,
                Poll::Pending => return Ok(()),
            }
            match outbound.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    ws.as_mut().start_send(to_message(frame))?;
                    written += 1;
                }
                // The session is gone: it ends this connection next.
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if written == 0 {
            return Ok(());
        }
        match ws.as_mut().poll_flush(cx) {
            Poll::Ready(flushed) => flushed?,
            Poll::Pending => return Ok(()),
        }
        if written < WRITE_BATCH {
            return Ok(());
        }
    }
}

fn to_message(frame: WireFrame) -> Message {
    match frame {
        WireFrame::Text(text) => Message::Text(text),
        WireFrame::Binary(bytes) => Message::Binary(bytes),
    }
}

/// The websocket as a session's frame source: the session reads the socket
/// itself (no reader task, no inbound queue), and the idle timeout runs
/// from the last frame received.
pub(super) struct WsInbound<S> {
    ws: WebSocketStream<S>,
    idle: Duration,
    /// The idle deadline; once the session ends, the close deadline.
    timer: Pin<Box<Sleep>>,
}

impl<S: Io> session::InboundSource for WsInbound<S> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<InFrame, DisconnectReason>> {
        loop {
            let message = match self.ws.poll_next_unpin(cx) {
                Poll::Pending => {
                    if self.timer.as_mut().poll(cx).is_ready() {
                        tracing::info!("closing idle websocket");
                        return Poll::Ready(Err(DisconnectReason::IdleTimeout));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) | Poll::Ready(Some(Ok(Message::Close(_)))) => {
                    return Poll::Ready(Err(DisconnectReason::ClientClosed))
                }
                Poll::Ready(Some(Err(error))) => {
                    // A client that vanishes (no close frame, a reset) or
                    // speaks bad websocket is the client's business, not a
                    // server fault: not a WARN line per client.
                    if gone_without_close(&error) {
                        tracing::debug!(%error, "websocket client gone without a close frame");
                    } else {
                        tracing::info!(%error, "closing websocket: protocol error");
                    }
                    return Poll::Ready(Err(DisconnectReason::WebSocket(error)));
                }
                Poll::Ready(Some(Ok(message))) => message,
            };
            let deadline = Instant::now() + self.idle;
            self.timer.as_mut().reset(deadline);
            match message {
                Message::Text(text) => return Poll::Ready(Ok(InFrame::Text(text))),
                Message::Binary(bytes) => return Poll::Ready(Ok(InFrame::Binary(bytes))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_) => {}
            }
        }
    }
}

/// A websocket read error that only means the client went away: the
/// connection was reset or closed without the closing handshake.
fn gone_without_close(error: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        error,
        Error::Io(_)
            | Error::ConnectionClosed
            | Error::AlreadyClosed
            | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use fawkes_protocol::{Payload, Serializer};
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;
    use tokio_util::sync::CancellationToken;

    use super::run;
    use crate::channel::{noreply, Channel, ChannelSocket, HandleResult, JoinResult};
    use crate::endpoint::limits::ConnectionCounter;
    use crate::endpoint::HttpLimits;
    use crate::pubsub::PubSub;
    use crate::session::Services;
    use crate::socket::{Connected, Socket};

    struct Room;

    impl Channel for Room {
        async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelSocket) -> JoinResult {
            Ok(Payload::empty())
        }

        async fn handle_in(&mut self, _: &str, _: Payload, _: &mut ChannelSocket) -> HandleResult {
            noreply()
        }
    }

    /// Accepts every write at once and counts the calls.
    struct CountingIo(Arc<std::sync::atomic::AtomicUsize>);

    impl tokio::io::AsyncRead for CountingIo {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Pending
        }
    }

    impl tokio::io::AsyncWrite for CountingIo {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// What a burst left in a connection's queue goes out in one write
    /// (one `sendto` on a TCP socket), not one per frame.
    #[tokio::test]
    async fn frames_queued_before_the_writer_runs_go_out_in_one_write() {
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let io = CountingIo(writes.clone());
        let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        let (control, _events) = crate::session::SessionControl::new();
        let (outbound, mut frames) = crate::session::Outbound::new(64, control);
        for i in 0..20 {
            let text = format!(r#"[null,null,"room:x","msg",{{"i":{i}}}]"#);
            outbound
                .deliver(crate::session::WireFrame::Text(text.into()))
                .expect("room");
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        super::poll_write(&mut ws, &mut frames, &mut cx).expect("written");
        assert!(frames.try_recv().is_none(), "the queue was drained");
        assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Frames queued before a `disconnect` are written before the close,
    /// even when the socket cannot take them all at once (a 256-byte pipe
    /// here, and more than the websocket's write buffer): Phoenix writes
    /// them first.
    #[tokio::test]
    async fn frames_queued_before_a_disconnect_are_written_before_the_close() {
        let (client_io, server_io) = tokio::io::duplex(256);
        let server_ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let services = Services {
            pubsub: PubSub::new(),
            presence: None,
            shutdown: CancellationToken::new(),
            drain: Default::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            state: Default::default(),
        };
        let socket = Arc::new(Socket::new().channel("room:*", || Room));
        let connected = Connected {
            id: Some("user:1".into()),
            ..Connected::default()
        };
        let counter = ConnectionCounter::new(HttpLimits::default());
        let permit = counter.hand_over(std::net::Ipv4Addr::LOCALHOST.into());
        let connection = tokio::spawn(run(
            server_ws,
            socket,
            &services,
            Serializer::V2,
            connected,
            permit,
        ));
        let join = json!(["1", "1", "room:x", "phx_join", {}]).to_string();
        client.send(Message::text(join)).await.expect("join sent");
        let reply = client.next().await.expect("a frame").expect("readable");
        assert!(reply.to_text().expect("text").contains("phx_reply"));

        // One burst: nothing runs the connection in between (one thread).
        // 400 KB: more than tungstenite's write buffer (128 KiB) takes, so
        // most frames are still in the session's queue when it ends.
        const N: u64 = 50;
        for i in 0..N {
            let payload = Payload::Json(json!({"i": i, "pad": "x".repeat(8_000)}));
            services.pubsub.broadcast("room:x", "msg", payload);
        }
        services
            .pubsub
            .broadcast("user:1", "disconnect", Payload::empty());

        let mut received = Vec::new();
        let close = loop {
            let next = tokio::time::timeout(Duration::from_secs(10), client.next())
                .await
                .expect("the server writes or closes");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("json");
                    received.push(frame[4]["i"].as_u64().expect("a msg"));
                }
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                other => panic!("expected a frame or the close, got {other:?}"),
            }
        };
        assert_eq!(
            received,
            (0..N).collect::<Vec<_>>(),
            "every frame, in order"
        );
        assert_eq!(close, Some(1001));
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .expect("the connection ended")
            .expect("connection task");
    }

    #[test]
    fn a_client_that_vanishes_is_told_apart_from_one_that_speaks_bad_websocket() {
        use tokio_tungstenite::tungstenite::error::ProtocolError;
        use tokio_tungstenite::tungstenite::Error;
        let reset = Error::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert!(super::gone_without_close(&reset));
        let io = Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert!(super::gone_without_close(&io));
        let bad = Error::Protocol(ProtocolError::NonZeroReservedBits);
        assert!(!super::gone_without_close(&bad));
        assert!(!super::gone_without_close(&Error::Utf8(String::new())));
    }
}
