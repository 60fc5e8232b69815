//! The server configuration: an embedded default (`default.toml`) that a
//! user's TOML file overrides section by section.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fawkes::socket::CheckOrigin;
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
    #[serde(default, rename = "socket")]
    pub(crate) sockets: Vec<SocketConfig>,
    #[serde(default)]
    pub(crate) cluster: crate::cluster::ClusterConfig,
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
    #[serde(default, rename = "topic")]
    pub(crate) topics: Vec<TopicRule>,
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
        self.cluster = self.cluster.with_overrides(
            args.redis_url.as_deref(),
            args.node_name.as_deref(),
            |var| std::env::var(var).ok(),
        );
        self
    }
}

fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
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
        let error = parse("[cluster]\nredis = 1\n", &path).expect_err("unknown key");
        assert!(error.to_string().contains("line 2"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_default_runs_alone() {
        let config = Config::load(None).expect("default config");
        assert!(config.cluster.redis_url.is_none());
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
