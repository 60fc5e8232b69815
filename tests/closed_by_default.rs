//! `fawkes serve` is closed by default: a websocket from another origin is
//! refused with 403, and `POST /api/broadcast` needs the bearer secret.

mod support;

use support::binary::{post, ws_status, Fawkes};

const BROADCAST: &str = r#"{"topic":"room:lobby","event":"news","payload":{}}"#;

#[tokio::test]
async fn a_cross_origin_websocket_is_refused_with_403() {
    let fawkes = Fawkes::start(None, &[]).await;
    let url = fawkes.ws_url("vsn=2.0.0");
    let same = format!("http://127.0.0.1:{}", fawkes.port);
    assert_eq!(ws_status(&url, &[("origin", &same)]).await, 101);
    assert_eq!(ws_status(&url, &[]).await, 101, "no Origin: not a browser");
    assert_eq!(
        ws_status(&url, &[("origin", "http://evil.example")]).await,
        403
    );
    assert!(!fawkes
        .log()
        .iter()
        .any(|l| l.contains("check_origin is off")));
    fawkes.stop().await;
}

#[tokio::test]
async fn check_origin_false_accepts_any_origin_and_says_so_at_startup() {
    let config = "[[socket]]\npath = \"/socket\"\ncheck_origin = false\n";
    let fawkes = Fawkes::start(Some(config), &[]).await;
    let url = fawkes.ws_url("vsn=2.0.0");
    assert_eq!(
        ws_status(&url, &[("origin", "http://evil.example")]).await,
        101
    );
    assert!(
        fawkes.logged("check_origin is off").await,
        "{:?}",
        fawkes.log()
    );
    fawkes.stop().await;
}

#[tokio::test]
async fn broadcast_api_is_off_without_a_secret() {
    let fawkes = Fawkes::start(None, &[]).await;
    let (status, body) = post(fawkes.port, "/api/broadcast", &[], BROADCAST).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("broadcast API is off"), "{body}");
    // a text/plain cross-site form post gets no further
    let (status, _) = post(
        fawkes.port,
        "/api/broadcast",
        &[("content-type", "text/plain"), ("authorization", "Bearer ")],
        BROADCAST,
    )
    .await;
    assert_eq!(status, 401);
    fawkes.stop().await;
}

#[tokio::test]
async fn broadcast_api_requires_the_bearer_secret() {
    let fawkes = Fawkes::start(None, &[("FAWKES_API_SECRET", "let-me-in")]).await;
    let (status, _) = post(fawkes.port, "/api/broadcast", &[], BROADCAST).await;
    assert_eq!(status, 401);
    let wrong = [("authorization", "Bearer let-me-in-not")];
    let (status, _) = post(fawkes.port, "/api/broadcast", &wrong, BROADCAST).await;
    assert_eq!(status, 401);
    let right = [("authorization", "Bearer let-me-in")];
    let (status, body) = post(fawkes.port, "/api/broadcast", &right, BROADCAST).await;
    assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
    fawkes.stop().await;
}

#[tokio::test]
async fn broadcast_secret_from_the_config_file() {
    let config = "[api]\nbroadcast_secret = \"from-file\"\n";
    let fawkes = Fawkes::start(Some(config), &[]).await;
    let right = [("authorization", "Bearer from-file")];
    let (status, _) = post(fawkes.port, "/api/broadcast", &right, BROADCAST).await;
    assert_eq!(status, 200);
    let (status, _) = post(fawkes.port, "/api/broadcast", &[], BROADCAST).await;
    assert_eq!(status, 401);
    fawkes.stop().await;
}
