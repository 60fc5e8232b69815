//! End-to-end: the `fawkes` binary's `/dashboard`: off (404) without a
//! secret; with one, basic auth for user `admin` guards the page (401 and
//! a browser challenge otherwise) and a token minted by the page guards the
//! dashboard socket; the snapshots pushed on `fawkes:dashboard` follow
//! clients joining and leaving, and a topic's presences name their node.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use support::binary::{get_with as get, ws_status, Fawkes};
use support::Client;

const CONFIG: &str = "[dashboard]\nsecret = \"peek-a-boo\"\n";

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// The socket token the page embeds.
fn token_of(page: &str) -> String {
    let start = page.find("let token = \"").expect("a token in the page") + "let token = \"".len();
    let end = page[start..].find('"').expect("end of the token");
    page[start..start + end].to_owned()
}

fn dashboard_url(port: u16, token: &str) -> String {
    format!("ws://127.0.0.1:{port}/dashboard/socket/websocket?vsn=2.0.0&token={token}")
}

#[tokio::test]
async fn off_without_a_secret() {
    let fawkes = Fawkes::start(None, &[]).await;
    let (status, _, _) = get(fawkes.port, "/dashboard", &[]).await;
    assert_eq!(status, 404);
    let auth = basic("admin", "anything");
    let (status, _, _) = get(fawkes.port, "/dashboard", &[("authorization", &auth)]).await;
    assert_eq!(status, 404);
    assert_eq!(
        ws_status(&dashboard_url(fawkes.port, "x"), &[]).await,
        404,
        "no dashboard socket either"
    );
    assert!(fawkes.logged("GET /dashboard is off").await);
    fawkes.stop().await;
}

#[tokio::test]
async fn the_page_wants_admin_and_the_secret_and_the_socket_a_fresh_token() {
    let fawkes = Fawkes::start(Some(CONFIG), &[]).await;
    let port = fawkes.port;
    let (status, headers, _) = get(port, "/dashboard", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or("")),
        Some("Basic realm=\"fawkes\"")
    );
    for (user, password) in [
        ("admin", "peek-a-bo"),
        ("root", "peek-a-boo"),
        ("admin", ""),
    ] {
        let auth = basic(user, password);
        for path in ["/dashboard", "/dashboard/token", "/dashboard/phoenix.mjs"] {
            let (status, _, _) = get(port, path, &[("authorization", &auth)]).await;
            assert_eq!(status, 401, "{user}:{password} {path}");
        }
    }
    let auth = basic("admin", "peek-a-boo");
    let (status, headers, page) = get(port, "/dashboard", &[("authorization", &auth)]).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(page.contains("<title>fawkes dashboard</title>"));
    let token = token_of(&page);
    assert!(!token.starts_with("__"), "a minted token: {token}");
    let (status, _, js) = get(port, "/dashboard/phoenix.mjs", &[("authorization", &auth)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        js,
        include_str!("../src/bin/fawkes/dashboard/phoenix.mjs"),
        "the vendored phoenix.js"
    );
    let (status, _, fresh) = get(port, "/dashboard/token", &[("authorization", &auth)]).await;
    assert_eq!(status, 200);

    let no_token = format!("ws://127.0.0.1:{port}/dashboard/socket/websocket?vsn=2.0.0");
    assert_eq!(ws_status(&no_token, &[]).await, 403);
    assert_eq!(
        ws_status(&dashboard_url(port, "peek-a-boo"), &[]).await,
        403
    );
    let (expiry, signature) = token.split_once('.').expect("expiry.signature");
    let later = expiry.parse::<u64>().expect("expiry") + 3600;
    assert_eq!(
        ws_status(&dashboard_url(port, &format!("{later}.{signature}")), &[]).await,
        403,
        "a token stretched by hand"
    );
    assert_eq!(ws_status(&dashboard_url(port, &token), &[]).await, 101);
    assert_eq!(ws_status(&dashboard_url(port, &fresh), &[]).await, 101);
    fawkes.stop().await;
}

/// Snapshots until one satisfies `ok` (fails after 10 s).
async fn snapshot_where(dashboard: &mut Client, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    snapshot_within(Duration::from_secs(10), dashboard, what, ok).await
}

/// Snapshots until one satisfies `ok` (fails after `limit`).
async fn snapshot_within(
    limit: Duration,
    dashboard: &mut Client,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot with {what}"
        );
        let frame = dashboard.recv_json().await;
        if frame[3] == "snapshot" && ok(&frame[4]) {
            return frame[4].clone();
        }
    }
}

fn subscribers(snapshot: &Value, topic: &str) -> Option<u64> {
    snapshot["topics"]["top"]
        .as_array()?
        .iter()
        .find(|row| row["topic"] == topic)?["subscribers"]
        .as_u64()
}

#[tokio::test]
async fn snapshots_follow_clients_and_list_a_topics_presences() {
    let fawkes = Fawkes::start(Some(CONFIG), &[]).await;
    let port = fawkes.port;
    let auth = basic("admin", "peek-a-boo");
    let (_, _, page) = get(port, "/dashboard", &[("authorization", &auth)]).await;
    let mut dashboard = Client::connect(&dashboard_url(port, &token_of(&page))).await;
    dashboard
        .send_json(json!(["1", "1", "fawkes:dashboard", "phx_join", {}]))
        .await;
    let reply = dashboard.recv_json().await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    let first = &reply[4]["response"]["snapshot"];
    assert_eq!(
        first["connections"],
        json!({"websocket": 1, "longpoll": 0}),
        "only the dashboard: {first}"
    );
    assert_eq!(reply[4]["response"]["history"], json!([]));
    assert_eq!(first["cluster"], Value::Null);

    let mut alice = Client::connect(&fawkes.ws_url("vsn=2.0.0&user=alice")).await;
    let mut bob = Client::connect(&fawkes.ws_url("vsn=2.0.0&user=bob")).await;
    alice.join("room:dash", "1").await;
    bob.join("room:dash", "1").await;
    let busy = snapshot_where(&mut dashboard, "3 websockets and room:dash x2", |s| {
        s["connections"]["websocket"] == 3 && subscribers(s, "room:dash") == Some(2)
    })
    .await;
    assert_eq!(busy["channels_joined"], 3, "{busy}");
    assert_eq!(subscribers(&busy, "fawkes:dashboard"), Some(1), "{busy}");
    // The two presences on room:dash (tracked after the join reply).
    snapshot_where(&mut dashboard, "2 presences", |s| {
        s["presence_entries"] == 2
    })
    .await;

    // A message relayed from alice to bob shows in the rates.
    alice
        .send_json(json!(["1", "2", "room:dash", "new_msg", {"body": "hi"}]))
        .await;
    let rated = snapshot_where(&mut dashboard, "a delivery per second", |s| {
        s["rate"]["deliveries"].as_f64().is_some_and(|d| d >= 1.0)
    })
    .await;
    assert!(
        rated["rate"]["messages_in"].as_f64().unwrap_or(0.0) >= 1.0,
        "{rated}"
    );

    dashboard
        .send_json(json!(["1", "3", "fawkes:dashboard", "presence", {"topic": "room:dash"}]))
        .await;
    let listed = loop {
        let frame = dashboard.recv_json().await;
        if frame[3] == "phx_reply" && frame[1] == "3" {
            break frame[4].clone();
        }
    };
    assert_eq!(listed["status"], "ok", "{listed}");
    let presences = listed["response"]["presences"]
        .as_array()
        .expect("presences");
    let keys: Vec<&str> = presences.iter().filter_map(|p| p["key"].as_str()).collect();
    assert_eq!(keys, ["alice", "bob"], "{listed}");
    assert!(presences
        .iter()
        .all(|p| p["node"] == "fawkes" && p["meta"]["phx_ref"].is_string()));

    dashboard
        .send_json(json!(["1", "4", "fawkes:dashboard", "topics", {"query": "DASH"}]))
        .await;
    let found = loop {
        let frame = dashboard.recv_json().await;
        if frame[3] == "phx_reply" && frame[1] == "4" {
            break frame[4]["response"].clone();
        }
    };
    assert_eq!(found["total"], 2, "room:dash and fawkes:dashboard: {found}");
    assert_eq!(
        found["top"][0],
        json!({"topic": "room:dash", "subscribers": 2})
    );

    drop(bob);
    let after = snapshot_where(&mut dashboard, "bob gone", |s| {
        s["connections"]["websocket"] == 2
            && subscribers(s, "room:dash") == Some(1)
            && s["presence_entries"] == 1
    })
    .await;
    assert_eq!(after["evictions"]["slow_client"], 0);
    assert!(after["refused"].get("invalid_frame").is_some(), "{after}");
    drop(alice);
    fawkes.stop().await;
}

#[tokio::test]
async fn in_a_cluster_the_snapshot_shows_the_node_and_its_redis_link() {
    let mut redis = support::redis::RedisServer::start();
    let config = format!(
        "{CONFIG}[cluster]\nredis_url = \"{}\"\nnode_name = \"dash-a\"\n",
        redis.url()
    );
    let fawkes = Fawkes::start(Some(&config), &[]).await;
    let auth = basic("admin", "peek-a-boo");
    let (_, _, page) = get(fawkes.port, "/dashboard", &[("authorization", &auth)]).await;
    let mut dashboard = Client::connect(&dashboard_url(fawkes.port, &token_of(&page))).await;
    dashboard.join("fawkes:dashboard", "1").await;
    let up = snapshot_where(&mut dashboard, "the redis link up", |s| {
        s["cluster"]["redis_connected"] == true
    })
    .await;
    assert_eq!(up["cluster"]["node"], "dash-a", "{up}");
    redis.kill();
    // The engine notices at its next failed check (bounded by its own
    // timeouts and reconnect back-off).
    let down = snapshot_within(
        Duration::from_secs(40),
        &mut dashboard,
        "the redis link down",
        |s| s["cluster"]["redis_connected"] == false,
    )
    .await;
    assert_eq!(down["cluster"]["node"], "dash-a");
    let log = fawkes.log().join("\n");
    assert!(log.contains("lost redis"), "{log}");
    fawkes.stop().await;
}

#[tokio::test]
async fn in_a_cluster_the_peers_and_the_node_of_each_presence_show() {
    let redis = support::redis::RedisServer::start();
    let node = |name: &str| {
        format!(
            "{CONFIG}[cluster]\nredis_url = \"{}\"\nnode_name = \"{name}\"\n",
            redis.url()
        )
    };
    let a = Fawkes::start(Some(&node("dash-a")), &[]).await;
    let b = Fawkes::start(Some(&node("dash-b")), &[]).await;
    let auth = basic("admin", "peek-a-boo");
    let (_, _, page) = get(a.port, "/dashboard", &[("authorization", &auth)]).await;
    let mut dashboard = Client::connect(&dashboard_url(a.port, &token_of(&page))).await;
    dashboard.join("fawkes:dashboard", "1").await;
    let mut bob = Client::connect(&b.ws_url("vsn=2.0.0&user=bob")).await;
    bob.join("room:spread", "1").await;
    let mut alice = Client::connect(&a.ws_url("vsn=2.0.0&user=alice")).await;
    alice.join("room:spread", "1").await;
    snapshot_within(
        Duration::from_secs(20),
        &mut dashboard,
        "peer dash-b",
        |s| {
            s["cluster"]["peers"] == json!(["dash-b"])
                && s["cluster"]["peer_states"][0]["up"] == json!(true)
                && s["presence_entries"] == 2
        },
    )
    .await;
    dashboard
        .send_json(json!(["1", "2", "fawkes:dashboard", "presence", {"topic": "room:spread"}]))
        .await;
    let listed = loop {
        let frame = dashboard.recv_json().await;
        if frame[3] == "phx_reply" && frame[1] == "2" {
            break frame[4]["response"].clone();
        }
    };
    let nodes: Vec<(&str, &str)> = listed["presences"]
        .as_array()
        .expect("presences")
        .iter()
        .filter_map(|p| Some((p["key"].as_str()?, p["node"].as_str()?)))
        .collect();
    assert_eq!(nodes, [("alice", "dash-a"), ("bob", "dash-b")], "{listed}");
    drop((alice, bob));
    a.stop().await;
    b.stop().await;
}
