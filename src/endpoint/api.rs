//! `POST /api/broadcast`: `Endpoint.broadcast/3` over HTTP, for backends
//! that publish to connected clients (and for remote `disconnect`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::{HttpRequest, HttpResponse};
use crate::pubsub::PubSub;
use fawkes_protocol::Payload;

/// Largest accepted request body.
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Deserialize)]
struct BroadcastRequest {
    topic: String,
    event: String,
    #[serde(default)]
    payload: serde_json::Value,
}

/// Answer a broadcast request: a `POST` with JSON body
/// `{"topic": T, "event": E, "payload": P}` broadcasts `E`/`P` to every
/// subscriber of `T` and answers `200 {"ok":true}`; anything else gets a
/// 4xx with `{"error": ...}`.
pub async fn handle_broadcast(pubsub: &PubSub, req: HttpRequest) -> HttpResponse {
    if req.method() != Method::POST {
        return json(StatusCode::METHOD_NOT_ALLOWED, error_body("use POST"));
    }
    let body = match super::read_body(req, MAX_BODY).await {
        Ok(body) => body,
        Err(error) => return json(error.status(), error_body(&error.to_string())),
    };
    let request: BroadcastRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return json(StatusCode::BAD_REQUEST, error_body(&error.to_string())),
    };
    pubsub.broadcast(
        &request.topic,
        &request.event,
        Payload::Json(request.payload),
    );
    json(StatusCode::OK, r#"{"ok":true}"#.into())
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// A JSON response.
pub fn json(status: StatusCode, body: String) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
