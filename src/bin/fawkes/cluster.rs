//! `[cluster]`: how this node joins other fawkes nodes over Redis. Without
//! a `redis_url` (file, `--redis-url` or `FAWKES_REDIS_URL`) the node runs
//! alone and needs no Redis.

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
    /// This node's name, unique in the cluster (default: a random one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) node_name: Option<String>,
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
        Some((RedisOptions::new(url, node), replication))
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
