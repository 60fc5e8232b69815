//! The server configuration: an embedded default (`default.toml`) that a
//! user's TOML file overrides, and the checks that turn a mistake into a
//! sentence.
//!
//! Overriding rules (README "Configuration"): the user's file is merged key
//! by key into the default, so a file that sets only `[presence]` or
//! `[cluster]` keeps everything else. `[[socket]]` entries are merged by
//! `path`: an entry with the default's path changes only the keys it names
//! (its `[[socket.topic]]` list, when given, replaces the default topics
//! whole); an entry with a new path adds a socket; `enabled = false` removes
//! one. Paths in a file resolve against that file's folder; the default's
//! against this project's folder.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fawkes::endpoint::HttpLimits;
use fawkes::socket::{CheckOrigin, RateLimit};
use fawkes::SocketOptions;
use serde::{Deserialize, Serialize};

use crate::api::ApiConfig;
use crate::auth::AuthConfig;
use crate::cli::ServeArgs;
use crate::webhook::{SocketWebhookConfig, TopicWebhookConfig};

/// The configuration used when no file is given.
pub(crate) const DEFAULT_TOML: &str = include_str!("default.toml");

/// The folder the embedded default's relative paths start from.
const PROJECT_DIR: &str = env!("CARGO_MANIFEST_DIR");

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
    /// The file parses but asks for something that cannot work.
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) server: Server,
    #[serde(default)]
    pub(crate) presence: PresenceConfig,
    #[serde(default)]
    pub(crate) api: ApiConfig,
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
    #[serde(default)]
    pub(crate) metrics: crate::operations::MetricsConfig,
    #[serde(default)]
    pub(crate) drain: crate::operations::DrainConfig,
    #[serde(default, rename = "socket")]
    pub(crate) sockets: Vec<SocketConfig>,
    #[serde(default)]
    pub(crate) cluster: crate::cluster::ClusterConfig,
    #[serde(default)]
    pub(crate) dashboard: crate::dashboard::DashboardConfig,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Server {
    pub(crate) port: u16,
    pub(crate) bind: IpAddr,
    /// Folder served at `/`; empty = no static files.
    pub(crate) static_dir: PathBuf,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            port: 4000,
            bind: IpAddr::from([127, 0, 0, 1]),
            static_dir: PathBuf::new(),
        }
    }
}

impl Server {
    /// The address to listen on.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// `[presence]`
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SocketConfig {
    pub(crate) path: String,
    /// `false` removes a socket the default declares (merge by `path`).
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
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
    /// `[socket.webhook]`: the backend asked on connect (and by topics).
    #[serde(default)]
    pub(crate) webhook: Option<SocketWebhookConfig>,
    /// `[socket.auth]`: Phoenix.Token authentication of connects.
    #[serde(default)]
    pub(crate) auth: Option<AuthConfig>,
}

/// `[socket.limits]`: per-connection rate limits of one socket (0 turns a
/// limit off).
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// `check_origin = true | false | "same-host" | ["https://example.com", "//*.example.com"]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "toml::Value", into = "toml::Value")]
pub(crate) enum Origin {
    /// `false`: any origin (logged as a warning at startup).
    Any,
    /// `true`, the default (Phoenix's): the origin's host must be the
    /// request's host.
    #[default]
    Host,
    /// `"same-host"`: the origin's host, scheme and port must be the request's.
    SameHost,
    /// Allowed origins.
    List(Vec<String>),
}

/// The message for a `check_origin` value of no known form.
#[derive(Debug)]
pub(crate) struct OriginFormError(String);

impl fmt::Display for OriginFormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "check_origin must be true, false, \"same-host\", or a list of origins such as \
             [\"https://example.com\", \"//*.example.com\"]; {} is none of these",
            self.0
        )
    }
}

impl TryFrom<toml::Value> for Origin {
    type Error = OriginFormError;

    fn try_from(value: toml::Value) -> Result<Self, Self::Error> {
        match &value {
            toml::Value::Boolean(false) => Ok(Origin::Any),
            toml::Value::Boolean(true) => Ok(Origin::Host),
            toml::Value::String(s) if s == "same-host" => Ok(Origin::SameHost),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) if s.contains("//") => Ok(s.clone()),
                    other => Err(OriginFormError(format!(
                        "the list entry {other} (an origin looks like \"https://host\" or \"//host\")"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Origin::List),
            other => Err(OriginFormError(other.to_string())),
        }
    }
}

impl From<Origin> for toml::Value {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Any => toml::Value::Boolean(false),
            Origin::Host => toml::Value::Boolean(true),
            Origin::SameHost => toml::Value::String("same-host".into()),
            Origin::List(list) => {
                toml::Value::Array(list.into_iter().map(toml::Value::String).collect())
            }
        }
    }
}

/// `[[socket.topic]]`: what a joined client may do on matching topics.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// The assign whose value is the presence key (join params are then
    /// ignored: the key comes from the token or the connect webhook).
    #[serde(default)]
    pub(crate) presence_key: Option<String>,
    /// `[socket.topic.webhook]`: the backend asked on join and on events.
    #[serde(default)]
    pub(crate) webhook: Option<TopicWebhookConfig>,
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
    /// The embedded default, with `path`'s file merged into it (see the
    /// module doc for the rules), checked.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Config::merged(default_table(), Path::new(DEFAULT_NAME)),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::from_text(&text, path)
            }
        }
    }

    /// The embedded default with `text` (the file at `path`) merged into
    /// it, checked. `path` names the file in errors and anchors its
    /// relative paths; nothing is read from disk.
    pub(crate) fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut user = parse_table(text, path)?;
        // Checked on its own first, so a mistake is reported with its line.
        typed(text, path)?;
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        resolve_paths(&mut user, folder);
        let mut merged = default_table();
        merge_tables(&mut merged, user);
        Config::merged(merged, path)
    }

    /// The merged table as a checked configuration.
    fn merged(table: toml::Table, origin: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|error: toml::de::Error| invalid(error.message().to_owned()))?;
        let config = config.without_disabled_sockets();
        config.check().map_err(invalid)?;
        Ok(config)
    }

    fn without_disabled_sockets(mut self) -> Config {
        self.sockets.retain(|socket| socket.enabled);
        self
    }

    /// Apply command-line overrides (a relative `--static-dir` is relative
    /// to the working directory, like any command-line path).
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
        self.cluster = self.cluster.with_overrides(
            args.redis_url.as_deref(),
            args.node_name.as_deref(),
            |var| std::env::var(var).ok(),
        );
        self
    }

    /// The mistakes that parse but cannot work, as a sentence.
    fn check(&self) -> Result<(), String> {
        self.cluster.check()?;
        self.drain.check()?;
        if self.sockets.is_empty() {
            return Err("no socket is mounted: every [[socket]] is disabled".into());
        }
        for (i, socket) in self.sockets.iter().enumerate() {
            let path = &socket.path;
            if !path.starts_with('/') {
                return Err(format!(
                    "socket path {path:?} must start with \"/\" (for example \"/{path}\")"
                ));
            }
            if self.sockets[..i].iter().any(|other| &other.path == path) {
                return Err(format!("socket path {path:?} is declared twice"));
            }
            if socket.max_channels == 0 {
                return Err(format!(
                    "socket {path}: max_channels = 0 would refuse every join; use at least 1"
                ));
            }
            if !socket.websocket && !socket.longpoll {
                return Err(format!(
                    "socket {path}: websocket and longpoll are both false, so no client could connect \
                     (to remove the socket, set enabled = false)"
                ));
            }
            if socket.topics.is_empty() {
                return Err(format!(
                    "socket {path} has no [[socket.topic]], so every join would be refused as \
                     \"unmatched topic\"; add a topic rule"
                ));
            }
        }
        Ok(())
    }

    /// Checks that look at the machine: the static folder exists.
    pub(crate) fn check_files(&self) -> Result<(), String> {
        let dir = &self.server.static_dir;
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return Err(format!(
                "static_dir {} does not exist or is not a folder (set [server] static_dir, or \
                 --static-dir, or static_dir = \"\" to serve no page)",
                dir.display()
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML (`fawkes check-config`).
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|error| format!("# cannot print: {error}\n"))
    }
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
                Origin::Any => CheckOrigin::Any,
                Origin::Host => CheckOrigin::Host,
                Origin::SameHost => CheckOrigin::SameHost,
                Origin::List(list) => CheckOrigin::List(list.clone()),
            },
            ..SocketOptions::default()
        }
    }
}

/// The line (1-based) a byte offset of `text` is on.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_error(text: &str, path: &Path, error: toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        path: path.to_owned(),
        line: error.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: error.message().to_owned(),
    }
}

fn parse_table(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|error| parse_error(text, path, error))
}

/// How the embedded default is named in errors.
const DEFAULT_NAME: &str = "<embedded default>";

/// The embedded default as a table, its paths made absolute: parsed once
/// (it is part of the binary, so it parses; a test checks it), cloned for
/// each load.
fn default_table() -> toml::Table {
    static DEFAULT: std::sync::OnceLock<toml::Table> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let mut table = parse_table(DEFAULT_TOML, Path::new(DEFAULT_NAME))
                .unwrap_or_else(|error| panic!("the embedded default does not parse: {error}"));
            resolve_paths(&mut table, Path::new(PROJECT_DIR));
            table
        })
        .clone()
}

/// The file read as a configuration of its own: unknown keys and wrong
/// types are found here, where their line is known.
fn typed(text: &str, path: &Path) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|error| parse_error(text, path, error))
}

/// Make the relative paths of one file's table absolute against `folder`.
fn resolve_paths(table: &mut toml::Table, folder: &Path) {
    let Some(toml::Value::Table(server)) = table.get_mut("server") else {
        return;
    };
    if let Some(toml::Value::String(dir)) = server.get_mut("static_dir") {
        if !dir.is_empty() && Path::new(dir.as_str()).is_relative() {
            *dir = folder.join(dir.as_str()).to_string_lossy().into_owned();
        }
    }
}

/// Merge `user` into `base`: tables key by key, `socket` arrays by `path`,
/// everything else replaced.
fn merge_tables(base: &mut toml::Table, user: toml::Table) {
    for (key, value) in user {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Array(base_sockets)), toml::Value::Array(user_sockets))
                if key == "socket" =>
            {
                merge_sockets(base_sockets, user_sockets)
            }
            (Some(toml::Value::Table(base_table)), toml::Value::Table(user_table)) => {
                merge_tables(base_table, user_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn merge_sockets(base: &mut Vec<toml::Value>, user: Vec<toml::Value>) {
    let path_of = |value: &toml::Value| {
        value
            .get("path")
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
    };
    for socket in user {
        let existing = path_of(&socket).and_then(|path| {
            base.iter_mut()
                .find(|b| path_of(b).as_deref() == Some(&path))
        });
        match (existing, socket) {
            (Some(toml::Value::Table(base_socket)), toml::Value::Table(user_socket)) => {
                // Not `merge_tables`: a topic list, when given, replaces the default's.
                for (key, value) in user_socket {
                    base_socket.insert(key, value);
                }
            }
            (_, socket) => base.push(socket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of its own per call: the tests run in parallel.
    fn temp_dir() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("fawkes-config-test-{}-{n}", std::process::id()))
    }

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("fawkes.toml");
        std::fs::write(&path, text).expect("write");
        let result = Config::load(Some(&path));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn message(text: &str) -> String {
        load_text(text).expect_err("refused").to_string()
    }

    #[test]
    fn the_embedded_default_parses() {
        let config = Config::load(None).expect("default config");
        assert_eq!(config.server.port, 4000);
        assert_eq!(config.sockets.len(), 1);
        let topic = &config.sockets[0].topics[0];
        assert_eq!(topic.pattern, "room:*");
        assert!(topic.presence);
        assert!(topic.relay.iter().any(|e| e == "new_msg"));
        assert!(config.server.static_dir.is_absolute());
        assert!(config.server.static_dir.ends_with("examples/chat"));
        config.check_files().expect("the chat folder exists");
    }

    #[test]
    fn a_bad_file_names_the_line() {
        let error = message("[server]\nport = 4000\nbogus = 1\n");
        assert!(error.contains("line 3"), "{error}");
        let error = message("[server]\nport = \"not a number\"\n");
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn check_origin_is_on_unless_turned_off() {
        let default = Config::load(None).expect("default config");
        assert_eq!(default.sockets[0].options().check_origin, CheckOrigin::Host);
        let text = "[[socket]]\npath = \"/s\"\n[[socket.topic]]\npattern = \"a\"\n\
                    [[socket]]\npath = \"/t\"\ncheck_origin = false\n[[socket.topic]]\npattern = \"a\"\n";
        let config = load_text(text).expect("valid");
        let by_path = |p: &str| {
            config
                .sockets
                .iter()
                .find(|s| s.path == p)
                .expect("socket")
                .options()
                .check_origin
        };
        assert_eq!(by_path("/s"), CheckOrigin::Host);
        assert_eq!(by_path("/t"), CheckOrigin::Any);
        assert!(config.api.broadcast_secret.is_none());
    }

    #[test]
    fn limits_default_to_the_library_and_can_be_set() {
        let config = Config::load(None).expect("default config");
        assert_eq!(config.limits.http_limits(), HttpLimits::default());
        let text = "[limits]\nmax_connections_per_address = 7\nheader_read_timeout_ms = 1500\n";
        let limits = load_text(text).expect("valid").limits.http_limits();
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
        let text = "[[socket]]\npath = \"/socket\"\n[socket.limits]\njoins_per_second = 4\njoin_burst = 8\nmessages_per_second = 0\n";
        let options = load_text(text).expect("valid").sockets[0].options();
        assert_eq!(options.join_rate, Some(RateLimit::per_second(4, 8)));
        assert_eq!(options.message_rate, None);
    }

    #[test]
    fn a_file_with_only_cluster_keeps_the_default_sockets() {
        let dir = std::env::temp_dir().join(format!("fawkes-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("cluster.toml");
        let text = "[cluster]\nredis_url = \"redis://127.0.0.1:6390\"\nnode_name = \"a\"\nbroadcast_period_ms = 200\ndown_period_ms = 1000\npermdown_period_ms = 9000\n";
        std::fs::write(&path, text).expect("write");
        let config = Config::load(Some(&path)).expect("valid");
        assert_eq!(config.sockets.len(), 1);
        assert_eq!(config.sockets[0].topics[0].pattern, "room:*");
        assert_eq!(
            config.cluster.redis_url.as_deref(),
            Some("redis://127.0.0.1:6390")
        );
        assert_eq!(config.cluster.node_name.as_deref(), Some("a"));
        assert_eq!(config.cluster.broadcast_period_ms, 200);
        assert_eq!(config.cluster.down_period_ms, 1000);
        assert_eq!(config.cluster.permdown_period_ms, 9000);
        let error = typed("[cluster]\nredis = 1\n", &path).expect_err("unknown key");
        assert!(error.to_string().contains("line 2"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_phoenix_pubsub_to_join_is_checked_and_printed() {
        let dir = std::env::temp_dir().join(format!("fawkes-phx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("mixed.toml");
        std::fs::write(
            &path,
            "[cluster]\nphoenix_pubsub = \"Conf.PubSub\"\ncompression = 6\n",
        )
        .expect("write");
        let config = Config::load(Some(&path)).expect("valid");
        assert_eq!(config.cluster.phoenix_pubsub, "Conf.PubSub");
        assert_eq!(config.cluster.compression, Some(6));
        // `fawkes check-config` prints it back.
        let printed: toml::Table = config.to_toml().parse().expect("TOML");
        assert_eq!(
            printed["cluster"]["phoenix_pubsub"].as_str(),
            Some("Conf.PubSub")
        );
        assert_eq!(printed["cluster"]["compression"].as_integer(), Some(6));
        // The default is fawkes's own PubSub, uncompressed.
        let printed: toml::Table = Config::load(None)
            .expect("default")
            .to_toml()
            .parse()
            .expect("TOML");
        assert_eq!(
            printed["cluster"]["phoenix_pubsub"].as_str(),
            Some("Fawkes.PubSub")
        );
        assert!(printed["cluster"].get("compression").is_none());
        for (text, sentence) in [
            (
                "[cluster]\nphoenix_pubsub = \"my_app.pubsub\"\n",
                "must look like an Elixir module name",
            ),
            ("[cluster]\ncompression = 12\n", "compression = 12"),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = Config::load(Some(&path)).expect_err(text).to_string();
            assert!(error.contains(sentence), "{error}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_default_runs_alone() {
        let config = Config::load(None).expect("default config");
        assert!(config.cluster.redis_url.is_none());
    }

    #[test]
    fn check_origin_forms() {
        let text = "[[socket]]\npath = \"/s\"\ncheck_origin = [\"//*.example.com\"]\n[[socket.topic]]\npattern = \"a\"\n[[socket]]\npath = \"/t\"\ncheck_origin = \"same-host\"\n[[socket.topic]]\npattern = \"a\"\n";
        let config = load_text(text).expect("valid");
        let by_path = |p: &str| {
            config
                .sockets
                .iter()
                .find(|s| s.path == p)
                .expect("socket")
                .options()
                .check_origin
        };
        assert_eq!(
            by_path("/s"),
            CheckOrigin::List(vec!["//*.example.com".into()])
        );
        assert_eq!(by_path("/t"), CheckOrigin::SameHost);
        assert_eq!(by_path("/socket"), CheckOrigin::Host);
    }

    #[test]
    fn an_unknown_check_origin_form_is_explained() {
        let error = message("[[socket]]\npath = \"/socket\"\ncheck_origin = \"yes please\"\n");
        assert!(
            error.contains("line 3")
                && error.contains("check_origin must be true, false, \"same-host\", or a list"),
            "{error}"
        );
        let error = message("[[socket]]\npath = \"/socket\"\ncheck_origin = [\"example.com\"]\n");
        assert!(error.contains("an origin looks like"), "{error}");
    }

    #[test]
    fn a_socket_path_needs_a_leading_slash() {
        let error = message("[[socket]]\npath = \"live\"\n[[socket.topic]]\npattern = \"a\"\n");
        assert!(
            error.contains("socket path \"live\" must start with \"/\""),
            "{error}"
        );
    }

    #[test]
    fn max_channels_zero_is_refused() {
        let error = message("[[socket]]\npath = \"/socket\"\nmax_channels = 0\n");
        assert!(
            error.contains("max_channels = 0 would refuse every join"),
            "{error}"
        );
    }

    #[test]
    fn a_socket_without_topics_is_refused() {
        let error = message("[[socket]]\npath = \"/other\"\n");
        assert!(
            error.contains("socket /other has no [[socket.topic]]"),
            "{error}"
        );
    }

    #[test]
    fn a_socket_with_no_transport_is_refused() {
        let error =
            message("[[socket]]\npath = \"/socket\"\nwebsocket = false\nlongpoll = false\n");
        assert!(error.contains("no client could connect"), "{error}");
    }

    #[test]
    fn a_socket_entry_overrides_only_what_it_names() {
        let config =
            load_text("[[socket]]\npath = \"/socket\"\ncheck_origin = true\n").expect("valid");
        assert_eq!(config.sockets.len(), 1);
        let socket = &config.sockets[0];
        assert_eq!(socket.check_origin, Origin::Host);
        assert_eq!(socket.topics[0].pattern, "room:*", "default topics kept");
        assert!(socket.websocket && socket.longpoll);
    }

    #[test]
    fn a_topic_list_replaces_the_default_one_and_new_paths_add_sockets() {
        let config = load_text(
            "[[socket]]\npath = \"/socket\"\n[[socket.topic]]\npattern = \"game:*\"\n\
             [[socket]]\npath = \"/admin\"\nlongpoll = false\n[[socket.topic]]\npattern = \"ops\"\n",
        )
        .expect("valid");
        let patterns: Vec<_> = config
            .sockets
            .iter()
            .map(|s| {
                (
                    s.path.as_str(),
                    s.topics
                        .iter()
                        .map(|t| t.pattern.as_str())
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            patterns,
            vec![("/socket", vec!["game:*"]), ("/admin", vec!["ops"])]
        );
    }

    #[test]
    fn enabled_false_removes_a_default_socket() {
        let config = load_text(
            "[[socket]]\npath = \"/socket\"\nenabled = false\n\
             [[socket]]\npath = \"/live\"\n[[socket.topic]]\npattern = \"a\"\n",
        )
        .expect("valid");
        let paths: Vec<_> = config.sockets.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, vec!["/live"]);
    }

    #[test]
    fn a_file_with_other_sections_keeps_the_default_sockets() {
        let config = load_text("[presence]\nbatch_window_ms = 0\n").expect("valid");
        assert_eq!(config.presence.batch_window_ms, 0);
        assert_eq!(config.sockets[0].path, "/socket");
        assert_eq!(config.server.port, 4000, "[server] untouched");
    }

    #[test]
    fn paths_resolve_against_the_file_folder() {
        let dir = temp_dir();
        std::fs::create_dir_all(dir.join("www")).expect("dirs");
        let path = dir.join("fawkes.toml");
        std::fs::write(&path, "[server]\nstatic_dir = \"www\"\n").expect("write");
        let config = Config::load(Some(&path)).expect("valid");
        assert_eq!(config.server.static_dir, dir.join("www"));
        config.check_files().expect("exists");
        std::fs::write(&path, "[server]\nstatic_dir = \"missing\"\n").expect("write");
        let config = Config::load(Some(&path)).expect("parses");
        let error = config.check_files().expect_err("missing folder");
        assert!(error.contains("missing does not exist"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_effective_configuration_prints_and_reads_back() {
        let config = Config::load(None).expect("default");
        let text = config.to_toml();
        let again: Config = toml::from_str(&text).expect("printed config parses");
        assert_eq!(again.sockets[0].topics[0].pattern, "room:*");
        assert_eq!(again.server.static_dir, config.server.static_dir);
    }
}
