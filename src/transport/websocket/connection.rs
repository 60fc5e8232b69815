//! One upgraded websocket: a single task that runs the session (which reads
//! the socket) and the writer (which drains the session's outbound queue),
//! then sends the close frame the session's end maps to.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use fawkes_protocol::Serializer;
use futures_util::stream::SplitSink;
use futures_util::{FutureExt, Sink, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::endpoint::Shared;
use crate::session::{self, DisconnectReason, InFrame, QueueReceiver, WireFrame};
use crate::socket::{Connected, Socket};

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// How long to wait for a close frame to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a websocket can run over: the TCP stream, or hyper's upgraded
/// connection when it cannot be unwrapped.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The future that runs one websocket connection to its end.
pub(super) fn run<S: Io>(
    ws: WebSocketStream<S>,
    socket: Arc<Socket>,
    shared: &Shared,
    serializer: Serializer,
    connected: Connected,
) -> Connection {
    let idle = socket.options.idle_timeout;
    let (sink, stream) = ws.split();
    let inbound = WsInbound {
        stream,
        idle,
        deadline: tokio::time::Instant::now() + idle,
    };
    let (session, outbound) = session::prepare(socket, shared, serializer, connected, inbound);
    let (close_tx, close_rx) = oneshot::channel();
    Connection {
        session: Box::pin(session),
        writer: Box::pin(write(sink, outbound, close_rx)),
        close: Some(close_tx),
        writer_done: false,
        give_up: None,
    }
}

/// The session and the writer side by side, so neither waits on the other.
/// A plain struct rather than an async fn: it holds each part once.
pub(super) struct Connection {
    session: Boxed<DisconnectReason>,
    writer: Boxed<()>,
    /// Tells the writer how to close; taken when the session ends.
    close: Option<oneshot::Sender<Option<u16>>>,
    writer_done: bool,
    /// After the session ends: how long the writer may take to close.
    give_up: Option<Pin<Box<Sleep>>>,
}

impl Future for Connection {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if !this.writer_done && this.writer.as_mut().poll(cx).is_ready() {
            this.writer_done = true;
        }
        if let Some(close) = this.close.take() {
            match this.session.as_mut().poll(cx) {
                Poll::Pending => {
                    this.close = Some(close);
                    return Poll::Pending;
                }
                Poll::Ready(reason) => {
                    let _ = close.send(reason.close_code());
                    // A client that does not read cannot hold the task.
                    this.give_up = Some(Box::pin(tokio::time::sleep(2 * CLOSE_TIMEOUT)));
                    if !this.writer_done && this.writer.as_mut().poll(cx).is_ready() {
                        this.writer_done = true;
                    }
                }
            }
        }
        if this.writer_done {
            return Poll::Ready(());
        }
        match &mut this.give_up {
            Some(give_up) => give_up.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// The reading half of a websocket as a session's frame source: the
/// session reads the socket itself (no reader task, no inbound queue), and
/// the idle timeout runs from the last frame received.
struct WsInbound<S> {
    stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    idle: Duration,
    deadline: tokio::time::Instant,
}

impl<S: Io> session::InboundSource for WsInbound<S> {
    async fn next_frame(&mut self) -> Result<InFrame, DisconnectReason> {
        loop {
            let message = match tokio::time::timeout_at(self.deadline, self.stream.next()).await {
                Err(_) => {
                    tracing::info!("closing idle websocket");
                    return Err(DisconnectReason::IdleTimeout);
                }
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Err(DisconnectReason::ClientClosed)
                }
                Ok(Some(Err(error))) => {
                    tracing::warn!(%error, "closing websocket: protocol error");
                    return Err(DisconnectReason::WebSocket(error));
                }
                Ok(Some(Ok(message))) => message,
            };
            self.deadline = tokio::time::Instant::now() + self.idle;
            match message {
                Message::Text(text) => return Ok(InFrame::Text(text)),
                Message::Binary(bytes) => return Ok(InFrame::Binary(bytes)),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_) => {}
            }
        }
    }
}

/// Write queued frames in batches, one flush per batch; on the close
/// signal, send the close frame (if any) and close the socket.
async fn write<S: Io>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbound: QueueReceiver<WireFrame>,
    mut close: oneshot::Receiver<Option<u16>>,
) {
    let Some(code) =
        std::future::poll_fn(|cx| poll_write(&mut sink, &mut outbound, &mut close, cx)).await
    else {
        return;
    };
    // Boxed: only a closing connection needs room for this.
    Box::pin(async move {
        if let Some(code) = code {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            };
            let closing = sink.send(Message::Close(Some(frame)));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    })
    .await;
}

/// Move frames from `outbound` to `sink` until the close signal: `Ready(Some(code))`
/// to close (with a close frame when `code` is set), `Ready(None)` when the
/// socket failed.
fn poll_write<S: Io>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    outbound: &mut QueueReceiver<WireFrame>,
    close: &mut oneshot::Receiver<Option<u16>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Option<u16>>> {
    loop {
        if let Poll::Ready(code) = close.poll_unpin(cx) {
            return Poll::Ready(Some(code.ok().flatten()));
        }
        let mut written = 0;
        while written < WRITE_BATCH {
            if ready!(Pin::new(&mut *sink).poll_ready(cx)).is_err() {
                return Poll::Ready(None);
            }
            match outbound.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    if Pin::new(&mut *sink).start_send(to_message(frame)).is_err() {
                        return Poll::Ready(None);
                    }
                    written += 1;
                }
                // The session is gone: flush, then wait for the close signal.
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if ready!(Pin::new(&mut *sink).poll_flush(cx)).is_err() {
            return Poll::Ready(None);
        }
        if written < WRITE_BATCH {
            // Drained: woken again by the queue or the close signal.
            return Poll::Pending;
        }
    }
}

fn to_message(frame: WireFrame) -> Message {
    match frame {
        WireFrame::Text(text) => Message::Text(text),
        WireFrame::Binary(bytes) => Message::Binary(bytes),
    }
}
