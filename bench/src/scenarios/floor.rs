//! `floor`: the kernel's floor for one broadcast on this machine. S loopback
//! TCP connections inside this process; W plain threads write one small
//! message to every connection per round (no websocket, no protocol, no
//! queues: one `write` per subscriber, the least any server can do), while
//! readers on the same async runtime the other scenarios use record each
//! message's latency from the send time it carries. A server's `fanout`
//! latency at the same S and rate can be read against this.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;

use crate::cli::FloorArgs;
use crate::histogram::Histogram;
use crate::proc_stats::ProcWatch;
use crate::report::Report;

/// Bytes of a message that carry its send time (ns since `start`, LE).
const STAMP: usize = 8;

struct Shared {
    start: Instant,
    latency_ns: Histogram,
    delivered: AtomicU64,
    stop: AtomicBool,
}

/// Run the scenario.
pub(crate) async fn run(args: &FloorArgs) -> Report {
    let mut report = Report::new("floor");
    match measure(args).await {
        Ok(done) => done.fill(&mut report, args),
        Err(e) => {
            eprintln!("floor: {e}");
            report.add("errors", 1);
        }
    }
    report
}

/// What one run measured.
struct Done {
    shared: Arc<Shared>,
    rounds: u64,
    round_write_ms: Histogram,
    publish_s: f64,
    cpu_s: Option<(f64, f64)>,
}

impl Done {
    fn fill(&self, report: &mut Report, args: &FloorArgs) {
        let latency = &self.shared.latency_ns;
        let ms = |ns: u64| ns as f64 / 1e6;
        let delivered = self.shared.delivered.load(Ordering::Relaxed);
        report
            .add("subs", args.subs as u64)
            .add("writers", args.writers as u64)
            .add_f("rate", args.rate, 2)
            .add("payload_bytes", args.payload_bytes as u64)
            .add("rounds", self.rounds)
            .add("delivered", delivered)
            .add("expected", self.rounds * args.subs as u64)
            .add_f(
                "deliveries_per_s",
                delivered as f64 / self.publish_s.max(1e-9),
                0,
            )
            .add_f("latency_p50_ms", ms(latency.quantile(0.50)), 2)
            .add_f("latency_p99_ms", ms(latency.quantile(0.99)), 2)
            .add_f("latency_p999_ms", ms(latency.quantile(0.999)), 2)
            .add_f("latency_max_ms", ms(latency.max()), 2)
            .add_f(
                "round_write_p50_ms",
                ms(self.round_write_ms.quantile(0.50)),
                2,
            )
            .add_f("round_write_max_ms", ms(self.round_write_ms.max()), 2);
        if let Some((cpu, sys)) = self.cpu_s {
            report
                .add_f("process_cpu_s", cpu, 2)
                .add_f("process_sys_s", sys, 2);
        }
    }
}

async fn measure(args: &FloorArgs) -> Result<Done, String> {
    let subs = args.subs.max(1);
    let writers = args.writers.max(1);
    let size = args.payload_bytes.max(STAMP);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        latency_ns: Histogram::new(),
        delivered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    // Connect every subscriber, keeping the accepted ends for the writers.
    let mut accepted = Vec::with_capacity(subs);
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..subs {
        let client = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (server_end, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        server_end.set_nodelay(true).map_err(|e| e.to_string())?;
        accepted.push(server_end);
        readers.spawn(read(client, size, Arc::clone(&shared)));
    }

    // One thread per writer, each with its share of the connections.
    let chunk = subs.div_ceil(writers);
    let mut rounds_tx = Vec::new();
    let mut threads = Vec::new();
    let (wrote_tx, wrote_rx) = mpsc::channel::<u64>();
    let mut accepted = accepted.into_iter();
    for _ in 0..writers {
        let mine: Vec<TcpStream> = accepted.by_ref().take(chunk).collect();
        let (tx, rx) = mpsc::channel::<u64>();
        rounds_tx.push(tx);
        let (wrote, shared) = (wrote_tx.clone(), Arc::clone(&shared));
        threads.push(std::thread::spawn(move || {
            write_rounds(mine, rx, size, shared, wrote)
        }));
    }
    drop(wrote_tx);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let process = ProcWatch::this_process().ok();
    let before = process.as_ref().and_then(|p| p.sample().ok());
    let round_write_ms = Histogram::new();
    let period = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    let publish_start = Instant::now();
    let deadline = publish_start + Duration::from_secs(args.duration.max(1));
    let mut rounds = 0u64;
    let mut next = Instant::now();
    while Instant::now() < deadline {
        let stamp = shared.start.elapsed().as_nanos() as u64;
        for tx in &rounds_tx {
            let _ = tx.send(stamp);
        }
        rounds += 1;
        next += period;
        tokio::time::sleep_until(next.into()).await;
    }
    let publish_s = publish_start.elapsed().as_secs_f64();
    drop(rounds_tx);
    for thread in threads {
        let _ = thread.join();
    }
    for ns in wrote_rx.try_iter() {
        round_write_ms.record(ns);
    }
    // Let the last round arrive, then stop the readers.
    let expected = rounds * subs as u64;
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = process.as_ref().and_then(|p| p.sample().ok());
    shared.stop.store(true, Ordering::Relaxed);
    readers.abort_all();
    let cpu_s = match (before, after) {
        (Some(b), Some(a)) => {
            let usage = crate::proc_stats::Usage::between(b, a);
            Some((usage.cpu_s, usage.sys_s))
        }
        _ => None,
    };
    Ok(Done {
        shared,
        rounds,
        round_write_ms,
        publish_s,
        cpu_s,
    })
}

/// A writer thread: for every round, one write of the stamped message to
/// each of its connections; reports how long each round took (ns).
fn write_rounds(
    mut conns: Vec<TcpStream>,
    rounds: mpsc::Receiver<u64>,
    size: usize,
    shared: Arc<Shared>,
    wrote: mpsc::Sender<u64>,
) {
    let mut message = vec![b'x'; size];
    for stamp in rounds {
        message[..STAMP].copy_from_slice(&stamp.to_le_bytes());
        let began = Instant::now();
        for conn in conns.iter_mut() {
            if conn.write_all(&message).is_err() {
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
        let _ = wrote.send(began.elapsed().as_nanos() as u64);
    }
}

/// A subscriber: read whole messages and record each one's latency.
async fn read(mut conn: tokio::net::TcpStream, size: usize, shared: Arc<Shared>) {
    let mut buf = vec![0u8; size * 16];
    let mut filled = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match conn.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = shared.start.elapsed().as_nanos() as u64;
        filled += n;
        let whole = filled / size;
        for message in buf[..whole * size].chunks_exact(size) {
            let mut stamp = [0u8; STAMP];
            stamp.copy_from_slice(&message[..STAMP]);
            shared
                .latency_ns
                .record(now.saturating_sub(u64::from_le_bytes(stamp)));
        }
        shared.delivered.fetch_add(whole as u64, Ordering::Relaxed);
        buf.copy_within(whole * size..filled, 0);
        filled -= whole * size;
    }
}
