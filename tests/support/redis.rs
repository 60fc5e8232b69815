//! A real `redis-server` for one test: started on a free loopback port with
//! no persistence, restartable on the same port, killed when dropped.
//!
//! Ports come from 20000–29999, below Linux's ephemeral range (where
//! `bind(0)` and outgoing connections take theirs), one after another in a
//! process from an offset chosen by its pid: a port that a killed server
//! frees is not handed to a server another test starts meanwhile, so a
//! restart gets its port back and nodes never reconnect to a stranger.
//! A server counts as started only when the process answering on the port
//! is the one we spawned.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a redis-server may take to accept connections.
const READY: Duration = Duration::from_secs(10);

/// The first port of the range, and its size.
const PORT_BASE: u32 = 20_000;
const PORT_SPAN: u32 = 10_000;

/// The next port this process tries (an index into the range).
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// A port in the range that nothing listens on now; never the same twice
/// in one process (until the range wraps).
fn free_port() -> u16 {
    let offset = std::process::id().wrapping_mul(7_919);
    loop {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = (PORT_BASE + offset.wrapping_add(n) % PORT_SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The `process_id` of the Redis answering on `port`, if one does.
fn process_id_on(port: u16) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    // The reply is one bulk string of a few KiB; `process_id` is early.
    while reply.len() < 64 * 1024 {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((_, rest)) = text.split_once("process_id:") {
            if let Some((line, _)) = rest.split_once("\r\n") {
                return line.trim().parse().ok();
            }
        }
    }
    None
}

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Start one on a free port.
    pub fn start() -> RedisServer {
        loop {
            let mut server = RedisServer {
                port: free_port(),
                child: None,
            };
            if server.spawn() {
                return server;
            }
            // Someone took the port between the check and the spawn.
            server.kill();
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it (like a crash: no shutdown handshake).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "port {} was taken by another process while redis-server was down",
            self.port
        );
    }

    /// Spawn redis-server on `self.port`; `false` when what answers there
    /// is not the process spawned (it could not bind the port).
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server installed (./scripts/test installs it)");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + READY;
        loop {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false; // exited: the port was not free
            }
            if let Some(answering) = process_id_on(self.port) {
                return answering == pid;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
