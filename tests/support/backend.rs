//! A real HTTP backend for webhook tests: a hyper server on 127.0.0.1:0
//! that checks each request's signature, records it, and answers with a
//! handler the test gives.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;

/// What a handler answers: HTTP status and body.
pub type Answer = Pin<Box<dyn Future<Output = (u16, String)> + Send>>;

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
    /// The signature matched and the timestamp is within 5 minutes.
    pub signed: bool,
}

/// A running backend; stops when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    /// Start a backend that checks signatures with `secret` and answers
    /// `handler(path, body)`.
    pub async fn start<F>(secret: &str, handler: F) -> Backend
    where
        F: Fn(String, Value) -> Answer + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let secret = secret.as_bytes().to_vec();
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let secret = secret.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let secret = secret.clone();
                        let log = log.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let timestamp = header("x-fawkes-timestamp");
                            let signature = header("x-fawkes-signature");
                            let body = req.into_body().collect().await?.to_bytes();
                            let signed = verify(&secret, &timestamp, &signature, &body);
                            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            log.lock().expect("log").push(Received {
                                path: path.clone(),
                                body: json.clone(),
                                signed,
                            });
                            let (status, text) = handler(path, json).await;
                            let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(status).expect("status");
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            addr,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

/// The backend's side of the signature: HMAC-SHA256 over
/// `"<timestamp>.<body>"`, hex, after `sha256=`, and a recent timestamp.
fn verify(secret: &[u8], timestamp: &str, signature: &str, body: &[u8]) -> bool {
    let Ok(ts) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(ts) > 300 {
        return false;
    }
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}
