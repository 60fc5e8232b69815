//! The recording proxy behind `fawkes record`: a reverse proxy in front of
//! a Phoenix server ([`proxy`]) that hands what passes through to a
//! recorder ([`recorder`]) writing transcripts in the APP.md format, with
//! redaction and a topic filter ([`filter`]), grouping connections by time
//! window or by topic ([`grouping`]).
//!
//! The proxy never waits for the recorder: when the recorder's queue is
//! full or a file cannot be written, the transcript is dropped and the
//! traffic goes on.

pub mod filter;
pub mod grouping;
pub mod proxy;
pub mod recorder;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use filter::Filter;
pub use grouping::Grouping;
pub use recorder::{Recorder, RecorderConfig};

use crate::http::BaseUrl;

/// Events the recorder may lag behind before a transcript is dropped.
pub const QUEUE_CAPACITY: usize = 1 << 16;

/// Runs the proxy on `listener` in front of `upstream` until `shutdown`
/// resolves, then writes the open transcript; returns the files written.
/// `record_http` lists HTTP path prefixes recorded besides `…/longpoll`.
pub async fn run(
    listener: TcpListener,
    upstream: BaseUrl,
    record_http: Vec<String>,
    config: RecorderConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Vec<PathBuf> {
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE_CAPACITY);
    let lost = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(proxy::Shared::new(
        upstream,
        tx,
        Arc::clone(&lost),
        record_http,
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let recorder = tokio::spawn(Recorder::new(config).run(rx, lost, stop));
    proxy::serve(listener, shared, shutdown).await;
    // Connections still proxied keep running; what they do from now on is
    // not recorded.
    let _ = stop_tx.send(());
    recorder.await.unwrap_or_default()
}
