//! A fawkes node on a Phoenix app's PubSub channel (`Conf.PubSub`) over a
//! real `redis-server`, fed messages as a Phoenix node would publish them:
//! broadcasts whose payload holds a term with no JSON form (pid, reference,
//! fun, a tuple) are dropped and counted in `ClusterStats::no_json_form`,
//! never delivered, and never stop the node from delivering the next one.

mod support;

use std::time::Duration;

use fawkes::pubsub::redis::{self as engine, RedisOptions};
use fawkes::{Endpoint, Socket};
use fawkes_etf::{encode, EncodeOptions, Opaque, OpaqueKind, Term};
use serde_json::json;
use support::redis::RedisServer;
use support::{Client, Server};

/// Longest wait for the node to reach a state (turns a hang into a failure).
const SETTLE: Duration = Duration::from_secs(20);

/// `{3, :except, :phx_a, topic, %Phoenix.Socket.Broadcast{...}, Phoenix.Channel.Server}`
/// with `payload`, as a Phoenix node named `phx_a` publishes it.
fn phoenix_publish(topic: &str, event: &str, payload: Term) -> Vec<u8> {
    let broadcast = fawkes_etf::sorted_map(vec![
        (
            Term::atom("__struct__"),
            Term::atom("Elixir.Phoenix.Socket.Broadcast"),
        ),
        (Term::atom("event"), Term::binary(event)),
        (Term::atom("payload"), payload),
        (Term::atom("topic"), Term::binary(topic)),
    ]);
    let message = Term::Tuple(vec![
        Term::Integer(3),
        Term::atom("except"),
        Term::atom("phx_a"),
        Term::binary(topic),
        broadcast,
        Term::atom("Elixir.Phoenix.Channel.Server"),
    ]);
    encode(&message, &EncodeOptions::default()).expect("encodable")
}

/// An atom as ATOM_EXT bytes (inside an opaque term's encoding).
fn atom_bytes(name: &str) -> Vec<u8> {
    let mut out = vec![100, 0, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out
}

fn opaque(kind: OpaqueKind, encoded: Vec<u8>) -> Term {
    Term::Opaque(Opaque { kind, encoded })
}

/// `self()` of a Phoenix node (NEW_PID_EXT), `make_ref()` (NEWER_REFERENCE_EXT)
/// and `&erlang:self/0` (EXPORT_EXT), as `term_to_binary` writes them.
fn terms_without_json_form() -> Vec<(&'static str, Term)> {
    let node = atom_bytes("phx_a@127.0.0.1");
    let mut pid = vec![88];
    pid.extend_from_slice(&node);
    pid.extend_from_slice(&[0, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 3]);
    let mut reference = vec![90, 0, 3];
    reference.extend_from_slice(&node);
    reference.extend_from_slice(&[0, 0, 0, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    let mut fun = vec![113];
    fun.extend_from_slice(&atom_bytes("erlang"));
    fun.extend_from_slice(&atom_bytes("self"));
    fun.extend_from_slice(&[97, 0]);
    vec![
        ("pid", opaque(OpaqueKind::Pid, pid)),
        ("reference", opaque(OpaqueKind::Reference, reference)),
        ("fun", opaque(OpaqueKind::Fun, fun)),
        (
            "tuple",
            Term::Tuple(vec![Term::atom("ok"), Term::Integer(1)]),
        ),
    ]
}

#[tokio::test]
async fn terms_without_json_form_are_dropped_and_counted() {
    let redis = RedisServer::start();
    let mut options = RedisOptions::new(redis.url(), "fawkes_b");
    options.pubsub_name = "Conf.PubSub".into();
    let cluster = engine::start(options).expect("valid options");
    let endpoint = Endpoint::builder()
        .pubsub_instance(cluster.pubsub)
        .socket(
            "/socket",
            Socket::new().channel("room:*", support::TestChannel::default),
        )
        .build();
    let server = Server::start_endpoint(endpoint).await;
    let stats = cluster.stats;
    tokio::time::timeout(SETTLE, async {
        while !stats.snapshot().connected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("subscribed in time");
    let mut client = Client::connect(&server.url("vsn=2.0.0")).await;
    client.join("room:x", "1").await;

    let redis_client = redis::Client::open(redis.url()).expect("url");
    let mut conn = redis_client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let channel = "phx:Elixir.Conf.PubSub.Adapter";
    let dropped = terms_without_json_form();
    let mut messages: Vec<Vec<u8>> = dropped
        .iter()
        .map(|(name, term)| {
            // Nested inside an ordinary map, as an app's payload would carry it.
            let payload = fawkes_etf::sorted_map(vec![
                (Term::binary("name"), Term::binary(name)),
                (Term::binary("value"), term.clone()),
            ]);
            phoenix_publish("room:x", "has_no_json", payload)
        })
        .collect();
    messages.push(phoenix_publish(
        "room:x",
        "after",
        fawkes_etf::json::from_json(&json!({"ok": true})),
    ));
    for bytes in messages {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(bytes)
            .query_async(&mut conn)
            .await
            .expect("publish");
        assert_eq!(receivers, 1, "the fawkes node is subscribed to {channel}");
    }
    // Redis delivers in order: the first frame the client gets is the good
    // broadcast published after the four that have no JSON form.
    let frame = client.recv_json().await;
    assert_eq!(
        frame,
        json!([null, null, "room:x", "after", {"ok": true}]),
        "{frame}"
    );
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.no_json_form, dropped.len() as u64, "{snapshot:?}");
    assert_eq!(snapshot.garbage, 0, "{snapshot:?}");
    assert_eq!(snapshot.received, 1, "{snapshot:?}");
}
