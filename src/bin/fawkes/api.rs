//! `[api]`: the HTTP API's configuration and its guard. `POST /api/broadcast`
//! is closed unless a bearer secret is configured, and then requires it.

use fawkes::endpoint::{json, BearerSecret, HttpRequest, HttpResponse};
use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

/// Environment variable that sets (and overrides) `[api] broadcast_secret`.
pub(crate) const SECRET_ENV: &str = "FAWKES_API_SECRET";

/// `[api]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiConfig {
    /// The bearer secret `POST /api/broadcast` requires. Without one (here
    /// or in `FAWKES_API_SECRET`) the endpoint answers 401 to everyone.
    #[serde(serialize_with = "crate::redact::secret")]
    pub(crate) broadcast_secret: Option<String>,
}

/// Why the `[api]` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiConfigError {
    /// The secret is empty or no comparison key could be made.
    #[error("[api] broadcast_secret: {0}")]
    Secret(#[from] fawkes::endpoint::BearerSecretError),
}

/// Decides whether an API request may run.
#[derive(Debug, Clone)]
pub(crate) struct ApiGuard {
    secret: Option<BearerSecret>,
}

impl ApiGuard {
    /// The guard for `config`, with `env_secret` (the value of
    /// [`SECRET_ENV`], if set) taking precedence.
    pub(crate) fn new(
        config: &ApiConfig,
        env_secret: Option<String>,
    ) -> Result<Self, ApiConfigError> {
        let secret = env_secret
            .or_else(|| config.broadcast_secret.clone())
            .map(|secret| BearerSecret::new(&secret))
            .transpose()?;
        Ok(Self { secret })
    }

    /// Whether a secret is configured (the API is usable at all).
    pub(crate) fn is_enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// `None` when `req` carries the secret; otherwise the 401 to answer.
    pub(crate) fn refuse(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let message = match &self.secret {
            Some(secret) if secret.authorizes(req.headers()) => return None,
            Some(_) => "missing or wrong Authorization: Bearer <secret>",
            None => "the broadcast API is off: set [api] broadcast_secret or FAWKES_API_SECRET",
        };
        let mut response = json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": message }).to_string(),
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_file_and_empty_is_refused() {
        let config = ApiConfig {
            broadcast_secret: Some("from-file".into()),
        };
        assert!(ApiGuard::new(&config, None).expect("guard").is_enabled());
        assert!(!ApiGuard::new(&ApiConfig::default(), None)
            .expect("guard")
            .is_enabled());
        assert!(ApiGuard::new(&ApiConfig::default(), Some("env".into()))
            .expect("guard")
            .is_enabled());
        assert!(ApiGuard::new(&config, Some(String::new())).is_err());
    }

    #[test]
    fn the_printed_configuration_hides_the_secret() {
        let config = ApiConfig {
            broadcast_secret: Some("hunter2".into()),
        };
        let text = toml::to_string(&config).expect("prints");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(crate::redact::REDACTED), "{text}");
    }
}
