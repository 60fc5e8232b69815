//! `[metrics]` and `[drain]`: how the node is watched (`GET /metrics`, on
//! by default, optionally behind a bearer secret) and how it lets its
//! clients go at shutdown (Phoenix's socket drainer: batch size, interval,
//! longest period).

use std::time::Duration;

use fawkes::endpoint::{BearerSecret, BearerSecretError, DrainOptions, MetricsOptions};
use serde::{Deserialize, Serialize};

/// Environment variable that sets (and overrides) `[metrics] secret`.
pub(crate) const METRICS_SECRET_ENV: &str = "FAWKES_METRICS_SECRET";

/// `[metrics]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsConfig {
    /// Serve `GET /metrics` (Prometheus text format).
    pub(crate) enabled: bool,
    /// When set, a scrape must send `Authorization: Bearer <secret>`.
    #[serde(serialize_with = "crate::redact::secret")]
    pub(crate) secret: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secret: None,
        }
    }
}

/// Why `[metrics]` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[metrics] secret: {0}")]
pub(crate) struct MetricsConfigError(#[from] BearerSecretError);

impl MetricsConfig {
    /// The library's options, with `env_secret` (the value of
    /// [`METRICS_SECRET_ENV`], if set) taking precedence.
    pub(crate) fn options(
        &self,
        env_secret: Option<String>,
    ) -> Result<MetricsOptions, MetricsConfigError> {
        let secret = env_secret
            .or_else(|| self.secret.clone())
            .map(|secret| BearerSecret::new(&secret))
            .transpose()?;
        Ok(MetricsOptions {
            enabled: self.enabled,
            secret,
        })
    }
}

/// `[drain]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DrainConfig {
    /// Sessions closed per batch at shutdown.
    pub(crate) batch_size: usize,
    /// Milliseconds between two batches.
    pub(crate) batch_interval_ms: u64,
    /// The longest the batches may take, in milliseconds.
    pub(crate) period_ms: u64,
}

impl Default for DrainConfig {
    fn default() -> Self {
        let options = DrainOptions::default();
        Self {
            batch_size: options.batch_size,
            batch_interval_ms: millis(options.batch_interval),
            period_ms: millis(options.period),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl DrainConfig {
    /// The library's options.
    pub(crate) fn options(&self) -> DrainOptions {
        DrainOptions {
            batch_size: self.batch_size,
            batch_interval: Duration::from_millis(self.batch_interval_ms),
            period: Duration::from_millis(self.period_ms),
        }
    }

    /// A zero batch size cannot drain anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("[drain] batch_size = 0 would close no session; use at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_by_default_and_the_environment_secret_wins() {
        let config = MetricsConfig::default();
        let options = config.options(None).expect("no secret");
        assert!(options.enabled && options.secret.is_none());
        let config = MetricsConfig {
            enabled: true,
            secret: Some("file".into()),
        };
        let options = config.options(Some("env".into())).expect("secret");
        let secret = options.secret.expect("a secret");
        let mut headers = hyper::HeaderMap::new();
        headers.insert("authorization", "Bearer env".parse().expect("header"));
        assert!(secret.authorizes(&headers));
        headers.insert("authorization", "Bearer file".parse().expect("header"));
        assert!(!secret.authorizes(&headers));
        assert!(MetricsConfig {
            enabled: true,
            secret: Some(String::new())
        }
        .options(None)
        .is_err());
    }

    #[test]
    fn drain_defaults_are_phoenix_drainer() {
        assert_eq!(DrainConfig::default().options(), DrainOptions::default());
        let zero = DrainConfig {
            batch_size: 0,
            ..DrainConfig::default()
        };
        assert!(zero.check().is_err());
    }
}
