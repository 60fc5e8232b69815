//! The bare ceiling: a tokio-tungstenite server with the same fan-out shape
//! as a Phoenix server but no Phoenix protocol.
//!
//! Clients connect to `/socket/websocket`. A text frame containing
//! `"phx_join"` subscribes the connection to the one group and is answered
//! with a valid V2 reply (`[join_ref, ref, topic, "phx_reply",
//! {"status":"ok","response":{}}]`), and so is a heartbeat. A frame
//! containing `"broadcast"` is sent unchanged to every subscriber: one
//! shared `Utf8Bytes` cloned into each connection's bounded queue, drained
//! by that connection's writer task in batches. A subscriber whose queue is
//! full is disconnected, like a slow client on fawkes.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::cli::BaselineArgs;
use crate::proc_stats;

/// Pending connections the kernel queues before the accept loop takes them.
const LISTEN_BACKLOG: u32 = 4096;
/// Frames written before one flush (as in fawkes' websocket transport).
const WRITE_BATCH: usize = 64;

/// One subscriber: its queue, and how to tell it to go away.
struct Subscriber {
    queue: mpsc::Sender<Message>,
    kick: Arc<Notify>,
}

/// The single fan-out group and the server's counters.
#[derive(Default)]
struct Group {
    subscribers: Mutex<HashMap<u64, Subscriber>>,
    next_id: AtomicU64,
    connections: AtomicU64,
    broadcasts: AtomicU64,
    deliveries: AtomicU64,
    overflows: AtomicU64,
}

impl Group {
    fn subscribe(&self, id: u64, queue: mpsc::Sender<Message>, kick: Arc<Notify>) {
        self.lock().insert(id, Subscriber { queue, kick });
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `text` on every subscriber without waiting; drop the full ones.
    fn fan_out(&self, text: Utf8Bytes) {
        self.broadcasts.fetch_add(1, Ordering::Relaxed);
        let mut subscribers = self.lock();
        let mut delivered = 0;
        let mut full = Vec::new();
        for (id, subscriber) in subscribers.iter() {
            match subscriber.queue.try_send(Message::Text(text.clone())) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => full.push(*id),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for id in full {
            if let Some(subscriber) = subscribers.remove(&id) {
                subscriber.kick.notify_one();
                self.overflows.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.deliveries.fetch_add(delivered, Ordering::Relaxed);
    }
}

/// Serve until Ctrl-C or `--max-seconds`.
pub(crate) async fn serve(args: &BaselineArgs) -> io::Result<()> {
    if !args.host.is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the baseline server binds loopback addresses only",
        ));
    }
    let fd_limit = proc_stats::raise_fd_limit()?;
    let listener = listen(SocketAddr::new(args.host, args.port))?;
    eprintln!(
        "baseline-server listening on ws://{}/socket/websocket (pid {}, fd limit {fd_limit}, queue {})",
        listener.local_addr()?,
        std::process::id(),
        args.queue
    );
    let group = Arc::new(Group::default());
    let deadline = tokio::time::sleep(Duration::from_secs(args.max_seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(connection(stream, Arc::clone(&group), args.queue.max(1)));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    eprintln!(
        "baseline-server stopping: {} connections, {} broadcasts, {} deliveries queued, {} slow subscribers dropped",
        group.connections.load(Ordering::Relaxed),
        group.broadcasts.load(Ordering::Relaxed),
        group.deliveries.load(Ordering::Relaxed),
        group.overflows.load(Ordering::Relaxed),
    );
    Ok(())
}

/// Listen on `addr` with a backlog deep enough for connection bursts.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Only `/socket/websocket` upgrades.
#[allow(clippy::result_large_err)] // the signature tungstenite's callback requires
fn check_path(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() == "/socket/websocket" {
        return Ok(response);
    }
    let mut refusal = ErrorResponse::new(Some("not found".into()));
    *refusal.status_mut() = StatusCode::NOT_FOUND;
    Err(refusal)
}

async fn connection(stream: TcpStream, group: Arc<Group>, queue: usize) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024);
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check_path, Some(config)).await
    else {
        return;
    };
    group.connections.fetch_add(1, Ordering::Relaxed);
    let id = group.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(queue);
    let kick = Arc::new(Notify::new());

    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            sink.feed(message).await?;
            for _ in 1..WRITE_BATCH {
                match rx.try_recv() {
                    Ok(message) => sink.feed(message).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await?;
        }
        let _ = sink.close().await;
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    });

    loop {
        let message = tokio::select! {
            _ = kick.notified() => break,
            message = stream.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        if text.as_str().contains("\"phx_join\"") {
            group.subscribe(id, tx.clone(), Arc::clone(&kick));
            if !reply(&tx, text.as_str()).await {
                break;
            }
        } else if text.as_str().contains("\"heartbeat\"") {
            if !reply(&tx, text.as_str()).await {
                break;
            }
        } else if text.as_str().contains("\"broadcast\"") {
            group.fan_out(text);
        }
    }
    group.unsubscribe(id);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

/// Queue the `ok` reply to a V2 frame; false when the connection is gone.
async fn reply(tx: &mpsc::Sender<Message>, text: &str) -> bool {
    let Some(reply) = reply_to(text) else {
        return true;
    };
    tx.send(Message::text(reply)).await.is_ok()
}

/// `[join_ref, ref, topic, "phx_reply", {"status":"ok","response":{}}]`
/// for the V2 frame `text`, or `None` when it is not a V2 array.
fn reply_to(text: &str) -> Option<String> {
    let Ok(Value::Array(fields)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let mut fields = fields.into_iter();
    let join_ref = fields.next()?;
    let ref_ = fields.next()?;
    let topic = fields.next()?;
    Some(json!([join_ref, ref_, topic, "phx_reply", {"status": "ok", "response": {}}]).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fawkes_protocol::client::{decode_server_text, ServerFrame};

    #[test]
    fn replies_are_valid_v2_replies() {
        let reply = reply_to(r#"["1","1","room:fanout","phx_join",{}]"#).unwrap();
        match decode_server_text(&reply).unwrap() {
            ServerFrame::Reply(r) => {
                assert_eq!(r.status, "ok");
                assert_eq!(r.ref_.as_deref(), Some("1"));
                assert_eq!(r.topic, "room:fanout");
            }
            other => panic!("not a reply: {other:?}"),
        }
        assert_eq!(reply_to("not json"), None);
    }
}
