//! A real network partition: `redis-server` and three `fawkes serve` nodes,
//! each in a network namespace of its own that this test creates, every
//! node joined to Redis's namespace by a veth pair (private addresses that
//! exist only inside these namespaces; each node listens on its own
//! namespace's 127.0.0.1). The test cuts node a's link to Redis: a's users
//! leave the lists of b and c, and b's and c's leave a's; users come and go
//! on both sides meanwhile. The link is restored: every list converges to
//! exactly the users still connected, with no ghost and no lost presence.
//!
//! Namespaces need root. When not root the test says so and returns; when
//! root and namespaces cannot be made, it fails with the reason.

mod support;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::watcher::{Watcher, SETTLE};
use support::Client;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::MaybeTlsStream;

const REDIS_PORT: u16 = 6379;

/// Runs `ip args...`; panics with its error output when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (iproute2): {e}"));
    assert!(
        out.status.success(),
        "network namespaces are needed for this test, and `ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The namespaces and links of one test run; removed when dropped (after
/// the processes in them were killed).
struct Net {
    prefix: String,
    nodes: Vec<String>,
}

impl Net {
    fn redis_ns(&self) -> String {
        format!("{}r", self.prefix)
    }

    fn node_ns(&self, node: &str) -> String {
        format!("{}{node}", self.prefix)
    }

    /// The node side of `node`'s link to Redis (in the node's namespace).
    fn link(&self, node: &str) -> String {
        format!("{}n{node}", self.prefix)
    }

    /// Redis's address as `node` sees it.
    fn redis_addr(&self, i: usize) -> String {
        format!("10.77.{}.1", i + 1)
    }

    fn create(nodes: &[&str]) -> Net {
        let net = Net {
            prefix: format!("fk{}", std::process::id()),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        };
        let redis = net.redis_ns();
        ip(&["netns", "add", &redis]);
        ip(&["-n", &redis, "link", "set", "lo", "up"]);
        for (i, node) in nodes.iter().enumerate() {
            let ns = net.node_ns(node);
            let there = format!("{}r{node}", net.prefix);
            let here = net.link(node);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", &ns, "link", "add", &here, "type", "veth", "peer", "name", &there, "netns",
                &redis,
            ]);
            let subnet = i + 1;
            ip(&[
                "-n",
                &redis,
                "addr",
                "add",
                &format!("10.77.{subnet}.1/30"),
                "dev",
                &there,
            ]);
            ip(&["-n", &redis, "link", "set", &there, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.77.{subnet}.2/30"),
                "dev",
                &here,
            ]);
            ip(&["-n", &ns, "link", "set", &here, "up"]);
        }
        net
    }

    fn cut(&self, node: &str) {
        ip(&[
            "-n",
            &self.node_ns(node),
            "link",
            "set",
            &self.link(node),
            "down",
        ]);
    }

    fn restore(&self, node: &str) {
        ip(&[
            "-n",
            &self.node_ns(node),
            "link",
            "set",
            &self.link(node),
            "up",
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for node in &self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.node_ns(node)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.redis_ns()])
            .status();
    }
}

/// A process in a namespace, killed when dropped.
struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains(needle))
    }
}

fn redis_in(net: &Net) -> Proc {
    let mut args = vec!["netns", "exec"];
    let ns = net.redis_ns();
    args.push(&ns);
    let port = REDIS_PORT.to_string();
    let addrs: Vec<String> = (0..net.nodes.len()).map(|i| net.redis_addr(i)).collect();
    args.extend([
        "redis-server",
        "--port",
        &port,
        "--save",
        "",
        "--appendonly",
        "no",
        // Its addresses exist only on the links to this test's namespaces;
        // protected mode would refuse every client that is not loopback.
        "--protected-mode",
        "no",
    ]);
    args.push("--bind");
    args.extend(addrs.iter().map(String::as_str));
    let child = Command::new("ip")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    Proc {
        child,
        log: Arc::default(),
        port: REDIS_PORT,
    }
}

/// `fawkes serve` as node `node` (the `i`th) in its namespace.
fn fawkes_in(net: &Net, i: usize, node: &str) -> Proc {
    let url = format!("redis://{}:{REDIS_PORT}", net.redis_addr(i));
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.node_ns(node)])
        .arg(env!("CARGO_BIN_EXE_fawkes"))
        .args(["serve", "--port", "0", "--bind", "127.0.0.1"])
        .args(["--redis-url", &url, "--node-name", node])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("FAWKES_REDIS_URL")
        .env_remove("FAWKES_NODE_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fawkes");
    let stdout = child.stdout.take().expect("stdout");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                let _ = tx.send(rest.trim().parse::<u16>().ok());
            }
            lines.lock().expect("log").push(line);
        }
    });
    let mut proc = Proc {
        child,
        log,
        port: 0,
    };
    proc.port = rx
        .recv_timeout(SETTLE)
        .ok()
        .flatten()
        .expect("fawkes says it listens");
    proc
}

/// A websocket client of a node in namespace `ns`: the TCP connection is
/// made from a thread that entered the namespace, then used from here.
async fn client_in(ns: &str, port: u16, user: &str) -> Client {
    let path = format!("/var/run/netns/{ns}");
    let stream = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect in the namespace")
    })
    .join()
    .expect("connect thread");
    stream.set_nonblocking(true).expect("nonblocking");
    stream.set_nodelay(true).expect("nodelay");
    let stream = tokio::net::TcpStream::from_std(stream).expect("tokio stream");
    let url = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user={user}");
    let request = url.into_client_request().expect("request");
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("websocket handshake");
    Client { ws }
}

async fn watcher(net: &Net, node: &str, proc: &Proc, user: &str) -> Watcher {
    Watcher::joined(client_in(&net.node_ns(node), proc.port, user).await, user).await
}

#[tokio::test]
async fn a_partition_from_redis_heals_with_no_ghost_and_no_lost_presence() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED: network namespaces need root; run this test as root to check partitions"
        );
        return;
    }
    let net = Net::create(&["a", "b", "c"]);
    let _redis = redis_in(&net);
    let a = fawkes_in(&net, 0, "a");
    let b = fawkes_in(&net, 1, "b");
    let c = fawkes_in(&net, 2, "c");
    let mut a1 = watcher(&net, "a", &a, "a1").await;
    let a2 = watcher(&net, "a", &a, "a2").await;
    let mut b1 = watcher(&net, "b", &b, "b1").await;
    let mut c1 = watcher(&net, "c", &c, "c1").await;
    for w in [&mut a1, &mut b1, &mut c1] {
        w.until_list(&["a1", "a2", "b1", "c1"]).await;
    }

    net.cut("a");
    // Each side sees the other's users leave once it counts them down.
    b1.until_list(&["b1", "c1"]).await;
    c1.until_list(&["b1", "c1"]).await;
    a1.until_list(&["a1", "a2"]).await;
    // Meanwhile a2 leaves node a and b2 joins node b.
    drop(a2);
    a1.until_list(&["a1"]).await;
    let mut b2 = watcher(&net, "b", &b, "b2").await;
    b2.until_list(&["b1", "b2", "c1"]).await;

    net.restore("a");
    let everyone = ["a1", "b1", "b2", "c1"];
    for w in [&mut a1, &mut b1, &mut b2, &mut c1] {
        w.until_list(&everyone).await;
    }
    // Stays converged: no ghost of a2 comes back later.
    for w in [&mut a1, &mut b1, &mut b2, &mut c1] {
        w.drain(Duration::from_secs(1)).await;
        let listed: Vec<&str> = w.present.iter().map(String::as_str).collect();
        assert_eq!(listed, everyone, "{} after the heal", w.user);
    }
    assert!(
        a.logged("presence resync"),
        "a did not resync after the heal"
    );
}
