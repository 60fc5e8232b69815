//! One signed webhook call: a JSON `POST` to the backend, signed with
//! HMAC-SHA256, bounded in time and in how many run at once, never retried.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use tokio::sync::Semaphore;

/// Header with the request's Unix time in seconds (part of what is signed).
pub(crate) const TIMESTAMP_HEADER: &str = "x-fawkes-timestamp";
/// Header with `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub(crate) const SIGNATURE_HEADER: &str = "x-fawkes-signature";
/// Largest backend answer read.
const MAX_ANSWER: usize = 1024 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook call produced no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    /// No answer within the configured timeout (waiting for a free slot
    /// included).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The backend could not be reached or the connection broke.
    #[error("backend unreachable: {0}")]
    Unavailable(String),
    /// The backend answered with a non-2xx status.
    #[error("backend answered HTTP {0}")]
    Status(u16),
    /// The answer is not the JSON this webhook expects.
    #[error("malformed backend answer: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// The `reason` a client sees in its error reply.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            WebhookError::Timeout(_) => "backend timeout",
            WebhookError::Unavailable(_) => "backend unavailable",
            WebhookError::Status(_) | WebhookError::Malformed(_) => "backend error",
        }
    }
}

/// Why a webhook client could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// An empty secret signs nothing.
    #[error("the webhook secret is empty")]
    EmptySecret,
    /// `max_concurrency = 0` would refuse every call.
    #[error("max_concurrency must be at least 1")]
    NoConcurrency,
}

/// Calls one backend: shared by every webhook of a socket.
#[derive(Clone)]
pub(crate) struct WebhookClient {
    http: Client<HttpConnector, Full<Bytes>>,
    mac: HmacSha256,
    timeout: Duration,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// A client signing with `secret`, giving up after `timeout`, with at
    /// most `max_concurrency` calls in flight (more wait, within `timeout`).
    pub(crate) fn new(
        secret: &str,
        timeout: Duration,
        max_concurrency: usize,
    ) -> Result<Self, ClientError> {
        if secret.is_empty() {
            return Err(ClientError::EmptySecret);
        }
        if max_concurrency == 0 {
            return Err(ClientError::NoConcurrency);
        }
        let mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
            .map_err(|_| ClientError::EmptySecret)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // The pool only resends a request it never wrote (a closed idle
        // connection); nothing that reached the backend is sent twice.
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            http,
            mac,
            timeout,
            slots: Arc::new(Semaphore::new(max_concurrency)),
        })
    }

    /// `POST` `body` to `url` and parse the answer as `T`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        url: &Uri,
        body: &serde_json::Value,
    ) -> Result<T, WebhookError> {
        match tokio::time::timeout(self.timeout, self.call_unbounded(url, body)).await {
            Ok(result) => result,
            Err(_) => Err(WebhookError::Timeout(self.timeout)),
        }
    }

    async fn call_unbounded<T: DeserializeOwned>(
        &self,
        url: &Uri,
        body: &serde_json::Value,
    ) -> Result<T, WebhookError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|error| WebhookError::Unavailable(error.to_string()))?;
        let body = Bytes::from(body.to_string());
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let signature = format!("sha256={}", sign(&self.mac, &timestamp, &body));
        let request = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(body))
            .map_err(|error| WebhookError::Unavailable(error.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|error| WebhookError::Unavailable(error.to_string()))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|error| WebhookError::Unavailable(error.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(WebhookError::Status(status.as_u16()));
        }
        super::answer::parse_answer(&answer).map_err(WebhookError::Malformed)
    }
}

/// Lowercase hex of HMAC-SHA256 over `"<timestamp>.<body>"`.
pub(crate) fn sign(mac: &HmacSha256, timestamp: &str, body: &[u8]) -> String {
    let mut mac = mac.clone();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected value from Python's hmac module:
        // hmac.new(b"whsec", b'1700000000.{"type":"join"}', hashlib.sha256).hexdigest()
        let mac = <HmacSha256 as KeyInit>::new_from_slice(b"whsec").expect("key");
        assert_eq!(
            sign(&mac, "1700000000", br#"{"type":"join"}"#),
            "564d81e05f535ad40d3b2322a7553ee06a2ca34ed6a46161d04a236949a67bfd"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(WebhookClient::new("", Duration::from_secs(1), 1).is_err());
        assert!(WebhookClient::new("s", Duration::from_secs(1), 0).is_err());
    }
}
