//! The LongPoll transport (HTTP polling), for clients without websockets.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::StatusCode;

use crate::endpoint::http::empty;
use crate::endpoint::{HttpRequest, HttpResponse, Shared};
use crate::socket::Socket;

/// Answer one longpoll request.
pub(crate) async fn handle(req: HttpRequest, socket: Arc<Socket>, shared: &Shared, peer: SocketAddr) -> HttpResponse {
    let _ = (req, socket, shared, peer);
    empty(StatusCode::NOT_FOUND)
}
