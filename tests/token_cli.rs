//! `fawkes token verify|decrypt|sign|encrypt`, run as a binary, against the
//! recorded Phoenix.Token vectors.

use std::process::Command;

use serde_json::{json, Value};

const SKB: &str = "interop-vectors-secret-key-base/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

fn vectors() -> Value {
    let dir = match std::env::var_os("FAWKES_SHARED") {
        Some(shared) => std::path::PathBuf::from(shared),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    let text = std::fs::read_to_string(dir.join("interop/phoenix_token_vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Run `fawkes token ARGS`; (stdout, exit success).
fn fawkes_token(args: &[&str]) -> (String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_fawkes"))
        .arg("token")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one line: {stdout:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (stdout.trim_end().to_owned(), output.status.success())
}

fn open(
    kind: &str,
    salt: &str,
    max_age: Option<&str>,
    now_ms: &str,
    token: Option<&str>,
) -> (Value, bool) {
    let mut args = vec![
        kind,
        "--secret-key-base",
        SKB,
        "--salt",
        salt,
        "--now-ms",
        now_ms,
    ];
    if let Some(max_age) = max_age {
        args.extend(["--max-age", max_age]);
    }
    args.extend(token);
    let (line, ok) = fawkes_token(&args);
    (
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")),
        ok,
    )
}

#[test]
fn verify_and_decrypt_print_phoenix_results() {
    let all = vectors();
    let v = &all["vectors"];
    let now = "1795267439360";
    // Vector 1: 42 signed in 2023 with max_age 86400.
    let sign_42 = v[0]["token"].as_str().unwrap();
    assert_eq!(
        open(
            "verify",
            "user socket",
            Some("infinity"),
            now,
            Some(sign_42)
        ),
        (json!({"ok": 42}), true)
    );
    assert_eq!(
        open("verify", "user socket", None, now, Some(sign_42)),
        (json!({"error": "expired"}), false)
    );
    assert_eq!(
        open(
            "verify",
            "another salt",
            Some("infinity"),
            now,
            Some(sign_42)
        ),
        (json!({"error": "invalid"}), false)
    );
    assert_eq!(
        open("verify", "user socket", None, now, None),
        (json!({"error": "missing"}), false)
    );
    // Exactly at the boundary (signed_at_ms 1700000000000 + 86400 s) it is still valid.
    assert_eq!(
        open(
            "verify",
            "user socket",
            None,
            "1700086400000",
            Some(sign_42)
        )
        .0,
        json!({"ok": 42})
    );
    assert_eq!(
        open(
            "verify",
            "user socket",
            None,
            "1700086400001",
            Some(sign_42)
        )
        .0,
        json!({"error": "expired"})
    );
    // Vector 43: map with atom keys; its keys come out as strings.
    assert_eq!(v[42]["description"], "map with atom keys");
    let atom_keys = v[42]["token"].as_str().unwrap();
    assert_eq!(
        open(
            "verify",
            "user socket",
            Some("infinity"),
            now,
            Some(atom_keys)
        )
        .0,
        json!({"ok": {"role": "admin", "user_id": 42}})
    );
    // Vector 7: 2^70 keeps every digit on the JSON line.
    let (line, ok) = fawkes_token(&[
        "verify",
        "--secret-key-base",
        SKB,
        "--salt",
        "user socket",
        "--max-age",
        "infinity",
        v[6]["token"].as_str().unwrap(),
    ]);
    assert_eq!(
        (line.as_str(), ok),
        (r#"{"ok":1180591620717411303424}"#, true)
    );
    // An encrypted vector (id 40, map with string keys).
    assert_eq!(v[39]["kind"], "encrypt");
    let encrypted = v[39]["token"].as_str().unwrap();
    assert_eq!(
        open(
            "decrypt",
            v[39]["salt"].as_str().unwrap(),
            Some("infinity"),
            now,
            Some(encrypted)
        )
        .0,
        json!({"ok": v[39]["data_json"]})
    );
    assert_eq!(
        open(
            "verify",
            "user socket",
            Some("infinity"),
            now,
            Some(encrypted)
        )
        .0,
        json!({"error": "invalid"})
    );
}

#[test]
fn sign_mints_the_recorded_token_and_encrypt_round_trips() {
    let all = vectors();
    // Vector 37: a map with string keys, which is what JSON data is in Elixir.
    let v = &all["vectors"][36];
    assert_eq!(v["description"], "map with string keys");
    let data = v["data_json"].to_string();
    let signed_at = v["signed_at_ms"].to_string();
    let (token, ok) = fawkes_token(&[
        "sign",
        "--secret-key-base",
        SKB,
        "--salt",
        "user socket",
        "--signed-at-ms",
        &signed_at,
        &data,
    ]);
    assert!(ok);
    assert_eq!(token, v["token"].as_str().unwrap());

    let (encrypted, ok) = fawkes_token(&[
        "encrypt",
        "--secret-key-base",
        SKB,
        "--salt",
        "s",
        "--max-age",
        "60",
        "--signed-at-ms",
        "1000",
        &data,
    ]);
    assert!(ok && encrypted.starts_with("XCP."), "{encrypted}");
    assert_eq!(
        open("decrypt", "s", None, "61000", Some(&encrypted)).0,
        json!({"ok": v["data_json"]})
    );
    assert_eq!(
        open("decrypt", "s", None, "61001", Some(&encrypted)).0,
        json!({"error": "expired"})
    );
}
