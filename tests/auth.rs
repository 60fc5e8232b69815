//! `fawkes serve` with `[socket.auth]`: Phoenix.Token tokens (minted here
//! with `fawkes::token`, byte-compatible with Phoenix) decide who connects;
//! the token's data becomes the assigns, the socket id and the presence key.

mod support;

use base64::Engine as _;
use fawkes::token::{SignOptions, TokenKey};
use serde_json::{json, Value};
use support::backend::Backend;
use support::binary::{post, ws_status, Fawkes};
use support::Client;

const BASE: &str = "the secret_key_base of the Elixir app, at least 64 bytes long, really";
const SALT: &str = "user socket";
const API: &str = "api-secret";

fn config(extra: &str) -> String {
    format!(
        r#"
[api]
broadcast_secret = "{API}"

[[socket]]
path = "/socket"
[socket.auth]
secret_key_base = "{BASE}"
salt = "{SALT}"
max_age = 3600
socket_id = "users_socket:{{user_id}}"
{extra}
[[socket.topic]]
pattern = "room:*"
presence = true
presence_key = "user_id"
"#
    )
}

fn token(data: Value) -> String {
    TokenKey::derive(BASE.as_bytes(), SALT.as_bytes()).sign_json(&data, &SignOptions::default())
}

/// The keys of the next `presence_state`.
async fn presence_keys(client: &mut Client) -> Vec<String> {
    loop {
        let frame = client.recv_json().await;
        if frame[3] == "presence_state" {
            return frame[4]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
        }
    }
}

#[tokio::test]
async fn a_valid_token_connects_and_its_user_is_the_presence_key() {
    let fawkes = Fawkes::start(Some(&config("")), &[]).await;
    let alice = token(json!({"user_id": "alice", "role": "admin"}));
    let mut client = Client::connect(&fawkes.ws_url(&format!("vsn=2.0.0&token={alice}"))).await;
    // a join param cannot pick another presence key
    client
        .send_json(json!(["1", "1", "room:a", "phx_join", {"user": "mallory"}]))
        .await;
    assert_eq!(presence_keys(&mut client).await, ["alice"]);
    fawkes.stop().await;
}

#[tokio::test]
async fn forged_expired_and_missing_tokens_get_403() {
    let fawkes = Fawkes::start(Some(&config("")), &[]).await;
    let other_app = TokenKey::derive(
        b"another app's secret_key_base, just as long as the first one",
        SALT.as_bytes(),
    )
    .sign_json(&json!({"user_id": "alice"}), &SignOptions::default());
    let expired = TokenKey::derive(BASE.as_bytes(), SALT.as_bytes()).sign_json(
        &json!({"user_id": "alice"}),
        &SignOptions {
            signed_at_ms: Some(1_000_000),
            ..SignOptions::default()
        },
    );
    for (what, query) in [
        ("forged", format!("vsn=2.0.0&token={other_app}")),
        ("expired", format!("vsn=2.0.0&token={expired}")),
        ("missing", "vsn=2.0.0".to_owned()),
        (
            "garbage",
            "vsn=2.0.0&token=SFMyNTY.bm9wZQ.bm9wZQ".to_owned(),
        ),
    ] {
        assert_eq!(ws_status(&fawkes.ws_url(&query), &[]).await, 403, "{what}");
    }
    assert!(fawkes.logged("connect refused: token expired").await);
    assert!(fawkes.logged("connect refused: token invalid").await);
    assert!(fawkes.logged("connect refused: token missing").await);
    fawkes.stop().await;
}

#[tokio::test]
async fn the_phoenix_js_auth_token_subprotocol_is_accepted() {
    let fawkes = Fawkes::start(Some(&config("")), &[]).await;
    let bob = token(json!({"user_id": "bob"}));
    // as phoenix.js: btoa(token) without "=" padding
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bob.as_bytes());
    let protocols = format!("phoenix, base64url.bearer.phx.{encoded}");
    let url = fawkes.ws_url("vsn=2.0.0");
    assert_eq!(
        ws_status(&url, &[("sec-websocket-protocol", &protocols)]).await,
        101
    );
    let forged = base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"SFMyNTY.e30.AAAA");
    let protocols = format!("phoenix, base64url.bearer.phx.{forged}");
    assert_eq!(
        ws_status(&url, &[("sec-websocket-protocol", &protocols)]).await,
        403
    );
    fawkes.stop().await;
}

#[tokio::test]
async fn the_socket_id_from_the_token_lets_the_backend_disconnect_a_user() {
    let fawkes = Fawkes::start(Some(&config("")), &[]).await;
    let carol = token(json!(42));
    let mut client = Client::connect(&fawkes.ws_url(&format!("vsn=2.0.0&token={carol}"))).await;
    client.join("room:x", "1").await;
    let auth = format!("Bearer {API}");
    let body = r#"{"topic":"users_socket:42","event":"disconnect","payload":{}}"#;
    let (status, _) = post(
        fawkes.port,
        "/api/broadcast",
        &[("authorization", &auth)],
        body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(client.recv_close().await, Some(1001));
    fawkes.stop().await;
}

#[tokio::test]
async fn the_connect_webhook_sees_the_token_assigns() {
    let backend = Backend::start("hook", |_path, body| {
        Box::pin(async move {
            let allowed = body["assigns"]["user_id"] == "dave";
            let answer = if allowed {
                json!({"status": "ok", "assigns": {"plan": "pro"}})
            } else {
                json!({"status": "error"})
            };
            (200, answer.to_string())
        })
    })
    .await;
    let hook = format!(
        "[socket.webhook]\nsecret = \"hook\"\nconnect = \"{}\"\n",
        backend.url("/connect")
    );
    let fawkes = Fawkes::start(Some(&config(&hook)), &[]).await;
    let dave = token(json!({"user_id": "dave"}));
    let erin = token(json!({"user_id": "erin"}));
    assert_eq!(
        ws_status(&fawkes.ws_url(&format!("vsn=2.0.0&token={dave}")), &[]).await,
        101
    );
    assert_eq!(
        ws_status(&fawkes.ws_url(&format!("vsn=2.0.0&token={erin}")), &[]).await,
        403
    );
    let received = backend.received();
    assert_eq!(received[0].body["assigns"], json!({"user_id": "dave"}));
    assert!(received.iter().all(|r| r.signed));
    fawkes.stop().await;
}
