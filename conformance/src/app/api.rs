//! The app's HTTP routes: `POST /api/broadcast`, nothing else.

use fawkes::endpoint::{handle_broadcast, json, HttpRequest, HttpResponse};
use fawkes::PubSub;
use hyper::StatusCode;

pub(super) async fn handle(pubsub: PubSub, req: HttpRequest) -> HttpResponse {
    if req.uri().path() == "/api/broadcast" {
        handle_broadcast(&pubsub, req).await
    } else {
        json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into())
    }
}
