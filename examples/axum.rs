//! fawkes inside an axum application: the app keeps its own routes,
//! middleware and graceful shutdown; the phoenix socket is nested under
//! `/socket` (websocket and longpoll).
//!
//! `cargo run --example axum --features tower -- 4003`, with the API token
//! in `API_TOKEN` (default `dev-token`), then:
//! * `GET /hello`: a plain axum route, open to all;
//! * `GET /api/me` with `authorization: Bearer <token>`: an authenticated
//!   route (401 without the token), behind an axum middleware;
//! * phoenix.js: `new Socket("ws://127.0.0.1:4003/socket", {params: {token,
//!   user: "ana"}})` (or `transport: LongPoll`), join `room:<anything>` and
//!   push `"ping"` with `{"body": ...}`: the reply echoes it with the user.
//!   A socket without the token is refused, like the API.
//!
//! Ctrl-C drains the sessions (websockets close with 1012, so phoenix.js
//! reconnects elsewhere) inside axum's graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fawkes::prelude::*;
use fawkes::{Connected, Endpoint, Socket, SocketOptions};
use serde::{Deserialize, Serialize};

/// The token both the API and the socket ask for.
#[derive(Clone)]
struct ApiToken(Arc<str>);

/// What a `ping` carries.
#[derive(Deserialize, Serialize)]
struct Ping {
    body: String,
}

/// A room answering `ping` with its body and the socket's user.
#[derive(Default)]
struct Room;

impl Channel for Room {
    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        match event {
            "ping" => {
                let ping: Ping = payload.deserialize()?;
                let user = socket.assign_str("user").unwrap_or_default();
                reply_ok(serde_json::json!({ "pong": ping.body, "user": user }))
            }
            _ => Err(ChannelError::reason("unknown event")),
        }
    }
}

/// The fawkes endpoint: one socket, its connect callback checking the token.
fn endpoint(token: ApiToken) -> Endpoint {
    let socket = Socket::new()
        .connect(move |info: fawkes::ConnectInfo| {
            let token = token.clone();
            async move {
                if info.param("token") != Some(&*token.0) {
                    return Err(fawkes::ConnectRefused);
                }
                let user = info.param("user").unwrap_or("anonymous").to_owned();
                Ok(Connected::new()
                    .id(format!("user_socket:{user}"))
                    .assign("user", user))
            }
        })
        .channel("room:*", Room::default)
        // LongPoll is off by default, as in Phoenix.
        .options(SocketOptions {
            longpoll: true,
            ..SocketOptions::default()
        });
    // Nested under `/socket`, the endpoint sees `/websocket` and `/longpoll`:
    // the socket is mounted at its root. The app has its own health routes.
    Endpoint::builder()
        .socket("/", socket)
        .health_checks(false)
        .build()
}

/// Lets a request through only with `authorization: Bearer <token>`.
async fn require_token(State(token): State<ApiToken>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented == Some(&*token.0) {
        next.run(req).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(4003);
    let token = ApiToken(
        std::env::var("API_TOKEN")
            .unwrap_or_else(|_| "dev-token".to_owned())
            .into(),
    );
    let fawkes = endpoint(token.clone());
    let sockets = fawkes
        .clone()
        .into_service()
        .peer_addr(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    let api = Router::new()
        .route(
            "/api/me",
            get(|| async { Json(serde_json::json!({ "user": "api" })) }),
        )
        .route_layer(middleware::from_fn_with_state(token.clone(), require_token));
    let app = Router::new()
        .route("/hello", get(|| async { "hello from axum" }))
        .merge(api)
        .nest_service("/socket", sockets);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://127.0.0.1:{port} (socket at /socket)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        fawkes.shutdown().await;
    })
    .await
}
