//! Codec micro-benchmarks: the inbound decode paths and the outbound encode
//! paths that sit on the broadcast hot path.
//!
//! Run with `cargo bench -p fawkes-protocol` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_main, Criterion, Throughput};
use fawkes_protocol::client::{decode_server_frame, encode_client_push};
use fawkes_protocol::{Broadcast, Frame, Message, Payload, Reply, Serializer};
use serde_json::{json, Value};

/// A JSON payload of roughly 100 bytes when serialized.
fn payload_100() -> Value {
    json!({
        "body": "the quick brown fox jumps over the lazy dog",
        "user_id": 123456,
        "tags": ["a", "b", "c"],
        "ok": true
    })
}

/// 100 opaque bytes.
fn bytes_100() -> Bytes {
    Bytes::from((0..100u8).collect::<Vec<u8>>())
}

fn push(payload: Payload) -> Message {
    Message {
        join_ref: Some("12".into()),
        ref_: Some("345".into()),
        topic: "room:lobby".into(),
        event: "new_msg".into(),
        payload,
    }
}

fn frame_bytes(frame: Result<Frame, fawkes_protocol::EncodeError>) -> Bytes {
    match frame {
        Ok(frame) => frame.into_bytes(),
        Err(err) => panic!("bench setup failed: {err}"),
    }
}

fn frame_text(frame: Result<Frame, fawkes_protocol::EncodeError>) -> String {
    match frame {
        Ok(Frame::Text(text)) => text,
        other => panic!("bench setup expected a text frame, got {other:?}"),
    }
}

fn decode(c: &mut Criterion) {
    let v2_text = frame_text(encode_client_push(&push(Payload::Json(payload_100()))));
    let v1_text = json!({
        "topic": "room:lobby", "event": "new_msg", "payload": payload_100(),
        "ref": "345", "join_ref": "12"
    })
    .to_string();
    let binary = frame_bytes(encode_client_push(&push(Payload::Binary(bytes_100()))));

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(v2_text.len() as u64));
    g.bench_function("v2_text", |b| {
        b.iter(|| Serializer::V2.decode_text(black_box(&v2_text)))
    });
    g.throughput(Throughput::Bytes(v1_text.len() as u64));
    g.bench_function("v1_text", |b| {
        b.iter(|| Serializer::V1.decode_text(black_box(&v1_text)))
    });
    g.throughput(Throughput::Bytes(binary.len() as u64));
    g.bench_function("v2_binary", |b| {
        b.iter(|| Serializer::V2.decode_binary(black_box(binary.clone())))
    });
    let server_text = Frame::Text(frame_text(Serializer::V2.encode_broadcast(
        &Broadcast::new("room:lobby", "new_msg", Payload::Json(payload_100())),
    )));
    g.bench_function("client_v2_text", |b| {
        b.iter(|| decode_server_frame(black_box(&server_text)))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let json_b = Broadcast::new("room:lobby", "new_msg", Payload::Json(payload_100()));
    let bin_b = Broadcast::new("room:lobby", "new_msg", Payload::Binary(bytes_100()));
    let json_push = push(Payload::Json(payload_100()));
    let bin_push = push(Payload::Binary(bytes_100()));
    let reply = Reply {
        join_ref: Some("12".into()),
        ref_: Some("345".into()),
        topic: "room:lobby".into(),
        status: "ok".into(),
        response: Payload::Json(payload_100()),
    };

    let mut g = c.benchmark_group("encode");
    g.bench_function("v2_broadcast_json", |b| {
        b.iter(|| Serializer::V2.encode_broadcast(black_box(&json_b)))
    });
    g.bench_function("v1_broadcast_json", |b| {
        b.iter(|| Serializer::V1.encode_broadcast(black_box(&json_b)))
    });
    g.bench_function("v2_reply_json", |b| {
        b.iter(|| Serializer::V2.encode_reply(black_box(&reply)))
    });
    g.bench_function("v2_push_json", |b| {
        b.iter(|| Serializer::V2.encode_message(black_box(&json_push)))
    });
    g.bench_function("v2_broadcast_binary", |b| {
        b.iter(|| Serializer::V2.encode_broadcast(black_box(&bin_b)))
    });
    g.bench_function("v2_push_binary", |b| {
        b.iter(|| Serializer::V2.encode_message(black_box(&bin_push)))
    });
    g.bench_function("client_push_binary", |b| {
        b.iter(|| encode_client_push(black_box(&bin_push)))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

/// Run every group with the short configuration (what `criterion_group!`
/// would generate, written out so it carries documentation).
fn benches() {
    let mut c = config().configure_from_args();
    decode(&mut c);
    encode(&mut c);
}

criterion_main!(benches);
