//! `POST /api/broadcast`: `Endpoint.broadcast/3` over HTTP.

use bytes::Bytes;
use fawkes::endpoint::{HttpRequest, HttpResponse};
use fawkes::{Payload, PubSub};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode};
use serde::Deserialize;

/// Largest accepted request body.
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Deserialize)]
struct BroadcastRequest {
    topic: String,
    event: String,
    #[serde(default)]
    payload: serde_json::Value,
}

pub(super) async fn handle(pubsub: PubSub, req: HttpRequest) -> HttpResponse {
    if req.uri().path() != "/api/broadcast" {
        return json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into());
    }
    if req.method() != Method::POST {
        return json(StatusCode::METHOD_NOT_ALLOWED, r#"{"error":"use POST"}"#.into());
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return json(StatusCode::BAD_REQUEST, error_body(&error.to_string())),
    };
    let request: BroadcastRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return json(StatusCode::BAD_REQUEST, error_body(&error.to_string())),
    };
    pubsub.broadcast(&request.topic, &request.event, Payload::Json(request.payload));
    json(StatusCode::OK, r#"{"ok":true}"#.into())
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn json(status: StatusCode, body: String) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
