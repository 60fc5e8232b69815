//! Client connections: loopback source address spreading, the websocket
//! handshake, the few Phoenix V2 frames a load generator sends (join,
//! heartbeat, push), and a read loop that heartbeats until told to stop.
//!
//! One TCP connection is identified by its (source IP, source port, server
//! IP, server port) tuple, so one source address gives at most ~28k
//! connections to one server port. Binding each socket to 127.0.0.x:0
//! before connecting lifts that limit by the number of source addresses.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use fawkes_protocol::client::{decode_server_frame, encode_client_push, ServerFrame};
use fawkes_protocol::{Frame, Message as PhxMessage, Payload};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::cli::Target;

/// An open client websocket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Why a connection or a join failed.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// TCP connect (or bind) failed.
    Io(io::Error),
    /// The websocket handshake failed or the server refused the upgrade.
    Ws(tungstenite::Error),
    /// No answer in time.
    Timeout(&'static str),
    /// The join was answered with a non-`ok` status.
    JoinRefused(String),
    /// The connection ended before the expected reply.
    Closed,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "tcp: {e}"),
            ConnError::Ws(tungstenite::Error::Http(response)) => {
                write!(f, "websocket upgrade refused: HTTP {}", response.status())
            }
            ConnError::Ws(e) => write!(f, "websocket: {e}"),
            ConnError::Timeout(what) => write!(f, "timeout waiting for {what}"),
            ConnError::JoinRefused(status) => write!(f, "join replied {status:?}"),
            ConnError::Closed => f.write_str("connection closed by the server"),
        }
    }
}

/// Opens connections to one target (or to the nodes of a cluster in
/// turn) from a rotating set of loopback source addresses.
#[derive(Debug)]
pub(crate) struct Connector {
    /// The first is the primary target; connection `i` goes to `i mod n`.
    targets: Vec<Target>,
    sources: Vec<Ipv4Addr>,
    timeout: Duration,
}

impl Connector {
    /// Connections spread over `targets` (at least one; the first is the
    /// primary) from 127.0.0.1..=127.0.0.`sources` (IPv4 targets only; an
    /// IPv6 loopback target uses the default source).
    pub(crate) fn new(targets: Vec<Target>, sources: u8, timeout: Duration) -> Connector {
        let ipv4 = targets
            .first()
            .is_some_and(|t| matches!(t.addr.ip(), IpAddr::V4(_)));
        let sources = match ipv4 {
            true => (1..=sources.max(1))
                .map(|i| Ipv4Addr::new(127, 0, 0, i))
                .collect(),
            false => Vec::new(),
        };
        Connector {
            targets,
            sources,
            timeout,
        }
    }

    /// The primary target (where publishers go).
    pub(crate) fn target(&self) -> &Target {
        &self.targets[0]
    }

    /// The node (0 for the primary) connection number `index` goes to.
    pub(crate) fn node_of(&self, index: usize) -> usize {
        index % self.targets.len()
    }

    /// The target of connection number `index`.
    fn target_of(&self, index: usize) -> &Target {
        &self.targets[index % self.targets.len()]
    }

    /// The smallest connection number at or after `index` that goes to
    /// the primary target.
    pub(crate) fn primary_index(&self, index: usize) -> usize {
        index.next_multiple_of(self.targets.len())
    }

    /// The timeout used for each connect and each awaited reply.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A TCP connection for connection number `index`, from source address
    /// `index mod K`.
    pub(crate) async fn tcp(&self, index: usize) -> Result<TcpStream, ConnError> {
        self.tcp_with(index, None).await
    }

    /// Like [`Connector::tcp`], with the socket's receive buffer set to
    /// `recv_buffer` bytes first when given (a slow client's small window).
    pub(crate) async fn tcp_with(
        &self,
        index: usize,
        recv_buffer: Option<u32>,
    ) -> Result<TcpStream, ConnError> {
        let target = self.target_of(index);
        let socket = match target.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(ConnError::Io)?;
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes).map_err(ConnError::Io)?;
        }
        if !self.sources.is_empty() {
            let source = self.sources[index % self.sources.len()];
            socket
                .bind(SocketAddr::new(IpAddr::V4(source), 0))
                .map_err(ConnError::Io)?;
        }
        let stream = tokio::time::timeout(self.timeout, socket.connect(target.addr))
            .await
            .map_err(|_| ConnError::Timeout("tcp connect"))?
            .map_err(ConnError::Io)?;
        stream.set_nodelay(true).map_err(ConnError::Io)?;
        Ok(stream)
    }

    /// Connection number `index`: TCP connect plus the websocket handshake
    /// on the socket path with `vsn=2.0.0` and the `query` parameters.
    pub(crate) async fn connect(&self, index: usize, query: &str) -> Result<Ws, ConnError> {
        self.connect_with(index, query, None).await
    }

    /// Like [`Connector::connect`], with a receive buffer of
    /// `recv_buffer` bytes when given.
    pub(crate) async fn connect_with(
        &self,
        index: usize,
        query: &str,
        recv_buffer: Option<u32>,
    ) -> Result<Ws, ConnError> {
        let stream = self.tcp_with(index, recv_buffer).await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(8 * 1024);
        let handshake = tokio_tungstenite::client_async_with_config(
            self.target_of(index).ws_url(query),
            stream,
            Some(config),
        );
        let (ws, _response) = tokio::time::timeout(self.timeout, handshake)
            .await
            .map_err(|_| ConnError::Timeout("websocket handshake"))?
            .map_err(ConnError::Ws)?;
        Ok(ws)
    }
}

/// The V2 text frame `[join_ref, ref, topic, event, payload]`.
pub(crate) fn push_frame(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    payload: Value,
) -> String {
    let msg = PhxMessage {
        join_ref: join_ref.map(str::to_owned),
        ref_: ref_.map(str::to_owned),
        topic: topic.to_owned(),
        event: event.to_owned(),
        payload: Payload::Json(payload),
    };
    match encode_client_push(&msg) {
        Ok(Frame::Text(text)) => text,
        // A JSON payload always encodes as text; keep going with the plain
        // array form if the codec ever says otherwise.
        _ => Value::Array(vec![
            msg.join_ref.map_or(Value::Null, Value::String),
            msg.ref_.map_or(Value::Null, Value::String),
            Value::String(msg.topic),
            Value::String(msg.event),
            msg.payload.as_json().cloned().unwrap_or(Value::Null),
        ])
        .to_string(),
    }
}

/// Send `phx_join` for `topic` (join ref = ref = `join_ref`) and wait for
/// its reply; returns the reply's response. Frames before the reply are
/// skipped; frames after it stay in the stream.
pub(crate) async fn join(
    ws: &mut Ws,
    topic: &str,
    join_ref: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, ConnError> {
    let frame = push_frame(Some(join_ref), Some(join_ref), topic, "phx_join", params);
    ws.send(Message::text(frame)).await.map_err(ConnError::Ws)?;
    let wait = async {
        while let Some(message) = ws.next().await {
            let text = match message.map_err(ConnError::Ws)? {
                Message::Text(text) => text,
                Message::Close(_) => return Err(ConnError::Closed),
                _ => continue,
            };
            let frame = Frame::Text(text.as_str().to_owned());
            if let Ok(ServerFrame::Reply(reply)) = decode_server_frame(&frame) {
                if reply.ref_.as_deref() == Some(join_ref) && reply.topic == topic {
                    if reply.status == "ok" {
                        return Ok(reply.response.as_json().cloned().unwrap_or(Value::Null));
                    }
                    return Err(ConnError::JoinRefused(reply.status));
                }
            }
        }
        Err(ConnError::Closed)
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| ConnError::Timeout("join reply"))?
}

/// Connect as connection `index` and join `topic` with `params`.
pub(crate) async fn connect_and_join(
    connector: &Connector,
    index: usize,
    query: &str,
    topic: &str,
    params: Value,
) -> Result<Ws, ConnError> {
    let mut ws = connector.connect(index, query).await?;
    join(&mut ws, topic, "1", params, connector.timeout()).await?;
    Ok(ws)
}

/// How a held connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The stop signal came.
    Stopped,
    /// The server closed the connection (with this close code, if any).
    ServerClosed(Option<u16>),
    /// Reading or writing failed.
    Failed(String),
}

/// Read frames, handing each text frame to `on_text`, and send a Phoenix
/// heartbeat every `heartbeat`, until `stop` turns true or the connection
/// ends. The caller closes the connection afterwards.
pub(crate) async fn hold(
    ws: &mut Ws,
    stop: &mut watch::Receiver<bool>,
    heartbeat: Duration,
    mut on_text: impl FnMut(&str),
) -> Ended {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            _ = stopped(stop) => return Ended::Stopped,
            _ = ticker.tick() => {
                beats += 1;
                let frame = push_frame(None, Some(&format!("hb{beats}")), "phoenix", "heartbeat", Value::Object(Default::default()));
                if let Err(e) = ws.send(Message::text(frame)).await {
                    return Ended::Failed(e.to_string());
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => on_text(text.as_str()),
                Some(Ok(Message::Close(frame))) => return Ended::ServerClosed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::Failed(e.to_string()),
                None => return Ended::ServerClosed(None),
            },
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Close politely, waiting at most half a second.
pub(crate) async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
}

/// Failure messages counted by kind, for the report.
#[derive(Debug, Default)]
pub(crate) struct Errors(Mutex<BTreeMap<String, u64>>);

impl Errors {
    /// Count one failure.
    pub(crate) fn add(&self, error: impl fmt::Display) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(error.to_string()).or_default() += 1;
    }

    /// Failures counted so far.
    pub(crate) fn total(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// `count× message` for the most frequent kinds, or empty.
    pub(crate) fn summary(&self) -> String {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut kinds: Vec<_> = map.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        kinds
            .iter()
            .take(4)
            .map(|(message, count)| format!("{count}x {message}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spreads_connections_over_the_nodes_and_publishes_on_the_first() {
        let targets = [
            "http://127.0.0.1:4001",
            "http://127.0.0.1:4002",
            "http://127.0.0.1:4003",
        ]
        .iter()
        .map(|url| crate::cli::Target::parse(url, "/socket").unwrap())
        .collect();
        let connector = Connector::new(targets, 8, Duration::from_secs(1));
        let nodes: Vec<usize> = (0..6).map(|i| connector.node_of(i)).collect();
        assert_eq!(nodes, [0, 1, 2, 0, 1, 2]);
        assert_eq!(connector.target_of(4).addr.port(), 4002);
        let publisher = connector.primary_index(5000);
        assert!(publisher >= 5000);
        assert_eq!(connector.node_of(publisher), 0);
        assert_eq!(connector.target().addr.port(), 4001);
    }

    #[test]
    fn writes_v2_push_frames() {
        assert_eq!(
            push_frame(Some("1"), Some("1"), "room:a", "phx_join", json!({})),
            r#"["1","1","room:a","phx_join",{}]"#
        );
        assert_eq!(
            push_frame(None, Some("hb1"), "phoenix", "heartbeat", json!({})),
            r#"[null,"hb1","phoenix","heartbeat",{}]"#
        );
    }

    #[test]
    fn counts_errors_by_kind() {
        let errors = Errors::default();
        errors.add("a");
        errors.add("b");
        errors.add("b");
        assert_eq!(errors.total(), 3);
        assert_eq!(errors.summary(), "2x b; 1x a");
    }
}
