//! Reading a request body with a size limit and a deadline, so a client that
//! sends half a body cannot hold its connection open.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::StatusCode;

/// The error type a request body may fail with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the transports can read: hyper's `Incoming` when fawkes
/// serves the connection, or the application's body type (axum's `Body`)
/// when the endpoint is nested as a service.
pub(crate) trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// The body read timeout the endpoint puts in each request's extensions
/// ([`HttpLimits::body_read_timeout`](super::HttpLimits)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyReadTimeout(pub(crate) Duration);

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than allowed.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The body did not arrive within the body read timeout.
    #[error("body not received within {0:?}")]
    TimedOut(Duration),
    /// The connection failed while reading the body.
    #[error("body read failed: {0}")]
    Read(Box<dyn std::error::Error + Send + Sync>),
}

impl BodyError {
    /// The HTTP status answering this error: 408 for a timeout, else 400
    /// (Plug answers an oversized body with 400 too).
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::TooLarge(_) | BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Read `req`'s whole body, at most `max` bytes, within the endpoint's body
/// read timeout (30 s when the request did not come through an endpoint).
/// Any body type with [`Bytes`] chunks: hyper's `Incoming`, axum's `Body`...
pub async fn read_body<B>(req: hyper::Request<B>, max: usize) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let timeout = req
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(super::HttpLimits::default().body_read_timeout, |t| t.0);
    let collect = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(BodyError::TimedOut(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge(max)),
        Ok(Err(error)) => Err(BodyError::Read(error)),
    }
}
