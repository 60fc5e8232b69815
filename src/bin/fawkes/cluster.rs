//! `[cluster]`: how this node joins other fawkes nodes, and Phoenix nodes,
//! over Redis (phoenix_pubsub_redis's wire). Without a `redis_url` (file,
//! `--redis-url` or `FAWKES_REDIS_URL`) the node runs alone and needs no
//! Redis. `phoenix_pubsub` names the Elixir app's PubSub to share its
//! channel; `node_name` is the atom Phoenix nodes see.

use std::time::Duration;

use fawkes::presence::replication::{
    ReplicationOptions, DEFAULT_BROADCAST_PERIOD, DEFAULT_DOWN_PERIOD, DEFAULT_PERMDOWN_PERIOD,
};
use fawkes::pubsub::redis::RedisOptions;
use serde::{Deserialize, Serialize};

/// `[cluster]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ClusterConfig {
    /// `redis://127.0.0.1:6379`; none means no cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_url: Option<String>,
    /// This node's name, unique in the cluster (default: a random one);
    /// Phoenix nodes see it as an atom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) node_name: Option<String>,
    /// The Elixir PubSub to join (`MyApp.PubSub`: the Redis channel is
    /// `phx:Elixir.MyApp.PubSub.Adapter`).
    pub(crate) phoenix_pubsub: String,
    /// zlib level 1..=9 for what this node publishes (none or 0: uncompressed,
    /// as phoenix_pubsub_redis's default `compression_level: 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compression: Option<u32>,
    /// Shared by every node: signs LongPoll tokens, so a client's requests
    /// may reach any node (env `FAWKES_SECRET_KEY_BASE` overrides it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret_key_base: Option<String>,
    /// How often presence changes are shipped to other nodes (default:
    /// the library's [`DEFAULT_BROADCAST_PERIOD`]).
    pub(crate) broadcast_period_ms: u64,
    /// A node silent this long is down: its presences leave (default:
    /// [`DEFAULT_DOWN_PERIOD`]).
    pub(crate) down_period_ms: u64,
    /// A down node is forgotten after this long (default:
    /// [`DEFAULT_PERMDOWN_PERIOD`]).
    pub(crate) permdown_period_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            node_name: None,
            phoenix_pubsub: fawkes::pubsub::redis::DEFAULT_PUBSUB_NAME.to_owned(),
            compression: None,
            secret_key_base: None,
            broadcast_period_ms: DEFAULT_BROADCAST_PERIOD.as_millis() as u64,
            down_period_ms: DEFAULT_DOWN_PERIOD.as_millis() as u64,
            permdown_period_ms: DEFAULT_PERMDOWN_PERIOD.as_millis() as u64,
        }
    }
}

/// The environment variable that overrides `redis_url`.
pub(crate) const ENV_REDIS_URL: &str = "FAWKES_REDIS_URL";
/// The environment variable that overrides `node_name`.
pub(crate) const ENV_NODE_NAME: &str = "FAWKES_NODE_NAME";
/// The environment variable that overrides `secret_key_base`.
pub(crate) const ENV_SECRET_KEY_BASE: &str = "FAWKES_SECRET_KEY_BASE";

impl ClusterConfig {
    /// Apply overrides: the command line wins over the environment, which
    /// wins over the file. An empty value counts as not given.
    pub(crate) fn with_overrides(
        mut self,
        redis_url: Option<&str>,
        node_name: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let pick = |cli: Option<&str>, var: &str| {
            cli.map(str::to_owned)
                .or_else(|| env(var))
                .filter(|v| !v.is_empty())
        };
        if let Some(url) = pick(redis_url, ENV_REDIS_URL) {
            self.redis_url = Some(url);
        }
        if let Some(name) = pick(node_name, ENV_NODE_NAME) {
            self.node_name = Some(name);
        }
        if let Some(secret) = pick(None, ENV_SECRET_KEY_BASE) {
            self.secret_key_base = Some(secret);
        }
        self
    }

    /// The mistakes in `[cluster]` that parse but cannot work, as a sentence.
    pub(crate) fn check(&self) -> Result<(), String> {
        fawkes::pubsub::redis::wire::check_pubsub_name(&self.phoenix_pubsub)
            .map_err(|error| format!("[cluster] {error}"))?;
        if let Some(level) = self.compression.filter(|level| *level > 9) {
            return Err(format!(
                "[cluster] compression = {level}: the zlib level must be 0 (none) to 9, as \
                 phoenix_pubsub_redis's compression_level"
            ));
        }
        if let Some(name) = &self.node_name {
            if name.is_empty() || name.chars().count() > 255 {
                return Err(
                    "[cluster] node_name must have 1 to 255 characters (it is an Erlang atom)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The Redis engine's options and presence replication's, for the
    /// same node name, when a cluster is configured.
    pub(crate) fn options(&self) -> Option<(RedisOptions, ReplicationOptions)> {
        let url = self.redis_url.as_ref()?;
        let node = self
            .node_name
            .clone()
            .unwrap_or_else(fawkes::pubsub::redis::random_node_name);
        let replication = ReplicationOptions {
            node_name: node.clone(),
            broadcast_period: Duration::from_millis(self.broadcast_period_ms),
            down_period: Duration::from_millis(self.down_period_ms),
            permdown_period: Duration::from_millis(self.permdown_period_ms),
        };
        let mut options = RedisOptions::new(url, node);
        options.pubsub_name = self.phoenix_pubsub.clone();
        options.compression = self.compression;
        Some((options, replication))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_url_means_no_cluster() {
        let config = ClusterConfig::default().with_overrides(None, Some("a"), env(&[]));
        assert_eq!(config.options().map(|(o, _)| o.url), None);
    }

    #[test]
    fn cli_beats_env_beats_file() {
        let file = ClusterConfig {
            redis_url: Some("redis://file".into()),
            node_name: Some("file".into()),
            ..ClusterConfig::default()
        };
        let from_file = file.clone().with_overrides(None, None, env(&[]));
        assert_eq!(from_file, file);
        let vars = env(&[
            (ENV_REDIS_URL, "redis://env"),
            (ENV_NODE_NAME, "env"),
            (ENV_SECRET_KEY_BASE, "s"),
        ]);
        let from_env = file.clone().with_overrides(None, None, &vars);
        assert_eq!(from_env.secret_key_base.as_deref(), Some("s"));
        assert_eq!(from_env.redis_url.as_deref(), Some("redis://env"));
        assert_eq!(from_env.node_name.as_deref(), Some("env"));
        let from_cli = file.with_overrides(Some("redis://cli"), Some("cli"), &vars);
        let (options, replication) = from_cli.options().expect("clustered");
        assert_eq!(options.url, "redis://cli");
        assert_eq!(options.node_name, "cli");
        assert_eq!(options.pubsub_name, "Fawkes.PubSub");
        assert_eq!(replication.node_name, "cli");
    }

    #[test]
    fn phoenix_pubsub_and_compression_reach_the_engine() {
        let config = ClusterConfig {
            redis_url: Some("redis://127.0.0.1:6390".into()),
            phoenix_pubsub: "Conf.PubSub".into(),
            compression: Some(6),
            ..ClusterConfig::default()
        };
        assert_eq!(config.check(), Ok(()));
        let (options, _) = config
            .with_overrides(None, Some("fawkes_b"), env(&[]))
            .options()
            .expect("clustered");
        assert_eq!(options.pubsub_name, "Conf.PubSub");
        assert_eq!(
            fawkes::pubsub::redis::wire::channel_name(&options.pubsub_name),
            "phx:Elixir.Conf.PubSub.Adapter"
        );
        assert_eq!(options.compression, Some(6));
        assert_eq!(options.node_name, "fawkes_b");
    }

    #[test]
    fn bad_cluster_settings_are_sentences() {
        let bad = |config: ClusterConfig| config.check().expect_err("refused");
        let error = bad(ClusterConfig {
            phoenix_pubsub: "my_app_pubsub".into(),
            ..ClusterConfig::default()
        });
        assert!(
            error.contains("\"my_app_pubsub\" must look like an Elixir module name"),
            "{error}"
        );
        let error = bad(ClusterConfig {
            compression: Some(10),
            ..ClusterConfig::default()
        });
        assert!(error.contains("compression = 10"), "{error}");
        let error = bad(ClusterConfig {
            node_name: Some("x".repeat(256)),
            ..ClusterConfig::default()
        });
        assert!(error.contains("node_name"), "{error}");
        assert_eq!(ClusterConfig::default().check(), Ok(()));
        assert_eq!(
            ClusterConfig {
                compression: Some(0),
                ..ClusterConfig::default()
            }
            .check(),
            Ok(())
        );
    }

    #[test]
    fn a_random_name_when_none_is_given() {
        let config = ClusterConfig::default().with_overrides(Some("redis://x"), None, env(&[]));
        let (a, replication) = config.options().expect("clustered");
        let (b, _) = config.options().expect("clustered");
        assert!(
            a.node_name.starts_with("fawkes-") && a.node_name != b.node_name,
            "{a:?} {b:?}"
        );
        assert_eq!(replication.node_name, a.node_name, "one name for both");
    }

    #[test]
    fn the_periods_default_to_the_library_s_and_are_passed_on() {
        let config = ClusterConfig::default().with_overrides(Some("redis://x"), None, env(&[]));
        let (_, replication) = config.options().expect("clustered");
        let defaults = ReplicationOptions::new(replication.node_name.clone());
        assert_eq!(replication, defaults);
        let custom = ClusterConfig {
            broadcast_period_ms: 50,
            down_period_ms: 900,
            permdown_period_ms: 5_000,
            ..config
        };
        let (_, replication) = custom.options().expect("clustered");
        assert_eq!(replication.broadcast_period, Duration::from_millis(50));
        assert_eq!(replication.down_period, Duration::from_millis(900));
        assert_eq!(replication.permdown_period, Duration::from_millis(5_000));
    }
}
