//! What the server counts for operators: the [`Counters`] every layer bumps
//! (plain atomics, touched once per event and never once per subscriber),
//! the [`ClusterGauges`] the cluster code sets, and [`render`], which turns
//! them into the Prometheus text format on each scrape of `/metrics`.
//!
//! The counters live in the endpoint's pubsub (every session, channel and
//! broadcast already holds it), so counting needs no extra field per
//! connection; everything derived (presence entries, open HTTP
//! connections, rate limits, the Redis link) is read only when scraped.

mod counters;
mod export;

pub use counters::{ClusterGauges, Counters, JoinOutcome, Transport, REJECTED_FRAME_REASONS};
pub use export::{render, Sources, CONTENT_TYPE};
