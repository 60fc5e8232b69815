//! `fawkes::token` against the 90 Phoenix.Token vectors recorded from
//! Phoenix 1.8.12 / plug_crypto 2.1.1 (`../shared/interop/phoenix_token_vectors.json`).
//! Each test iterates a whole group and fails on the first mismatch.

use fawkes::token::{MaxAge, SignOptions, TokenData, TokenError, TokenKey, VerifyOptions};
use fawkes_etf::{decode, AtomEncoding, Term};
use serde_json::Value;
use std::sync::Mutex;

fn vectors() -> Value {
    let dir = match std::env::var_os("FAWKES_SHARED") {
        Some(shared) => std::path::PathBuf::from(shared),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    let path = dir.join("interop/phoenix_token_vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The derived key for an entry's secret_key_base and salt, derived once per
/// pair (as an app does; PBKDF2 is slow in a debug build).
fn key_of(entry: &Value) -> TokenKey {
    static KEYS: Mutex<Vec<((String, String), TokenKey)>> = Mutex::new(Vec::new());
    let id = (
        entry["secret_key_base"].as_str().unwrap().to_owned(),
        entry["salt"].as_str().unwrap().to_owned(),
    );
    let mut keys = KEYS.lock().unwrap();
    if let Some((_, key)) = keys.iter().find(|(k, _)| *k == id) {
        return key.clone();
    }
    let key = TokenKey::derive(id.0.as_bytes(), id.1.as_bytes());
    keys.push((id, key.clone()));
    key
}

fn max_age_of(value: &Value) -> Option<MaxAge> {
    match value {
        Value::Null => None,
        Value::String(s) if s == "infinity" => Some(MaxAge::Infinity),
        number => Some(MaxAge::Seconds(number.as_f64().unwrap())),
    }
}

fn options_of(check: &Value) -> VerifyOptions {
    VerifyOptions {
        max_age: max_age_of(&check["verify_opts_max_age"]),
        now_ms: Some(check["now_ms"].as_i64().unwrap()),
    }
}

/// Compare a verification result with a recorded `{result, reason | data_json, data_inspect}`.
fn check_result(
    what: &str,
    got: Result<TokenData, TokenError>,
    expected: &Value,
    data_etf_hex: Option<&str>,
) {
    match expected["result"].as_str().unwrap() {
        "ok" => {
            let data = got.unwrap_or_else(|e| panic!("{what}: expected ok, got {e}"));
            if let Some(hex_text) = data_etf_hex {
                assert_eq!(
                    data.term(),
                    &decode(&hex(hex_text)).unwrap(),
                    "{what}: data term"
                );
            }
            match data.to_json() {
                Ok(json) => assert_eq!(json, expected["data_json"], "{what}: data"),
                // Beyond 64 bits: the text form carries every digit Phoenix shows.
                Err(_) => assert_eq!(
                    data.to_json_text().unwrap(),
                    expected["data_inspect"].as_str().unwrap(),
                    "{what}: exact big integer"
                ),
            }
        }
        "error" => {
            let reason = expected["reason"].as_str().unwrap();
            match got {
                Ok(data) => panic!("{what}: expected {reason}, got ok {:?}", data.term()),
                Err(e) => assert_eq!(e.to_string(), reason, "{what}"),
            }
        }
        other => panic!("{what}: result {other}"),
    }
}

fn verify_or_decrypt(
    key: &TokenKey,
    kind: &str,
    token: Option<&str>,
    options: &VerifyOptions,
) -> Result<TokenData, TokenError> {
    match kind {
        "sign" => key.verify(token, options),
        "encrypt" => key.decrypt(token, options),
        other => panic!("kind {other}"),
    }
}

#[test]
fn every_vector_derives_the_recorded_key() {
    let all = vectors();
    let vectors = all["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 90);
    for v in vectors {
        assert_eq!(
            hex_of(key_of(v).derived_bytes()),
            v["derived_key_hex"].as_str().unwrap(),
            "vector {}",
            v["id"]
        );
    }
}

#[test]
fn every_sign_vector_is_minted_byte_for_byte() {
    let all = vectors();
    let mut count = 0;
    for v in all["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "sign")
    {
        let data = decode(&hex(v["data_etf_hex"].as_str().unwrap())).unwrap();
        let options = SignOptions {
            max_age: max_age_of(&v["sign_opts_max_age"]).unwrap(),
            signed_at_ms: Some(v["signed_at_ms"].as_i64().unwrap()),
            atoms: AtomEncoding::Latin1,
        };
        assert_eq!(
            key_of(v).sign(&data, &options).unwrap(),
            v["token"].as_str().unwrap(),
            "vector {}",
            v["id"]
        );
        count += 1;
    }
    assert_eq!(count, 60);
}

#[test]
fn every_verification_of_every_vector_matches_phoenix() {
    let all = vectors();
    let mut count = 0;
    for v in all["vectors"].as_array().unwrap() {
        let key = key_of(v);
        let kind = v["kind"].as_str().unwrap();
        for check in v["verifications"].as_array().unwrap() {
            let what = format!(
                "vector {} {kind} max_age {}",
                v["id"], check["verify_opts_max_age"]
            );
            let got = verify_or_decrypt(&key, kind, v["token"].as_str(), &options_of(check));
            check_result(&what, got, check, v["data_etf_hex"].as_str());
            count += 1;
        }
    }
    assert_eq!(count, 780);
}

#[test]
fn every_tampered_token_gives_phoenix_result() {
    let all = vectors();
    let (mut count, mut lenient_ok) = (0, 0);
    for v in all["vectors"].as_array().unwrap() {
        let kind = v["kind"].as_str().unwrap();
        for t in v["tampered"].as_array().unwrap() {
            let what = format!("vector {} {kind}: {}", v["id"], t["tamper"]);
            let key = if t.get("secret_key_base").is_some() {
                key_of(t)
            } else {
                key_of(v)
            };
            let got = verify_or_decrypt(&key, kind, t["token"].as_str(), &options_of(t));
            if t["result"] == "ok" {
                lenient_ok += 1;
            }
            check_result(&what, got, t, v["data_etf_hex"].as_str());
            count += 1;
        }
    }
    assert_eq!((count, lenient_ok), (900, 4));
}

#[test]
fn fixed_iv_encryptions_are_reproduced_and_decrypted() {
    let all = vectors();
    let cases = all["deterministic_encrypt_fixed_iv"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for c in cases {
        assert_eq!(c["aad"], "A128GCM");
        let key = key_of(c);
        assert_eq!(
            hex_of(key.derived_bytes()),
            c["derived_key_hex"].as_str().unwrap()
        );
        let plaintext = decode(&hex(c["plaintext_etf_hex"].as_str().unwrap())).unwrap();
        let Term::Tuple(fields) = &plaintext else {
            panic!("not a tuple")
        };
        let (Term::Integer(signed_at), max_age) = (&fields[1], &fields[2]) else {
            panic!("signed_at")
        };
        let options = SignOptions {
            max_age: match max_age {
                Term::Atom(a) if a == "infinity" => MaxAge::Infinity,
                Term::Integer(i) => MaxAge::Seconds(*i as f64),
                other => panic!("max_age {other:?}"),
            },
            signed_at_ms: Some(*signed_at),
            atoms: AtomEncoding::Latin1,
        };
        let iv: [u8; 24] = hex(c["iv_hex"].as_str().unwrap()).try_into().unwrap();
        let what = c["description"].as_str().unwrap();
        assert_eq!(
            key.encrypt_with_iv(&fields[0], &options, iv).unwrap(),
            c["token"].as_str().unwrap(),
            "{what}"
        );
        for check in [
            "phoenix_decrypt_default_max_age",
            "phoenix_decrypt_max_age_infinity",
        ] {
            let got = key.decrypt(c["token"].as_str(), &options_of(&c[check]));
            check_result(&format!("{what} {check}"), got, &c[check], None);
        }
    }
}

#[test]
fn hs384_and_hs512_tokens_verify() {
    let all = vectors();
    let key = TokenKey::derive(
        all["vectors"][0]["secret_key_base"]
            .as_str()
            .unwrap()
            .as_bytes(),
        b"user socket",
    );
    let cases = all["message_verifier_other_digests"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        assert_eq!(c["salt"], "user socket");
        let check = &c["phoenix_verify_max_age_infinity"];
        check_result(
            c["digest"].as_str().unwrap(),
            key.verify(c["token"].as_str(), &options_of(check)),
            check,
            None,
        );
    }
}

#[test]
fn relative_time_checks_match_phoenix() {
    let all = vectors();
    let key = TokenKey::derive(
        all["vectors"][0]["secret_key_base"]
            .as_str()
            .unwrap()
            .as_bytes(),
        b"user socket",
    );
    let cases = all["relative_time_checks"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for c in cases {
        let check = &c["check"];
        let what = format!(
            "age {} max_age {}",
            c["approx_age_s"], check["verify_opts_max_age"]
        );
        check_result(
            &what,
            key.verify(c["token"].as_str(), &options_of(check)),
            check,
            None,
        );
    }
}

#[test]
fn the_default_sign_observed_verifies_with_its_embedded_max_age() {
    let all = vectors();
    let observed = &all["FACTS"]["default_sign_observed"];
    let key = TokenKey::derive(
        all["vectors"][0]["secret_key_base"]
            .as_str()
            .unwrap()
            .as_bytes(),
        b"user socket",
    );
    let signed = observed["embedded_signed_at_ms"].as_i64().unwrap();
    let at = |now_ms| VerifyOptions {
        max_age: None,
        now_ms: Some(now_ms),
    };
    let token = observed["token"].as_str();
    assert_eq!(
        key.verify(token, &at(signed + 86_400_000))
            .unwrap()
            .to_json()
            .unwrap(),
        42
    );
    assert_eq!(
        key.verify(token, &at(signed + 86_400_001)),
        Err(TokenError::Expired)
    );
}

/// Tokens fawkes mints verify under the same rules, in both atom styles.
#[test]
fn fawkes_minted_tokens_follow_the_same_rules() {
    let key = TokenKey::derive(b"fawkes-test-secret-key-base", b"user socket");
    let other = TokenKey::derive(b"fawkes-test-secret-key-base", b"another salt");
    let data =
        serde_json::json!({"user_id": "alice", "roles": ["a", "b"], "n": 12345678901234567890u64});
    for atoms in [AtomEncoding::Latin1, AtomEncoding::Utf8] {
        let options = SignOptions {
            max_age: MaxAge::Seconds(60.0),
            signed_at_ms: Some(1_000_000),
            atoms,
        };
        let at = |now_ms| VerifyOptions {
            max_age: None,
            now_ms: Some(now_ms),
        };
        let signed = key.sign_json(&data, &options);
        assert!(signed.starts_with("SFMyNTY."));
        let encrypted = key
            .encrypt(&fawkes_etf::json::from_json(&data), &options)
            .unwrap();
        assert!(encrypted.starts_with("XCP."));
        for (token, open) in [
            (
                &signed,
                TokenKey::verify
                    as fn(&TokenKey, Option<&str>, &VerifyOptions) -> Result<TokenData, TokenError>,
            ),
            (&encrypted, TokenKey::decrypt),
        ] {
            assert_eq!(
                open(&key, Some(token), &at(1_060_000))
                    .unwrap()
                    .to_json()
                    .unwrap(),
                data
            );
            assert_eq!(
                open(&key, Some(token), &at(1_060_001)),
                Err(TokenError::Expired)
            );
            assert_eq!(
                open(&other, Some(token), &at(1_000_000)),
                Err(TokenError::Invalid)
            );
            assert_eq!(open(&key, None, &at(1_000_000)), Err(TokenError::Missing));
            let infinite = VerifyOptions {
                max_age: Some(MaxAge::Infinity),
                now_ms: Some(i64::MAX),
            };
            assert!(open(&key, Some(token), &infinite).is_ok());
            // A flipped character in the middle: invalid, even when also expired.
            let mut tampered = token.clone().into_bytes();
            let mid = tampered.len() / 2;
            tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert_eq!(
                open(&key, Some(&tampered), &at(i64::MAX)),
                Err(TokenError::Invalid)
            );
        }
        // The atom style is visible in the signed payload (infinity written as 100 or 119).
        let infinity = SignOptions {
            max_age: MaxAge::Infinity,
            ..options
        };
        let token = key.sign_json(&data, &infinity);
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64_decode(payload);
        let tag = match atoms {
            AtomEncoding::Latin1 => [100, 0, 8],
            AtomEncoding::Utf8 => [119, 8, b'i'],
        };
        assert!(bytes.windows(3).any(|w| w == tag), "{atoms:?}");
        assert!(key
            .verify(
                Some(&token),
                &VerifyOptions {
                    max_age: None,
                    now_ms: Some(i64::MAX)
                }
            )
            .is_ok());
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}
