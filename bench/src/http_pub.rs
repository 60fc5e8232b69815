//! Publishing over HTTP: `POST /api/broadcast` with
//! `{"topic", "event", "payload"}` on one keep-alive connection (the
//! conformance app's endpoint for `Endpoint.broadcast/3`).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::conn::Connector;

/// One HTTP/1.1 connection to the server's broadcast API.
pub(crate) struct HttpPublisher {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    path: String,
}

impl HttpPublisher {
    /// Connect as connection number `index` (for its source address).
    pub(crate) async fn connect(
        connector: &Connector,
        index: usize,
    ) -> Result<HttpPublisher, String> {
        let tcp = connector.tcp(index).await.map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        tokio::spawn(connection);
        let target = connector.target();
        Ok(HttpPublisher {
            sender,
            authority: target.authority.clone(),
            path: format!("{}/api/broadcast", target.base_path),
        })
    }

    /// Broadcast `event` with `payload` on `topic`; waits for the response.
    pub(crate) async fn broadcast(
        &mut self,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> Result<(), String> {
        let body = json!({"topic": topic, "event": event, "payload": payload}).to_string();
        let request = hyper::Request::post(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("http: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("http: {e}"))?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {} answered {status}", self.path))
        }
    }
}
