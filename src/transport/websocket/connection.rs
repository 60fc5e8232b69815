//! One upgraded websocket as a single future (one task): the session's
//! [`Driver`] reads the socket, the writer drains the session's outbound
//! queue into the same socket, and at the end the close frame the session's
//! end maps to goes out.
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
            if this.write_failed {
                return Poll::Ready(());
            }
            this.closing = Some(match reason.close_code() {
                Some(code) => Closing::Frame(code),
                None => Closing::Shutdown,
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
        match poll_close(&mut inbound.ws, &mut this.closing, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(()),
        }
    }
}

/// Queue the close frame (if any), flush, and close the socket.
fn poll_close<S: Io>(
    ws: &mut WebSocketStream<S>,
    closing: &mut Option<Closing>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), tungstenite::Error>> {
    let mut ws = Pin::new(ws);
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
                    tracing::warn!(%error, "closing websocket: protocol error");
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
