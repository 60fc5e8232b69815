//! The server's base URL and plain HTTP/1.1 requests (one connection per
//! request, hyper's low-level client over a tokio `TcpStream`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The base URL is not a usable `http://host[:port][/prefix]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid base URL {url:?}: {reason}")]
pub struct UrlError {
    /// The URL given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The server under test: `http://host:port` with an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Host name or address (IPv6 in brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix without a trailing slash (usually empty).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]` (`ws://` is accepted too).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let err = |reason| UrlError {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| err("only http:// (or ws://) URLs are supported"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(err("missing host"));
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                let port = authority[i + 1..]
                    .parse::<u16>()
                    .map_err(|_| err("invalid port"))?;
                (&authority[..i], port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            prefix: prefix.to_owned(),
        })
    }

    /// `host:port`, as used in the `Host` header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The websocket URL for `path` with an already encoded query string.
    pub fn ws_url(&self, path: &str, query: &str) -> String {
        let mut url = format!("ws://{}{}{}", self.authority(), self.prefix, path);
        if !query.is_empty() {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str(query);
        }
        url
    }

    fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// An HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting or I/O failed.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// The request could not be built (bad method or header).
    #[error("bad request: {0}")]
    Build(String),
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Hyper(#[from] hyper::Error),
    /// No complete response in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

/// A response: status and body text (lossy UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// Sends one request (`path` includes the query) and reads the whole response.
pub async fn request(
    base: &BaseUrl,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Duration,
) -> Result<HttpReply, HttpError> {
    tokio::time::timeout(timeout, exchange(base, method, path, headers, body))
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

async fn exchange(
    base: &BaseUrl,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<HttpReply, HttpError> {
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|e| HttpError::Build(e.to_string()))?;
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{}{}", base.prefix, path));
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        let host = HeaderValue::from_str(&base.authority())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        req = req.header(HOST, host);
    }
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| HttpError::Build(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| HttpError::Build(e.to_string()))?;
        req = req.header(name, value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| HttpError::Build(e.to_string()))?;

    let stream = TcpStream::connect((base.connect_host(), base.port)).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(req).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok::<_, HttpError>(HttpReply {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let b = BaseUrl::parse("http://127.0.0.1:4100").expect("ok");
        assert_eq!(b.host, "127.0.0.1");
        assert_eq!(b.port, 4100);
        assert_eq!(b.prefix, "");
        assert_eq!(
            b.ws_url("/socket/websocket", "vsn=2.0.0"),
            "ws://127.0.0.1:4100/socket/websocket?vsn=2.0.0"
        );
        let b = BaseUrl::parse("http://localhost/").expect("ok");
        assert_eq!((b.port, b.prefix.as_str()), (80, ""));
        let b = BaseUrl::parse("http://[::1]:9/x/").expect("ok");
        assert_eq!(
            (b.host.as_str(), b.port, b.prefix.as_str()),
            ("[::1]", 9, "/x")
        );
        assert!(BaseUrl::parse("https://x").is_err());
        assert!(BaseUrl::parse("http://x:notaport").is_err());
    }
}
