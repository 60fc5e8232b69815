//! `GET /metrics`: the Prometheus scrape of the endpoint's counters (see
//! [`crate::metrics`]), off unless enabled, optionally behind a bearer
//! secret. Read-only: it tells how busy the node is, never who is on it.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::StatusCode;

use super::http::empty;
use super::{BearerSecret, HttpResponse, Inner};
use crate::metrics::{self, Sources};

/// The path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";

/// How `/metrics` is served.
#[derive(Debug, Clone, Default)]
pub struct MetricsOptions {
    /// Answer [`METRICS_PATH`] at all (otherwise it goes to the handler).
    pub enabled: bool,
    /// When set, a scrape must carry `Authorization: Bearer <secret>`.
    pub secret: Option<BearerSecret>,
}

/// The answer to a request for [`METRICS_PATH`], if the endpoint serves it.
pub(super) fn answer(
    path: &str,
    headers: &hyper::HeaderMap,
    inner: &Inner,
) -> Option<HttpResponse> {
    if path != METRICS_PATH || !inner.metrics.enabled {
        return None;
    }
    if let Some(secret) = &inner.metrics.secret {
        if !secret.authorizes(headers) {
            let mut response = empty(StatusCode::UNAUTHORIZED);
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Some(response);
        }
    }
    let text = scrape(inner);
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    Some(response)
}

/// The Prometheus text for the endpoint now.
pub(super) fn scrape(inner: &Inner) -> String {
    let shared = &inner.shared;
    let mut rate_limited = (0, 0);
    let mut over_max_channels = 0;
    for (_, socket) in &inner.sockets {
        let limits = &socket.limit_counters;
        rate_limited.0 += limits.joins_rate_limited();
        rate_limited.1 += limits.sessions_rate_limited();
        over_max_channels += limits.joins_over_max_channels();
    }
    let sources = Sources {
        presence_entries: shared.presence.as_ref().map(|p| p.entry_count() as u64),
        http_connections: (inner.connections.open() as u64, inner.connections.refused()),
        rate_limited,
        over_max_channels,
        redis: inner.redis.as_ref().map(|stats| {
            let now = stats.snapshot();
            (now.connected, now.publish_failed)
        }),
        draining: shared.shutdown.is_cancelled(),
    };
    metrics::render(shared.pubsub.counters(), sources)
}

/// Shared so the binary's scrape and the library's agree.
pub(super) type RedisStats = Arc<crate::pubsub::redis::ClusterStats>;
