//! Webhooks: `fawkes serve` asks the application's backend whether a
//! socket may connect (`[socket.webhook] connect`), whether a client may
//! join a topic and what the join reply says (`[socket.topic.webhook]
//! join`), and what to answer to chosen events a client pushes
//! (`handle_in` + `events`). See the README's "Put fawkes in front of your
//! existing app" for the bodies sent and the answers expected.

mod answer;
mod client;

use std::time::Duration;

use fawkes::{ConnectInfo, Payload};
use hyper::Uri;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub(crate) use answer::{ConnectAnswer, EventAnswer, JoinAnswer};
pub(crate) use client::{WebhookClient, WebhookError};

/// Environment variable that sets (and overrides) `[socket.webhook] secret`.
pub(crate) const SECRET_ENV: &str = "FAWKES_WEBHOOK_SECRET";

/// `[socket.webhook]`: the backend of one socket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SocketWebhookConfig {
    /// Shared secret the requests are signed with (or `FAWKES_WEBHOOK_SECRET`).
    #[serde(default, serialize_with = "crate::redact::secret")]
    pub(crate) secret: Option<String>,
    /// Give up on a call after this long (the client gets an error).
    #[serde(default = "default_timeout_ms")]
    pub(crate) timeout_ms: u64,
    /// Calls in flight at once for this socket; more wait (within the timeout).
    #[serde(default = "default_max_concurrency")]
    pub(crate) max_concurrency: usize,
    /// URL asked on every connect, if set.
    #[serde(default)]
    pub(crate) connect: Option<String>,
}

/// `[socket.topic.webhook]`: the backend's say over one topic pattern.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicWebhookConfig {
    /// URL asked on every join, if set.
    #[serde(default)]
    pub(crate) join: Option<String>,
    /// URL that answers the pushed `events`.
    #[serde(default)]
    pub(crate) handle_in: Option<String>,
    /// Pushed events sent to `handle_in`; its answer is the reply.
    #[serde(default)]
    pub(crate) events: Vec<String>,
}

fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_concurrency() -> usize {
    64
}

/// Why the webhook configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookConfigError {
    /// A URL that does not parse or is not `http://host...`.
    #[error("webhook URL {0:?} must be an absolute http:// URL")]
    Url(String),
    /// Topic webhooks need the socket's `[socket.webhook]` section.
    #[error("topic {0:?} has webhooks but its socket has no [socket.webhook] section")]
    NoSocketWebhook(String),
    /// `events` without a `handle_in` URL, or the reverse.
    #[error("topic {0:?}: handle_in and events go together")]
    EventsWithoutUrl(String),
    /// No secret in the file nor in `FAWKES_WEBHOOK_SECRET`.
    #[error("[socket.webhook] needs a secret (or {SECRET_ENV})")]
    NoSecret,
    /// The client could not be made.
    #[error("[socket.webhook]: {0}")]
    Client(#[from] client::ClientError),
}

fn parse_url(url: &str) -> Result<Uri, WebhookConfigError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| WebhookConfigError::Url(url.to_owned()))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(WebhookConfigError::Url(url.to_owned()));
    }
    Ok(uri)
}

/// A socket's backend: the client shared by its webhooks, and the connect
/// webhook.
#[derive(Debug, Clone)]
pub(crate) struct SocketHooks {
    client: WebhookClient,
    connect: Option<Uri>,
}

impl SocketHooks {
    /// The hooks `config` describes; `env_secret` (from [`SECRET_ENV`])
    /// overrides the file's secret.
    pub(crate) fn new(
        config: &SocketWebhookConfig,
        env_secret: Option<&str>,
    ) -> Result<Self, WebhookConfigError> {
        let secret = env_secret
            .or(config.secret.as_deref())
            .ok_or(WebhookConfigError::NoSecret)?;
        let client = WebhookClient::new(
            secret,
            Duration::from_millis(config.timeout_ms),
            config.max_concurrency,
        )?;
        let connect = config.connect.as_deref().map(parse_url).transpose()?;
        Ok(Self { client, connect })
    }

    /// Ask the connect webhook, if one is set: `None` when there is none.
    pub(crate) async fn connect(
        &self,
        socket: &str,
        info: &ConnectInfo,
        assigns: &Map<String, Value>,
    ) -> Option<Result<ConnectAnswer, WebhookError>> {
        let url = self.connect.as_ref()?;
        let headers: Map<String, Value> = info
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let value = value.to_str().ok()?;
                Some((name.as_str().to_owned(), Value::String(value.to_owned())))
            })
            .collect();
        let body = json!({
            "type": "connect",
            "socket": socket,
            "params": info.params,
            "auth_token": info.auth_token,
            "headers": headers,
            "remote_addr": info.peer_addr.map(|addr| addr.to_string()),
            "assigns": assigns,
        });
        Some(self.client.call(url, &body).await)
    }

    /// The hooks of one topic pattern.
    pub(crate) fn topic(
        &self,
        pattern: &str,
        config: &TopicWebhookConfig,
    ) -> Result<TopicHooks, WebhookConfigError> {
        let handle_in = config.handle_in.as_deref().map(parse_url).transpose()?;
        if handle_in.is_some() == config.events.is_empty() {
            return Err(WebhookConfigError::EventsWithoutUrl(pattern.to_owned()));
        }
        Ok(TopicHooks {
            client: self.client.clone(),
            join: config.join.as_deref().map(parse_url).transpose()?,
            handle_in,
            events: config.events.clone(),
        })
    }
}

/// Topic webhooks without a socket backend are refused at startup.
pub(crate) fn orphan_topic(pattern: &str) -> WebhookConfigError {
    WebhookConfigError::NoSocketWebhook(pattern.to_owned())
}

/// The webhooks of one topic pattern.
#[derive(Debug, Clone)]
pub(crate) struct TopicHooks {
    client: WebhookClient,
    join: Option<Uri>,
    handle_in: Option<Uri>,
    events: Vec<String>,
}

impl TopicHooks {
    /// Ask the join webhook, if one is set: `None` when there is none.
    pub(crate) async fn join(
        &self,
        topic: &str,
        params: &Payload,
        assigns: Map<String, Value>,
    ) -> Option<Result<JoinAnswer, WebhookError>> {
        let url = self.join.as_ref()?;
        let body = json!({
            "type": "join",
            "topic": topic,
            "params": payload_json(params),
            "assigns": assigns,
        });
        Some(self.client.call(url, &body).await)
    }

    /// Whether a pushed `event` goes to the backend.
    pub(crate) fn handles(&self, event: &str) -> bool {
        self.handle_in.is_some() && self.events.iter().any(|e| e == event)
    }

    /// Ask the `handle_in` webhook about a pushed event.
    pub(crate) async fn handle_in(
        &self,
        topic: &str,
        event: &str,
        payload: &Payload,
        assigns: Map<String, Value>,
    ) -> Result<EventAnswer, WebhookError> {
        let Some(url) = self.handle_in.as_ref() else {
            return Err(WebhookError::Unavailable("no handle_in URL".into()));
        };
        let body = json!({
            "type": "handle_in",
            "topic": topic,
            "event": event,
            "payload": payload_json(payload),
            "assigns": assigns,
        });
        self.client.call(url, &body).await
    }
}

/// A payload as JSON; a binary payload is sent as `{"binary": <base64>}`.
fn payload_json(payload: &Payload) -> Value {
    use base64::Engine as _;
    match payload {
        Payload::Json(value) => value.clone(),
        Payload::RawJson(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        Payload::Binary(bytes) => {
            json!({ "binary": base64::engine::general_purpose::STANDARD.encode(bytes) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(connect: Option<&str>) -> SocketWebhookConfig {
        SocketWebhookConfig {
            secret: Some("s".into()),
            timeout_ms: 100,
            max_concurrency: 1,
            connect: connect.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn config_is_checked_at_startup() {
        assert!(SocketHooks::new(&socket(Some("http://127.0.0.1:9/c")), None).is_ok());
        assert!(SocketHooks::new(&socket(Some("https://127.0.0.1/c")), None).is_err());
        assert!(SocketHooks::new(&socket(Some("/relative")), None).is_err());
        let mut no_secret = socket(None);
        no_secret.secret = None;
        assert!(matches!(
            SocketHooks::new(&no_secret, None),
            Err(WebhookConfigError::NoSecret)
        ));
        assert!(SocketHooks::new(&no_secret, Some("env")).is_ok());
        let hooks = SocketHooks::new(&socket(None), None).expect("hooks");
        let topic = |handle_in: Option<&str>, events: &[&str]| TopicWebhookConfig {
            join: None,
            handle_in: handle_in.map(str::to_owned),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
        };
        assert!(hooks.topic("t", &topic(None, &["x"])).is_err());
        assert!(hooks
            .topic("t", &topic(Some("http://127.0.0.1:9/e"), &[]))
            .is_err());
        let ok = hooks
            .topic("t", &topic(Some("http://127.0.0.1:9/e"), &["x"]))
            .expect("valid");
        assert!(ok.handles("x"));
        assert!(!ok.handles("y"));
    }
}
