//! Publishing over HTTP: `POST /api/broadcast` with
//! `{"topic", "event", "payload"}` on one keep-alive connection (the
//! conformance app's endpoint for `Endpoint.broadcast/3`).

use serde_json::{json, Value};

use crate::conn::Connector;
use crate::http_client::HttpConn;

/// One HTTP/1.1 connection to the server's broadcast API.
pub(crate) struct HttpPublisher {
    conn: HttpConn,
    path: String,
}

impl HttpPublisher {
    /// Connect as connection number `index` (for its source address).
    pub(crate) async fn connect(
        connector: &Connector,
        index: usize,
    ) -> Result<HttpPublisher, String> {
        let conn = HttpConn::connect(connector, index, connector.timeout()).await?;
        Ok(HttpPublisher {
            conn,
            path: format!("{}/api/broadcast", connector.target().base_path),
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
        let (status, _) = self.conn.post(&self.path, "application/json", body).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("POST {} answered {status}", self.path))
        }
    }
}
