//! The server configuration: an embedded default (`default.toml`) that a
//! user's TOML file overrides section by section.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fawkes::endpoint::HttpLimits;
use fawkes::socket::{CheckOrigin, RateLimit};
use fawkes::SocketOptions;
use serde::Deserialize;

use crate::cli::ServeArgs;

/// The configuration used when no file is given.
pub(crate) const DEFAULT_TOML: &str = include_str!("default.toml");

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}, line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) server: Server,
    #[serde(default)]
    pub(crate) presence: PresenceConfig,
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
    #[serde(default, rename = "socket")]
    pub(crate) sockets: Vec<SocketConfig>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Server {
    pub(crate) port: u16,
    pub(crate) bind: IpAddr,
    pub(crate) static_dir: PathBuf,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            port: 4000,
            bind: IpAddr::from([127, 0, 0, 1]),
            static_dir: PathBuf::from("examples/chat"),
        }
    }
}

/// `[presence]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PresenceConfig {
    /// Presence diffs for one topic within this many ms go out as one.
    pub(crate) batch_window_ms: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            batch_window_ms: 100,
        }
    }
}

/// `[limits]`: limits on HTTP connections (the library's `HttpLimits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    /// Most open connections on this node.
    pub(crate) max_connections: usize,
    /// Most open connections from one remote IP address.
    pub(crate) max_connections_per_address: usize,
    /// A request's header must arrive within this many ms.
    pub(crate) header_read_timeout_ms: u64,
    /// A request body must arrive within this many ms.
    pub(crate) body_read_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = HttpLimits::default();
        Self {
            max_connections: limits.max_connections,
            max_connections_per_address: limits.max_connections_per_address,
            header_read_timeout_ms: millis(limits.header_read_timeout),
            body_read_timeout_ms: millis(limits.body_read_timeout),
        }
    }
}

impl LimitsConfig {
    /// The library's limits.
    pub(crate) fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `[[socket]]`: one mounted socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SocketConfig {
    pub(crate) path: String,
    #[serde(default = "yes")]
    pub(crate) websocket: bool,
    #[serde(default = "yes")]
    pub(crate) longpoll: bool,
    #[serde(default = "default_idle_timeout_ms")]
    pub(crate) idle_timeout_ms: u64,
    #[serde(default)]
    pub(crate) check_origin: Origin,
    #[serde(default = "default_max_frame_size")]
    pub(crate) max_frame_size: usize,
    #[serde(default = "default_max_channels")]
    pub(crate) max_channels: usize,
    #[serde(default)]
    pub(crate) limits: SocketLimitsConfig,
    #[serde(default, rename = "topic")]
    pub(crate) topics: Vec<TopicRule>,
}

/// `[socket.limits]`: per-connection rate limits of one socket (0 turns a
/// limit off).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SocketLimitsConfig {
    /// Joins per second one connection may send on average.
    pub(crate) joins_per_second: u32,
    /// Joins one connection may send at once.
    pub(crate) join_burst: u32,
    /// Frames per second one connection may send on average.
    pub(crate) messages_per_second: u32,
    /// Frames one connection may send at once.
    pub(crate) message_burst: u32,
}

impl Default for SocketLimitsConfig {
    fn default() -> Self {
        let options = SocketOptions::default();
        let (joins_per_second, join_burst) = per_second(options.join_rate);
        let (messages_per_second, message_burst) = per_second(options.message_rate);
        Self {
            joins_per_second,
            join_burst,
            messages_per_second,
            message_burst,
        }
    }
}

impl SocketLimitsConfig {
    fn join_rate(&self) -> Option<RateLimit> {
        rate(self.joins_per_second, self.join_burst)
    }

    fn message_rate(&self) -> Option<RateLimit> {
        rate(self.messages_per_second, self.message_burst)
    }
}

fn rate(per_second: u32, burst: u32) -> Option<RateLimit> {
    (per_second > 0).then(|| RateLimit::per_second(per_second, burst.max(1)))
}

fn per_second(limit: Option<RateLimit>) -> (u32, u32) {
    limit.map_or((0, 0), |limit| {
        let per_second = Duration::from_secs(1).as_nanos() / limit.refill_every.as_nanos().max(1);
        (u32::try_from(per_second).unwrap_or(u32::MAX), limit.burst)
    })
}

/// `check_origin = false | "same-host" | ["https://example.com", "//*.example.com"]`
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Origin {
    Enabled(bool),
    Keyword(OriginKeyword),
    List(Vec<String>),
}

/// The named `check_origin` policies.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OriginKeyword {
    SameHost,
}

impl Default for Origin {
    fn default() -> Self {
        Origin::Enabled(false)
    }
}

/// `[[socket.topic]]`: what a joined client may do on matching topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicRule {
    /// `"room:*"` (prefix) or an exact topic.
    pub(crate) pattern: String,
    /// Events a client pushes that are relayed to everyone else on the topic.
    #[serde(default)]
    pub(crate) relay: Vec<String>,
    /// Track each joined client in presence (key: join param `user`, else
    /// connect param `user`, else `"anonymous"`).
    #[serde(default)]
    pub(crate) presence: bool,
}

fn yes() -> bool {
    true
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_max_frame_size() -> usize {
    10_000_000
}
fn default_max_channels() -> usize {
    100
}

impl Config {
    /// The embedded default, or `path` parsed on its own (a section the file
    /// leaves out keeps its default; a file with `[[socket]]` entries
    /// replaces the default sockets).
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let default = parse(DEFAULT_TOML, Path::new("<embedded default>"))?;
        let Some(path) = path else { return Ok(default) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = parse(&text, path)?;
        if config.sockets.is_empty() {
            config.sockets = default.sockets;
        }
        Ok(config)
    }

    /// Apply command-line overrides.
    pub(crate) fn with_overrides(mut self, args: &ServeArgs) -> Config {
        if let Some(port) = args.port {
            self.server.port = port;
        }
        if let Some(bind) = args.bind {
            self.server.bind = bind;
        }
        if let Some(dir) = &args.static_dir {
            self.server.static_dir = dir.clone();
        }
        self
    }
}

/// Parse `text` (read from `path`, named in errors) as a configuration.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let line = error
            .span()
            .map(|span| {
                text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            })
            .unwrap_or(1);
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            message: error.message().to_owned(),
        }
    })
}

impl SocketConfig {
    /// The library's options for this socket.
    pub(crate) fn options(&self) -> SocketOptions {
        SocketOptions {
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_frame_size: self.max_frame_size,
            max_channels: self.max_channels,
            join_rate: self.limits.join_rate(),
            message_rate: self.limits.message_rate(),
            websocket: self.websocket,
            longpoll: self.longpoll,
            check_origin: match &self.check_origin {
                Origin::Enabled(false) => CheckOrigin::Any,
                Origin::Enabled(true) | Origin::Keyword(OriginKeyword::SameHost) => {
                    CheckOrigin::SameHost
                }
                Origin::List(list) => CheckOrigin::List(list.clone()),
            },
            ..SocketOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_parses() {
        let config = Config::load(None).expect("default config");
        assert_eq!(config.server.port, 4000);
        assert_eq!(config.sockets.len(), 1);
        let topic = &config.sockets[0].topics[0];
        assert_eq!(topic.pattern, "room:*");
        assert!(topic.presence);
        assert!(topic.relay.iter().any(|e| e == "new_msg"));
    }

    #[test]
    fn a_bad_file_names_the_line() {
        let text = "[server]\nport = 4000\nbogus = 1\n";
        let error = parse(text, Path::new("x.toml")).expect_err("unknown key");
        let ConfigError::Parse { line, .. } = &error else {
            panic!("{error}")
        };
        assert_eq!(*line, 3, "{error}");
        let text = "[server]\nport = \"not a number\"\n";
        let error = parse(text, Path::new("x.toml")).expect_err("bad type");
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn limits_default_to_the_library_and_can_be_set() {
        let config = Config::load(None).expect("default config");
        assert_eq!(config.limits.http_limits(), HttpLimits::default());
        let text = "[limits]\nmax_connections_per_address = 7\nheader_read_timeout_ms = 1500\n";
        let limits = parse(text, Path::new("x.toml"))
            .expect("valid")
            .limits
            .http_limits();
        assert_eq!(limits.max_connections_per_address, 7);
        assert_eq!(limits.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(
            limits.max_connections,
            HttpLimits::default().max_connections
        );
    }

    #[test]
    fn socket_limits_default_to_the_library_and_can_be_set_or_turned_off() {
        let config = Config::load(None).expect("default config");
        let options = config.sockets[0].options();
        assert_eq!(options.join_rate, SocketOptions::default().join_rate);
        assert_eq!(options.message_rate, SocketOptions::default().message_rate);
        let text = "[[socket]]\npath = \"/s\"\n[socket.limits]\njoins_per_second = 4\njoin_burst = 8\nmessages_per_second = 0\n";
        let options = parse(text, Path::new("x.toml")).expect("valid").sockets[0].options();
        assert_eq!(options.join_rate, Some(RateLimit::per_second(4, 8)));
        assert_eq!(options.message_rate, None);
    }

    #[test]
    fn check_origin_forms() {
        let text = "[[socket]]\npath = \"/s\"\ncheck_origin = [\"//*.example.com\"]\n[[socket]]\npath = \"/t\"\ncheck_origin = \"same-host\"\n";
        let config = parse(text, Path::new("x.toml")).expect("valid");
        assert_eq!(
            config.sockets[0].options().check_origin,
            CheckOrigin::List(vec!["//*.example.com".into()])
        );
        assert_eq!(
            config.sockets[1].options().check_origin,
            CheckOrigin::SameHost
        );
    }
}
