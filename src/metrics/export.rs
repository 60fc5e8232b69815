//! [`render`]: one scrape of `/metrics`, in the Prometheus (OpenMetrics)
//! text format, encoded by `prometheus-client` from a snapshot of the
//! counters and of the values only read when scraped.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::counters::{Counters, JoinOutcome, Transport, CLOSE_REASONS, REJECTED_FRAME_REASONS};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The values a scrape reads besides the [`Counters`].
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Presence entries on this node (every replica's).
    pub presence_entries: Option<u64>,
    /// Open HTTP connections (websockets included) and refused ones.
    pub http_connections: (u64, u64),
    /// Joins refused by the join rate, sessions closed by the message rate.
    pub rate_limited: (u64, u64),
    /// Joins refused for `max_channels`.
    pub over_max_channels: u64,
    /// Whether the Redis link answered its last check (clustered only),
    /// and broadcasts Redis did not take.
    pub redis: Option<(bool, u64)>,
    /// Whether the node is draining (not ready).
    pub draining: bool,
}

/// The Prometheus text for `counters` and `sources`.
pub fn render(counters: &Arc<Counters>, sources: Sources) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        counters: counters.clone(),
        sources,
    }));
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::warn!(%error, "metrics not encodable");
    }
    text
}

#[derive(Debug)]
struct Scrape {
    counters: Arc<Counters>,
    sources: Sources,
}

type Labels<'a> = &'a [(&'a str, &'a str)];

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let kind = ConstCounter::new(0u64).metric_type();
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    if let [(&[], value)] = series {
        // One series without labels: no empty `{}` in the text.
        return ConstCounter::new(*value).encode(metric);
    }
    for (labels, value) in series {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, i64)],
) -> Result<(), std::fmt::Error> {
    let kind = ConstGauge::new(0i64).metric_type();
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    if let [(&[], value)] = series {
        // One series without labels: no empty `{}` in the text.
        return ConstGauge::new(*value).encode(metric);
    }
    for (labels, value) in series {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = &self.counters;
        let s = &self.sources;
        let ws = Transport::WebSocket;
        let lp = Transport::LongPoll;
        gauge(
            &mut e,
            "fawkes_connections",
            "Open client sessions, by transport",
            &[
                (&[("transport", ws.label())], c.connections(ws)),
                (&[("transport", lp.label())], c.connections(lp)),
            ],
        )?;
        gauge(
            &mut e,
            "fawkes_http_connections",
            "Open HTTP connections (upgraded websockets included)",
            &[(&[], signed(s.http_connections.0))],
        )?;
        counter(
            &mut e,
            "fawkes_http_connections_refused",
            "HTTP connections closed at once for a connection limit",
            &[(&[], s.http_connections.1)],
        )?;
        gauge(
            &mut e,
            "fawkes_channels_joined",
            "Channels joined now, on every session",
            &[(&[], c.channels_joined())],
        )?;
        let joins: Vec<([(&str, &str); 1], u64)> = JoinOutcome::ALL
            .iter()
            .map(|o| ([("result", o.label())], c.joins(*o)))
            .collect();
        let joins: Vec<(Labels<'_>, u64)> = joins.iter().map(|(l, v)| (&l[..], *v)).collect();
        counter(&mut e, "fawkes_joins", "Channel joins, by result", &joins)?;
        counter(
            &mut e,
            "fawkes_messages_in",
            "Frames received from clients",
            &[(&[], c.messages_in())],
        )?;
        counter(
            &mut e,
            "fawkes_messages_out",
            "Frames queued for clients (replies, pushes, broadcast deliveries)",
            &[(&[], c.messages_out())],
        )?;
        counter(
            &mut e,
            "fawkes_broadcasts",
            "Broadcasts dispatched on this node",
            &[(&[], c.broadcasts())],
        )?;
        counter(
            &mut e,
            "fawkes_deliveries",
            "Broadcast frames handed to this node's sessions",
            &[(&[], c.deliveries())],
        )?;
        counter(
            &mut e,
            "fawkes_undeliverable_frames",
            "Frames no transport of their client can carry (binary for V1 or LongPoll)",
            &[(&[], c.undeliverable_frames())],
        )?;
        let closed: Vec<([(&str, &str); 1], u64)> = CLOSE_REASONS
            .iter()
            .map(|r| ([("reason", *r)], c.closed(r)))
            .collect();
        let closed: Vec<(Labels<'_>, u64)> = closed.iter().map(|(l, v)| (&l[..], *v)).collect();
        counter(
            &mut e,
            "fawkes_sessions_closed",
            "Client sessions ended, by reason",
            &closed,
        )?;
        counter(
            &mut e,
            "fawkes_slow_clients_evicted",
            "Sessions closed because their outbound queue was full",
            &[(&[], c.closed("slow_client"))],
        )?;
        let rejected: Vec<([(&str, &str); 1], u64)> = REJECTED_FRAME_REASONS
            .iter()
            .map(|r| ([("reason", *r)], c.closed(r)))
            .collect();
        let rejected: Vec<(Labels<'_>, u64)> = rejected.iter().map(|(l, v)| (&l[..], *v)).collect();
        counter(
            &mut e,
            "fawkes_frames_rejected",
            "Client frames that closed their session, by reason",
            &rejected,
        )?;
        counter(
            &mut e,
            "fawkes_rate_limited",
            "Joins refused and sessions closed for a socket rate limit",
            &[
                (&[("kind", "join")], s.rate_limited.0),
                (&[("kind", "message")], s.rate_limited.1),
                (&[("kind", "max_channels")], s.over_max_channels),
            ],
        )?;
        if let Some(entries) = s.presence_entries {
            gauge(
                &mut e,
                "fawkes_presence_entries",
                "Presence entries on this node (every replica's)",
                &[(&[], signed(entries))],
            )?;
        }
        gauge(
            &mut e,
            "fawkes_draining",
            "1 while the node drains its clients (not ready)",
            &[(&[], i64::from(s.draining))],
        )?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            gauge(
                &mut e,
                "fawkes_tasks_alive",
                "Tasks alive on the async runtime serving this scrape",
                &[(&[], signed(runtime.metrics().num_alive_tasks() as u64))],
            )?;
        }
        if let Some((connected, failed)) = s.redis {
            gauge(
                &mut e,
                "fawkes_redis_connected",
                "1 when the Redis link answered its last check",
                &[(&[], i64::from(connected))],
            )?;
            counter(
                &mut e,
                "fawkes_redis_publish_failed",
                "Broadcasts Redis did not take (the other nodes missed them)",
                &[(&[], failed)],
            )?;
        }
        if let Some(up) = c.cluster.peer_nodes_up() {
            gauge(
                &mut e,
                "fawkes_peer_nodes_up",
                "Other nodes this node hears from",
                &[(&[], signed(up))],
            )?;
        }
        if let Some(lag) = c.cluster.gossip_lag_ms() {
            gauge(
                &mut e,
                "fawkes_gossip_lag_milliseconds",
                "Age of the stalest heartbeat among the peer nodes that are up",
                &[(&[], signed(lag))],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn renders_counters_gauges_and_labels() {
        let counters = Arc::new(Counters::default());
        counters.session_opened(Transport::WebSocket);
        counters.join(JoinOutcome::Ok);
        counters.broadcast(3);
        counters.session_opened(Transport::LongPoll);
        counters.session_closed(Transport::LongPoll, "slow_client");
        let text = render(
            &counters,
            Sources {
                presence_entries: Some(5),
                redis: Some((true, 2)),
                ..Sources::default()
            },
        );
        assert_eq!(
            value(&text, "fawkes_connections{transport=\"websocket\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "fawkes_connections{transport=\"longpoll\"}"),
            Some(0.0)
        );
        assert_eq!(value(&text, "fawkes_joins_total{result=\"ok\"}"), Some(1.0));
        assert_eq!(value(&text, "fawkes_deliveries_total"), Some(3.0));
        assert_eq!(value(&text, "fawkes_slow_clients_evicted_total"), Some(1.0));
        assert_eq!(
            value(
                &text,
                "fawkes_sessions_closed_total{reason=\"slow_client\"}"
            ),
            Some(1.0)
        );
        assert_eq!(value(&text, "fawkes_presence_entries"), Some(5.0));
        assert_eq!(value(&text, "fawkes_redis_connected"), Some(1.0));
        assert_eq!(value(&text, "fawkes_peer_nodes_up"), None);
        assert_eq!(value(&text, "fawkes_tasks_alive"), None, "no runtime here");
        assert!(text.contains("# TYPE fawkes_joins counter"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[tokio::test]
    async fn counts_the_tasks_alive_on_the_runtime() {
        let counters = Arc::new(Counters::default());
        let before = value(&render(&counters, Sources::default()), "fawkes_tasks_alive")
            .expect("a gauge inside a runtime");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rx.await;
        });
        let during = value(&render(&counters, Sources::default()), "fawkes_tasks_alive");
        assert_eq!(during, Some(before + 1.0));
        let _ = tx.send(());
        let _ = task.await;
        let after = value(&render(&counters, Sources::default()), "fawkes_tasks_alive");
        assert_eq!(after, Some(before));
    }
}
