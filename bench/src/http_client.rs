//! A plain HTTP/1.1 client connection (keep-alive) for what is not a
//! websocket: LongPoll polls and posts, and `/metrics` scrapes.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::conn::Connector;

/// One HTTP/1.1 connection to the primary target, used for one request at
/// a time.
pub(crate) struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    timeout: Duration,
}

impl HttpConn {
    /// Connect as connection number `index` (for its source address); each
    /// request then waits at most `timeout`.
    pub(crate) async fn connect(
        connector: &Connector,
        index: usize,
        timeout: Duration,
    ) -> Result<HttpConn, String> {
        let tcp = connector.tcp(index).await.map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(HttpConn {
            sender,
            authority: connector.target().authority.clone(),
            timeout,
        })
    }

    /// `GET path_and_query`; the status and the body as text.
    pub(crate) async fn get(&mut self, path_and_query: &str) -> Result<(u16, String), String> {
        let request = hyper::Request::get(path_and_query)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }

    /// `POST path_and_query` with `body` of `content_type`.
    pub(crate) async fn post(
        &mut self,
        path_and_query: &str,
        content_type: &str,
        body: String,
    ) -> Result<(u16, String), String> {
        let request = hyper::Request::post(path_and_query)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }

    async fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, String), String> {
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| format!("http: {e}"))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| format!("http: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("http body: {e}"))?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| "timeout waiting for an HTTP response".to_owned())?
    }
}

/// The value of the series `series` (name plus labels exactly as written,
/// e.g. `fawkes_connections{transport="websocket"}`) in a Prometheus text
/// scrape, if present.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        if !rest.starts_with(' ') {
            return None;
        }
        rest.split_ascii_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_series_by_exact_name_and_labels() {
        let text = "# TYPE fawkes_connections gauge\n\
                    fawkes_connections{transport=\"websocket\"} 12\n\
                    fawkes_connections{transport=\"longpoll\"} 3\n\
                    fawkes_tasks_alive 40\n\
                    fawkes_tasks_alive_extra 1\n";
        assert_eq!(
            metric(text, "fawkes_connections{transport=\"longpoll\"}"),
            Some(3.0)
        );
        assert_eq!(metric(text, "fawkes_tasks_alive"), Some(40.0));
        assert_eq!(metric(text, "fawkes_presence_entries"), None);
    }
}
