//! The README's example runs: `examples/backend/backend.py` (Python's
//! standard library) answers the webhooks of `examples/backend/fawkes.toml`.

mod support;

use std::process::Stdio;
use std::time::Duration;

use fawkes::token::{SignOptions, TokenKey};
use serde_json::json;
use support::binary::Fawkes;
use support::Client;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/backend");

/// The value of `key = "..."` in the example config.
fn setting(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{key} in the example config"))
        .to_owned()
}

#[tokio::test]
async fn the_python_backend_answers_the_example_config() {
    let text = std::fs::read_to_string(format!("{DIR}/fawkes.toml")).expect("example config");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut backend = tokio::process::Command::new("python3")
        .arg(format!("{DIR}/backend.py"))
        .arg(port.to_string())
        .env("FAWKES_WEBHOOK_SECRET", setting(&text, "secret"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 (apt install python3)");
    // wait until the backend listens
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "backend.py did not listen on {port}");
    let config = text.replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    let fawkes = Fawkes::start(Some(&config), &[]).await;
    let key = TokenKey::derive(
        setting(&text, "secret_key_base").as_bytes(),
        setting(&text, "salt").as_bytes(),
    );
    let admin = key.sign_json(&json!(1), &SignOptions::default());
    let user = key.sign_json(&json!(2), &SignOptions::default());

    let mut one = Client::connect(&fawkes.ws_url(&format!("vsn=2.0.0&token={admin}"))).await;
    let mut two = Client::connect(&fawkes.ws_url(&format!("vsn=2.0.0&token={user}"))).await;
    one.send_json(json!(["1", "1", "room:admins", "phx_join", {}]))
        .await;
    let reply = next(&mut one, "phx_reply").await;
    assert_eq!(
        reply[4],
        json!({"status": "ok", "response": {"joined": "room:admins"}})
    );
    two.send_json(json!(["1", "1", "room:admins", "phx_join", {}]))
        .await;
    let reply = next(&mut two, "phx_reply").await;
    assert_eq!(
        reply[4],
        json!({"status": "error", "response": {"reason": "admins only"}})
    );
    for (client, join_ref) in [(&mut two, "2"), (&mut one, "3")] {
        client
            .send_json(json!([join_ref, join_ref, "room:lobby", "phx_join", {}]))
            .await;
        loop {
            let frame = next(client, "phx_reply").await;
            if frame[1] == join_ref {
                assert_eq!(frame[4]["status"], "ok", "{frame}");
                break;
            }
        }
    }
    one.send_json(json!(["3", "4", "room:lobby", "new_msg", {"body": "hello"}]))
        .await;
    let message = next(&mut two, "new_msg").await;
    assert_eq!(message[4], json!({"user_id": 1, "body": "hello"}));
    fawkes.stop().await;
    let _ = backend.kill().await;
}

/// The next frame with `event`.
async fn next(client: &mut Client, event: &str) -> serde_json::Value {
    loop {
        let frame = client.recv_json().await;
        if frame[3] == event {
            return frame;
        }
    }
}
