//! The recorded phoenix_pubsub_redis traffic (`redis_capture.json`,
//! `redis_injection.json`) against `fawkes_etf::pubsub_redis`.

mod support;

use base64::Engine as _;
use fawkes_etf::pubsub_redis::{
    accept, decode, encode_broadcast, BroadcastPayload, Ignored, Mode, NodeName, PayloadRef,
    RedisBroadcast, Rejected,
};
use fawkes_etf::{AtomEncoding, EncodeOptions};
use serde_json::Value;
use support::{hex, load};

/// What a phoenix.js client frame says a broadcast was: (topic, event, payload).
fn frame_broadcast(frame: &Value) -> Option<(String, String, BroadcastPayload)> {
    if let Some(text) = frame.get("text").and_then(Value::as_str) {
        let array: Vec<Value> = serde_json::from_str(text).unwrap();
        let [_, _, topic, event, payload] = array.as_slice() else {
            panic!("not a V2 frame: {text}")
        };
        return Some((
            topic.as_str()?.into(),
            event.as_str()?.into(),
            BroadcastPayload::Json(payload.clone()),
        ));
    }
    let b64 = frame.get("binary_b64")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    // V2 binary broadcast: kind 2, topic length, event length, topic, event, payload.
    assert_eq!(bytes[0], 2, "binary broadcast kind");
    let (topic_len, event_len) = (bytes[1] as usize, bytes[2] as usize);
    let topic = String::from_utf8(bytes[3..3 + topic_len].to_vec()).unwrap();
    let event_end = 3 + topic_len + event_len;
    let event = String::from_utf8(bytes[3 + topic_len..event_end].to_vec()).unwrap();
    Some((
        topic,
        event,
        BroadcastPayload::Binary(bytes[event_end..].to_vec()),
    ))
}

fn layout_mode(layout: &Value) -> Mode {
    match layout["mode"].as_str().unwrap() {
        ":except" => Mode::Except,
        ":only" => Mode::Only,
        other => panic!("mode {other}"),
    }
}

fn layout_node(layout: &Value) -> NodeName {
    let name = layout["node_name"].as_str().unwrap();
    match name.strip_prefix(':') {
        Some(atom) => NodeName::Atom(atom.into()),
        None => NodeName::Other(fawkes_etf::Term::binary(name.trim_matches('"'))),
    }
}

/// Fields of a decoded message match the recorded layout.
fn check_layout(name: &str, message: &RedisBroadcast, layout: &Value) {
    assert_eq!(message.mode, layout_mode(layout), "{name}: mode");
    assert_eq!(message.node, layout_node(layout), "{name}: node");
    assert_eq!(
        message.topic,
        layout["topic"].as_str().unwrap(),
        "{name}: topic"
    );
    assert_eq!(
        message.dispatcher,
        format!("Elixir.{}", layout["dispatcher"].as_str().unwrap()),
        "{name}: dispatcher"
    );
}

/// Re-encode a decoded broadcast as fawkes would publish it.
fn reencode(message: &RedisBroadcast, node: &str, atoms: AtomEncoding) -> Vec<u8> {
    let payload = match &message.payload {
        BroadcastPayload::Json(value) => PayloadRef::Json(value),
        BroadcastPayload::Binary(bytes) => PayloadRef::Binary(bytes),
        BroadcastPayload::JsonText(text) => panic!("unexpected big integer payload {text}"),
    };
    let options = EncodeOptions {
        atoms,
        compression: None,
    };
    encode_broadcast(
        message.mode,
        node,
        &message.topic,
        &message.event,
        payload,
        &options,
    )
    .unwrap()
}

#[test]
fn every_captured_phoenix_publish_decodes_to_the_broadcast_it_records() {
    let capture = load("redis_capture.json");
    let mut broadcasts = 0;
    let mut tracker = 0;
    let mut all = Vec::new();
    for action in capture["actions"].as_array().unwrap() {
        for entry in action["captures"].as_array().unwrap() {
            all.push((action.clone(), entry.clone()));
        }
    }
    for entry in capture["background_messages_outside_actions"]
        .as_array()
        .unwrap()
    {
        all.push((Value::Null, entry.clone()));
    }
    for (action, entry) in &all {
        let name = action["action"].as_str().unwrap_or("background");
        assert_eq!(entry["channel"], "phx:Elixir.Conf.PubSub.Adapter");
        let bytes = hex(entry["payload_hex"].as_str().unwrap());
        let layout = &entry["layout"];
        if layout["message_type"] != "struct Phoenix.Socket.Broadcast" {
            // Phoenix.Tracker replication: recognised and skipped quietly.
            let err = decode(&bytes).unwrap_err();
            assert!(
                matches!(&err, Rejected::Ignored(Ignored::Tracker { topic }) if topic == layout["topic"].as_str().unwrap()),
                "{name}: {err:?}"
            );
            assert!(err.is_quiet());
            tracker += 1;
            continue;
        }
        let message = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_layout(name, &message, layout);
        assert_eq!(message.broadcast_topic, message.topic);
        // The broadcast it records: the HTTP request that caused it, else what bob received.
        let (topic, event, payload) = match action.get("http_request_body") {
            Some(body) => {
                let body: Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
                (
                    body["topic"].as_str().unwrap().to_owned(),
                    body["event"].as_str().unwrap().to_owned(),
                    BroadcastPayload::Json(body["payload"].clone()),
                )
            }
            None => {
                let (topic, event, mut payload) =
                    frame_broadcast(&action["websocket_clients_received"]["b"][0]).unwrap();
                if event == "filtered" {
                    // Intercepted: RoomChannel.handle_out added seen_by for bob.
                    if let BroadcastPayload::Json(Value::Object(map)) = &mut payload {
                        assert_eq!(map.remove("seen_by"), Some(Value::from("bob")));
                    }
                }
                (topic, event, payload)
            }
        };
        assert_eq!(
            (message.topic.as_str(), message.event.as_str()),
            (topic.as_str(), event.as_str()),
            "{name}"
        );
        assert_eq!(message.payload, payload, "{name}: payload");
        // Phoenix does not deliver its own echo; another node does.
        assert!(!accept(&message, "phx_a"), "{name}: own echo");
        assert!(accept(&message, "fawkes_b"), "{name}");
        // And fawkes, publishing the same broadcast as :phx_a, writes the same bytes.
        assert_eq!(
            reencode(&message, "phx_a", AtomEncoding::Latin1),
            bytes,
            "{name}: bytes"
        );
        broadcasts += 1;
    }
    assert_eq!((broadcasts, tracker), (13, 7), "captured entries checked");
}

#[test]
fn every_injection_case_behaves_as_recorded() {
    let injection = load("redis_injection.json");
    let subscribed = ["room:x", "users_socket:alice"];
    let cases = injection["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    let mut byte_identical = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let outcome = case["outcome"].as_str().unwrap();
        assert_eq!(injection["summary"][name], outcome, "{name}");
        let bytes = hex(case["payload_hex"].as_str().unwrap());
        let decoded = decode(&bytes);
        let delivered = match &decoded {
            Ok(message) => accept(message, "phx_a") && subscribed.contains(&message.topic.as_str()),
            Err(Rejected::Ignored(Ignored::Version(v))) => {
                assert_eq!(v, "2", "{name}");
                false
            }
            Err(other) => panic!("{name}: {other}"),
        };
        assert_eq!(delivered, outcome != "ignored", "{name}: {outcome}");
        let Ok(message) = decoded else { continue };
        check_layout(name, &message, &case["layout"]);
        if outcome == "ignored" {
            continue;
        }
        // What alice received is this broadcast.
        let received = &case["client_received"][0];
        match outcome {
            "socket closed" => {
                assert_eq!(message.event, "disconnect", "{name}");
                assert_eq!(received["closed"]["code"], 1001, "{name}");
            }
            "channel crash" => {
                // Dispatcher Phoenix.PubSub sends the Broadcast to the channel process.
                assert_eq!(message.dispatcher, "Elixir.Phoenix.PubSub", "{name}");
                assert!(received["text"].as_str().unwrap().contains("phx_error"));
            }
            _ => {
                let (topic, event, mut payload) = frame_broadcast(received).unwrap();
                if event == "filtered" {
                    if let BroadcastPayload::Json(Value::Object(map)) = &mut payload {
                        assert_eq!(map.remove("seen_by"), Some(Value::from("alice")));
                    }
                }
                assert_eq!(message.topic, topic, "{name}");
                assert_eq!(message.event, event, "{name}");
                assert_eq!(message.payload, payload, "{name}");
                assert_eq!(
                    message.dispatcher, "Elixir.Phoenix.Channel.Server",
                    "{name}"
                );
            }
        }
        // fawkes encoding the same broadcast means the same thing to a receiver.
        let atoms = if bytes[2] == 119 {
            AtomEncoding::Utf8
        } else {
            AtomEncoding::Latin1
        };
        // fawkes always names itself with an atom; a binary name stands for "rust_b".
        let node = match &message.node {
            NodeName::Atom(atom) => atom.clone(),
            NodeName::Other(_) => "rust_b".to_owned(),
        };
        let ours = decode(&reencode(&message, &node, atoms)).unwrap();
        assert_eq!(ours.topic, message.topic, "{name}");
        assert_eq!(ours.event, message.event, "{name}");
        assert_eq!(ours.payload, message.payload, "{name}");
        assert_eq!(ours.mode, message.mode, "{name}");
        assert!(
            accept(&ours, "phx_a") == accept(&message, "phx_a"),
            "{name}"
        );
        let elixir_made = case["term_to_binary_opts"] == "[]"
            && matches!(message.node, NodeName::Atom(_))
            && message.dispatcher == "Elixir.Phoenix.Channel.Server"
            && name != "atom_keys_payload";
        if elixir_made {
            // Byte for byte what Elixir's term_to_binary wrote.
            assert_eq!(reencode(&message, &node, atoms), bytes, "{name}: bytes");
            byte_identical += 1;
        }
    }
    assert_eq!(
        byte_identical, 5,
        "delivered Elixir-made cases compared byte for byte"
    );
}
