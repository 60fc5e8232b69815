//! WebSocket client connections for replay.
//!
//! Each open connection has a background reader task that forwards what the
//! server sends (text, binary, close with its code, or a TCP drop) into one
//! channel shared by all connections of a transcript, stamped with the
//! arrival time. Pings and pongs are answered by tungstenite and not
//! reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::transcript::Frame;

/// The close code reported for a close frame that carries no code (RFC 6455
/// "no status received").
pub const NO_STATUS_CODE: u16 = 1005;

/// A websocket connection error.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The handshake did not finish in time.
    #[error("websocket handshake timed out after {0:?}")]
    Timeout(Duration),
    /// The handshake or a send failed.
    #[error("websocket: {0}")]
    Protocol(#[from] tungstenite::Error),
}

/// What the server sent on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The connection was closed by the server: close code, or `None` when
    /// the TCP connection ended without a close frame; and the reason text.
    Closed(Option<u16>, String),
}

/// An [`Observed`] event with its connection and arrival time.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The connection name from the transcript.
    pub conn: String,
    /// When the reader task received it.
    pub at: Instant,
    /// What was received.
    pub what: Observed,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open websocket connection.
#[derive(Debug)]
pub struct WsConn {
    sink: SplitSink<Ws, Message>,
    closing: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

/// The result of a handshake.
#[derive(Debug)]
pub enum Connected {
    /// The server switched protocols (101).
    Open(WsConn),
    /// The server answered the upgrade with this HTTP status.
    Refused(u16),
}

/// Opens a websocket at `url` and starts its reader task, which reports on
/// `tx` under the name `conn`.
pub async fn connect(
    url: &str,
    conn: &str,
    tx: UnboundedSender<Observation>,
    timeout: Duration,
) -> Result<Connected, WsError> {
    let attempt = tokio_tungstenite::connect_async_with_config(url, None, true);
    let result = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| WsError::Timeout(timeout))?;
    let stream = match result {
        Ok((stream, _response)) => stream,
        Err(tungstenite::Error::Http(response)) => {
            return Ok(Connected::Refused(response.status().as_u16()))
        }
        Err(e) => return Err(e.into()),
    };
    let (sink, stream) = stream.split();
    let closing = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_loop(stream, conn.to_owned(), tx, Arc::clone(&closing)));
    Ok(Connected::Open(WsConn {
        sink,
        closing,
        reader,
    }))
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    conn: String,
    tx: UnboundedSender<Observation>,
    closing: Arc<AtomicBool>,
) {
    let mut closed = false;
    let report = |what: Observed| {
        // The runner may have finished with this transcript; nothing to do then.
        let _ = tx.send(Observation {
            conn: conn.clone(),
            at: Instant::now(),
            what,
        });
    };
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => report(Observed::Text(text.as_str().to_owned())),
            Some(Ok(Message::Binary(data))) => report(Observed::Binary(data.to_vec())),
            Some(Ok(Message::Close(frame))) => {
                if !closed && !closing.load(Ordering::SeqCst) {
                    let (code, reason) = match frame {
                        Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                        None => (NO_STATUS_CODE, String::new()),
                    };
                    report(Observed::Closed(Some(code), reason));
                }
                closed = true;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if !closed && !closing.load(Ordering::SeqCst) {
                    report(Observed::Closed(None, e.to_string()));
                }
                break;
            }
            None => {
                if !closed && !closing.load(Ordering::SeqCst) {
                    report(Observed::Closed(None, String::new()));
                }
                break;
            }
        }
    }
}

impl WsConn {
    /// Sends one frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), WsError> {
        let message = match frame {
            Frame::Text(text) => Message::text(text.as_str()),
            Frame::Binary(data) => Message::binary(data.clone()),
        };
        self.sink.send(message).await?;
        Ok(())
    }

    /// Starts a client close with `code`. The server's answering close (and
    /// the end of the stream) is not reported as an observation.
    pub async fn close(&mut self, code: u16) -> Result<(), WsError> {
        self.closing.store(true, Ordering::SeqCst);
        self.sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            })))
            .await?;
        Ok(())
    }

    /// Closes (best effort, code 1000) and waits up to `grace` for the server
    /// to finish the closing handshake, then drops the connection.
    pub async fn shutdown(mut self, grace: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(grace, async {
            let _ = self
                .sink
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                })))
                .await;
            let _ = (&mut self.reader).await;
        })
        .await;
        self.reader.abort();
    }
}

impl Drop for WsConn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
