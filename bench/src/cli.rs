//! Command line: the options shared by every scenario, one argument struct
//! per subcommand, and the checked server target (loopback only).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for Phoenix Channels servers (V2 protocol, loopback only).
#[derive(Debug, Parser)]
#[command(name = "fawkes-bench", version, about)]
pub(crate) struct Cli {
    /// Options shared by all scenarios.
    #[command(flatten)]
    pub(crate) common: Common,
    /// The scenario to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options shared by all scenarios.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Base URL of the server (loopback only); the socket path and
    /// `/websocket?vsn=2.0.0` are appended.
    #[arg(long, global = true, default_value = "http://127.0.0.1:4000")]
    pub(crate) url: String,
    /// Socket mount path under the URL.
    #[arg(long, global = true, default_value = "/socket")]
    pub(crate) socket_path: String,
    /// Spread connections over this many loopback source addresses
    /// 127.0.0.1..127.0.0.K (each has its own ~28k ephemeral ports).
    #[arg(long, global = true, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub(crate) sources: u8,
    /// More servers of the same cluster: connection `i` goes to the
    /// `i mod n`-th of `--url` and these (the publisher to `--url`).
    #[arg(long = "also-url", global = true)]
    pub(crate) also_urls: Vec<String>,
    /// Server process id: report its CPU time and RSS from /proc. Give it
    /// once per node of a cluster: CPU time and RSS are summed.
    #[arg(long, global = true)]
    pub(crate) server_pid: Vec<u32>,
    /// Connections opened (connect + join) at once while setting up. Keep
    /// it under the server's listen backlog (often 128) or bursts of SYNs
    /// are dropped and retried a second later.
    #[arg(long, global = true, default_value_t = 100)]
    pub(crate) concurrency: usize,
    /// Timeout for one connect, or one join reply, in seconds.
    #[arg(long, global = true, default_value_t = 20)]
    pub(crate) op_timeout: u64,
}

impl Common {
    /// The per-operation timeout.
    pub(crate) fn op_timeout(&self) -> Duration {
        Duration::from_secs(self.op_timeout.max(1))
    }
}

/// The scenarios, plus the baseline server.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Open N connections that each join a topic and stay idle; report the
    /// server's RSS per connection.
    Idle(IdleArgs),
    /// S subscribers on one topic; a publisher broadcasts at a rate; report
    /// deliveries/s, latency and deliveries per server CPU-second.
    Fanout(FanoutArgs),
    /// N connections each connect, then join; report connects/s and joins/s.
    Joins(JoinsArgs),
    /// N clients join one presence topic and keep phoenix.js presence lists;
    /// report the time until every list has N keys.
    Presence(PresenceArgs),
    /// A bare tokio-tungstenite fan-out server (no Phoenix protocol), the
    /// ceiling for `fanout`.
    BaselineServer(BaselineArgs),
    /// No server: the kernel's floor for `fanout` on this machine (one
    /// plain TCP write per subscriber per round, read like `fanout` reads).
    Floor(FloorArgs),
    /// C connections each send a heartbeat and await its reply in a loop;
    /// report round trips/s and round-trip latency (e.g. direct vs through
    /// `fawkes record`).
    Roundtrip(RoundtripArgs),
    /// N clients join a topic on the server given by --url and
    /// --server-pid; the bench sends that server SIGTERM, and each client,
    /// once closed, reconnects like phoenix.js (back-off 10, 50, 100 ms
    /// ...) to --reconnect-url and rejoins; report when the closes and the
    /// rejoins happened after the SIGTERM, as histograms.
    Drain(DrainArgs),
    /// A long steady mix (websocket and LongPoll clients connecting,
    /// joining, pushing, leaving, closing and vanishing; broadcasts; slow
    /// clients) with the server's RSS, open files, connections and tasks
    /// sampled into a CSV; quiet windows without clients show whether they
    /// go back down. Needs --server-pid and the server's /metrics.
    Soak(SoakArgs),
}

/// `soak` options.
#[derive(Clone, Debug, Args)]
pub(crate) struct SoakArgs {
    /// Seconds the run lasts (its last --quiet seconds have no clients).
    #[arg(long, default_value_t = 3600)]
    pub(crate) duration: u64,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 10)]
    pub(crate) sample_secs: u64,
    /// Where the samples go (one CSV row each).
    #[arg(long, default_value = "soak.csv")]
    pub(crate) csv: std::path::PathBuf,
    /// Length of a cycle in seconds: clients work, then a quiet window.
    #[arg(long, default_value_t = 600)]
    pub(crate) cycle: u64,
    /// Seconds at the end of each cycle (and of the run) without clients;
    /// longer than the server's LongPoll session timeout.
    #[arg(long, default_value_t = 60)]
    pub(crate) quiet: u64,
    /// Websocket clients (each runs one session after another).
    #[arg(long, default_value_t = 200)]
    pub(crate) ws_clients: usize,
    /// LongPoll clients.
    #[arg(long, default_value_t = 20)]
    pub(crate) lp_clients: usize,
    /// Slow clients: join the publisher's topic with a 4 KiB receive
    /// buffer and never read.
    #[arg(long, default_value_t = 5)]
    pub(crate) slow_clients: usize,
    /// Topics per kind (`room:soak:<k>`, `bench:soak:<k>`).
    #[arg(long, default_value_t = 10)]
    pub(crate) topics: usize,
    /// Shortest session, in seconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) min_life: u64,
    /// Longest session, in seconds (slow clients stay three to six times
    /// as long).
    #[arg(long, default_value_t = 40)]
    pub(crate) max_life: u64,
    /// Each client pushes `new_msg` every this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub(crate) push_ms: u64,
    /// Broadcasts per second the publisher pushes on `bench:soak:0` (0:
    /// none).
    #[arg(long, default_value_t = 20.0)]
    pub(crate) hot_rate: f64,
    /// Padding of each of the publisher's broadcasts, in bytes.
    #[arg(long, default_value_t = 2000)]
    pub(crate) payload_bytes: usize,
}

/// `drain` options.
#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// Clients.
    #[arg(long, default_value_t = 2000)]
    pub(crate) conns: usize,
    /// Where the clients reconnect (another node; loopback only).
    #[arg(long)]
    pub(crate) reconnect_url: String,
    /// Topic every client joins (with a `user` param of its own).
    #[arg(long, default_value = "room:drain")]
    pub(crate) topic: String,
    /// Width of one histogram bucket, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub(crate) bucket_ms: u64,
    /// Give up on clients not rejoined after this many seconds.
    #[arg(long, default_value_t = 90)]
    pub(crate) limit: u64,
    /// The two nodes are a cluster and --topic tracks presence (keyed by
    /// the connect param `user`): an observer on --reconnect-url keeps the
    /// topic's presence list like phoenix.js, and the report says whether
    /// every client is listed there once, with a meta of the surviving
    /// node, after the rejoins (and still 2 s later).
    #[arg(long)]
    pub(crate) check_presence: bool,
}

/// `roundtrip` options.
#[derive(Debug, Args)]
pub(crate) struct RoundtripArgs {
    /// Connections, each with one heartbeat in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) conns: usize,
    /// Seconds of round trips.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
}

/// `floor` options.
#[derive(Debug, Args)]
pub(crate) struct FloorArgs {
    /// Subscriber connections (two sockets each in this process).
    #[arg(long, default_value_t = 5000)]
    pub(crate) subs: usize,
    /// Threads writing, each to its share of the subscribers.
    #[arg(long, default_value_t = 2)]
    pub(crate) writers: usize,
    /// Rounds (one message to every subscriber) per second.
    #[arg(long, default_value_t = 4.0)]
    pub(crate) rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
    /// Message size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 100)]
    pub(crate) payload_bytes: usize,
}

/// `idle` options.
#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub(crate) conns: usize,
    /// Topic; each connection joins `<topic>:<i>` unless --same-topic.
    #[arg(long, default_value = "room:idle")]
    pub(crate) topic: String,
    /// Every connection joins exactly --topic.
    #[arg(long)]
    pub(crate) same_topic: bool,
    /// Only connect (no join): separates the cost of a connection from the
    /// cost of a joined channel.
    #[arg(long)]
    pub(crate) no_join: bool,
    /// Seconds to hold the connections after they all joined.
    #[arg(long, default_value_t = 10)]
    pub(crate) hold: u64,
    /// Heartbeat interval in seconds (phoenix.js: 30).
    #[arg(long, default_value_t = 30)]
    pub(crate) heartbeat: u64,
    /// During the hold, wait (at most --hold seconds) until every
    /// connection received one broadcast of this event whose payload has
    /// `"t"`: its send time in nanoseconds since the Unix epoch (e.g.
    /// `date +%s%N`), so several bench processes measure one broadcast's
    /// latency to all of their connections.
    #[arg(long)]
    pub(crate) await_event: Option<String>,
}

/// A publish rate: a number of broadcasts per second, or `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Rate {
    /// As fast as the subscribers receive: at most --window broadcasts not
    /// yet delivered to every subscriber.
    Max,
    /// Open loop, this many broadcasts per second.
    PerSecond(f64),
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
            _ => Err(format!(
                "rate must be a positive number or `max`, got {s:?}"
            )),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(r) => write!(f, "{r}"),
        }
    }
}

/// `fanout` options.
#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    pub(crate) subs: usize,
    /// Broadcasts per second, or `max`.
    #[arg(long, default_value = "4")]
    pub(crate) rate: Rate,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20)]
    pub(crate) duration: u64,
    /// Length of the payload's padding string, in bytes.
    #[arg(long, default_value_t = 100)]
    pub(crate) payload_bytes: usize,
    /// Topic every subscriber joins.
    #[arg(long, default_value = "room:fanout")]
    pub(crate) topic: String,
    /// Event the publisher pushes (and the server broadcasts).
    #[arg(long, default_value = "broadcast")]
    pub(crate) event: String,
    /// Publish with `POST /api/broadcast` instead of a channel push.
    #[arg(long)]
    pub(crate) via_http: bool,
    /// With `--rate max`: broadcasts in flight (not yet received by every
    /// subscriber).
    #[arg(long, default_value_t = 16)]
    pub(crate) window: u64,
    /// Seconds to wait for the last deliveries after publishing stops.
    #[arg(long, default_value_t = 10)]
    pub(crate) drain: u64,
}

/// `joins` options.
#[derive(Debug, Args)]
pub(crate) struct JoinsArgs {
    /// Connections (each connects, then joins once).
    #[arg(long, default_value_t = 5000)]
    pub(crate) conns: usize,
    /// Joins in flight at once (connects use --concurrency).
    #[arg(long = "join-concurrency", default_value_t = 100)]
    pub(crate) join_concurrency: usize,
    /// Topic; each connection joins `<topic>:<i>` unless --same-topic.
    #[arg(long, default_value = "room:join")]
    pub(crate) topic: String,
    /// Every connection joins exactly --topic.
    #[arg(long)]
    pub(crate) same_topic: bool,
}

/// How a presence client names its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum UserParam {
    /// Join payload `{"user": "u<i>"}` (the fawkes binary's room:*).
    Join,
    /// Connect query `user_id=u<i>` (the conformance app's presence:*).
    Connect,
}

/// `presence` options.
#[derive(Debug, Args)]
pub(crate) struct PresenceArgs {
    /// Clients (one tracked user each).
    #[arg(long, default_value_t = 500)]
    pub(crate) clients: usize,
    /// The presence topic every client joins.
    #[arg(long, default_value = "presence:bench")]
    pub(crate) topic: String,
    /// Where the user name goes.
    #[arg(long, value_enum, default_value_t = UserParam::Connect)]
    pub(crate) user_param: UserParam,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) timeout: u64,
    /// After every client listed every user, `kill -9` this process (a
    /// node of the cluster) and report how long until every client on the
    /// other nodes no longer lists the users that were connected to it.
    #[arg(long, requires = "kill_node")]
    pub(crate) kill_pid: Option<u32>,
    /// Which node --kill-pid is: 0 for --url, 1 for the first --also-url...
    #[arg(long, requires = "kill_pid")]
    pub(crate) kill_node: Option<usize>,
}

/// `baseline-server` options.
#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 4200)]
    pub(crate) port: u16,
    /// Loopback address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: IpAddr,
    /// Frames queued per connection before a slow client is dropped.
    #[arg(long, default_value_t = 1024)]
    pub(crate) queue: usize,
    /// Stop by itself after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub(crate) max_seconds: u64,
}

/// The server to load: a loopback socket address and the websocket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Where to connect.
    pub(crate) addr: SocketAddr,
    /// Host header value, e.g. `127.0.0.1:4000`.
    pub(crate) authority: String,
    /// Base path of the URL, without a trailing slash (often empty).
    pub(crate) base_path: String,
    /// Websocket path, e.g. `/socket/websocket`.
    pub(crate) ws_path: String,
}

impl Target {
    /// Parse `url` (http:// or ws://, loopback host) and the socket path.
    /// Anything that is not on this machine's loopback is refused.
    pub(crate) fn parse(url: &str, socket_path: &str) -> Result<Target, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad --url {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("ws") => {}
            other => return Err(format!("--url scheme must be http or ws, got {other:?}")),
        }
        let host = uri.host().ok_or("--url has no host")?;
        let ip = loopback_ip(host)?;
        let port = uri.port_u16().unwrap_or(80);
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let socket_path = format!("/{}", socket_path.trim_matches('/'));
        Ok(Target {
            addr: SocketAddr::new(ip, port),
            authority: format!("{host}:{port}"),
            ws_path: format!("{base_path}{socket_path}/websocket"),
            base_path,
        })
    }

    /// The websocket URL with `vsn=2.0.0` and `extra` query parameters
    /// (already encoded, without a leading `&`).
    pub(crate) fn ws_url(&self, extra: &str) -> String {
        let mut url = format!("ws://{}{}?vsn=2.0.0", self.authority, self.ws_path);
        if !extra.is_empty() {
            url.push('&');
            url.push_str(extra);
        }
        url
    }
}

/// The loopback IP `host` names, or an error for anything else.
fn loopback_ip(host: &str) -> Result<IpAddr, String> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if trimmed.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        trimmed
            .parse::<IpAddr>()
            .map_err(|_| format!("--url host must be a loopback IP or localhost, got {host:?}"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "refusing non-loopback target {ip}: this tool only loads servers on this machine"
        ));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_targets_and_refuses_others() {
        let t = Target::parse("http://127.0.0.1:4000", "/socket").unwrap();
        assert_eq!(t.addr, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(
            t.ws_url("user_id=u1"),
            "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0&user_id=u1"
        );
        let t = Target::parse("ws://localhost:4100/", "idle").unwrap();
        assert_eq!(t.ws_url(""), "ws://localhost:4100/idle/websocket?vsn=2.0.0");
        assert!(Target::parse("http://[::1]:4000", "/socket").is_ok());
        assert!(Target::parse("http://10.0.0.1:4000", "/socket").is_err());
        assert!(Target::parse("http://example.com:4000", "/socket").is_err());
        assert!(Target::parse("https://127.0.0.1:4000", "/socket").is_err());
    }

    #[test]
    fn parses_rates() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("4".parse::<Rate>(), Ok(Rate::PerSecond(4.0)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }
}
