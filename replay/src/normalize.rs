//! Comparison of recorded and live values with normalisation.
//!
//! The non-deterministic values (`phx_ref` / `phx_ref_prev` object values and
//! longpoll session `token`s) are matched through a bijection between
//! recorded and live values, built while matching: a recorded value must
//! always map to the same live value and vice versa. Conceptually each side is
//! rewritten to placeholders numbered by first appearance; the bijection is
//! the same check without rewriting. A failed comparison leaves the
//! bijection untouched.
//!
//! [`MatchRules`] carries what the user adds: more keys normalised like
//! `phx_ref`, keys whose values are not compared at all, and whether a
//! longpoll response's messages may come in any order.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// Object keys whose string values are normalised wherever they appear.
pub const REF_KEYS: [&str; 2] = ["phx_ref", "phx_ref_prev"];

/// User-named normalisation on top of the built-in rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchRules {
    /// Object keys whose string values go through the bijection, like `phx_ref`.
    pub normalise_keys: Vec<String>,
    /// Object keys whose values are not compared (the key must still be there).
    pub ignore_keys: Vec<String>,
    /// The `messages` of one longpoll response may come in any order.
    pub longpoll_batch_any_order: bool,
}

impl MatchRules {
    fn is_ref_key(&self, key: &str) -> bool {
        REF_KEYS.contains(&key) || self.normalise_keys.iter().any(|k| k == key)
    }

    fn is_ignored(&self, key: &str) -> bool {
        self.ignore_keys.iter().any(|k| k == key)
    }
}

/// The bijection between recorded and live non-deterministic values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    forward: HashMap<String, (String, usize)>,
    backward: HashMap<String, String>,
    rules: Arc<MatchRules>,
}

impl Bindings {
    /// An empty bijection.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bijection that also applies `rules`.
    pub fn with_rules(rules: Arc<MatchRules>) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// Pairs `recorded` with `live`, or checks an existing pairing.
    pub fn bind(&mut self, recorded: &str, live: &str) -> Result<(), String> {
        if let Some((bound, n)) = self.forward.get(recorded) {
            if bound == live {
                return Ok(());
            }
            return Err(format!(
                "recorded {recorded:?} (placeholder #{n}) was live {bound:?} before, now {live:?}"
            ));
        }
        if let Some(other) = self.backward.get(live) {
            let n = self.forward.get(other).map_or(0, |(_, n)| *n);
            return Err(format!(
                "live {live:?} is already bound to recorded {other:?} (placeholder #{n}), \
                 but the recording has {recorded:?} here"
            ));
        }
        let n = self.forward.len() + 1;
        self.forward
            .insert(recorded.to_owned(), (live.to_owned(), n));
        self.backward.insert(live.to_owned(), recorded.to_owned());
        Ok(())
    }

    /// The live value paired with a recorded one, if any.
    pub fn live_for(&self, recorded: &str) -> Option<&str> {
        self.forward.get(recorded).map(|(live, _)| live.as_str())
    }

    /// The placeholder number (1-based, by first appearance) of a recorded value.
    pub fn placeholder(&self, recorded: &str) -> Option<usize> {
        self.forward.get(recorded).map(|(_, n)| *n)
    }

    /// Number of bound pairs.
    pub fn len(&self) -> usize {
        self.forward.len()
    }

    /// Whether nothing is bound yet.
    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
    }
}

/// Where and how two values differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// JSON path of the difference (`$` is the root).
    pub path: String,
    /// What differs.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path, self.detail)
    }
}

fn diff(path: &str, detail: String) -> Difference {
    Difference {
        path: path.to_owned(),
        detail,
    }
}

/// Compares JSON values (object key order is irrelevant), normalising
/// `phx_ref` / `phx_ref_prev` through `bindings`. Bindings are only kept when
/// the whole comparison succeeds.
pub fn match_json(
    expected: &Value,
    got: &Value,
    bindings: &mut Bindings,
) -> Result<(), Difference> {
    let mut scratch = bindings.clone();
    match_value(expected, got, &mut scratch, "$")?;
    *bindings = scratch;
    Ok(())
}

fn match_value(
    expected: &Value,
    got: &Value,
    bindings: &mut Bindings,
    path: &str,
) -> Result<(), Difference> {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for key in e.keys() {
                if !g.contains_key(key) {
                    return Err(diff(path, format!("missing key {key:?}")));
                }
            }
            for key in g.keys() {
                if !e.contains_key(key) {
                    return Err(diff(path, format!("unexpected key {key:?}")));
                }
            }
            for (key, ev) in e {
                let Some(gv) = g.get(key) else { continue };
                let sub = format!("{path}.{key}");
                if bindings.rules.is_ignored(key) {
                    continue;
                }
                match (ev, gv) {
                    (Value::String(es), Value::String(gs)) if bindings.rules.is_ref_key(key) => {
                        bindings.bind(es, gs).map_err(|d| diff(&sub, d))?;
                    }
                    _ => match_value(ev, gv, bindings, &sub)?,
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(g)) => {
            if e.len() != g.len() {
                return Err(diff(
                    path,
                    format!("expected {} elements, got {}", e.len(), g.len()),
                ));
            }
            for (i, (ev, gv)) in e.iter().zip(g).enumerate() {
                match_value(ev, gv, bindings, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if expected == got => Ok(()),
        _ => Err(diff(path, format!("expected {expected}, got {got}"))),
    }
}

/// Compares a recorded text frame with a live one: as JSON when the recorded
/// text is JSON (the live one must then be JSON too), else as plain text.
pub fn match_text(expected: &str, got: &str, bindings: &mut Bindings) -> Result<(), Difference> {
    match serde_json::from_str::<Value>(expected) {
        Ok(e) => match serde_json::from_str::<Value>(got) {
            Ok(g) => match_json(&e, &g, bindings),
            Err(err) => Err(diff("$", format!("live frame is not JSON: {err}"))),
        },
        Err(_) if expected == got => Ok(()),
        Err(_) => Err(diff("$", "text differs".to_owned())),
    }
}

/// Compares binary payloads byte for byte.
pub fn match_binary(expected: &[u8], got: &[u8]) -> Result<(), Difference> {
    if expected == got {
        return Ok(());
    }
    let at = expected
        .iter()
        .zip(got)
        .position(|(e, g)| e != g)
        .unwrap_or(expected.len().min(got.len()));
    Err(diff(
        &format!("byte {at}"),
        format!(
            "binary differs (expected {} bytes, got {} bytes)",
            expected.len(),
            got.len()
        ),
    ))
}

/// Whether a parsed frame is a `presence_state` push (V2 array or V1 object).
pub fn is_presence_state(frame: &Value) -> bool {
    match frame {
        Value::Array(items) => items.len() == 5 && items[3] == "presence_state",
        Value::Object(map) => map.get("event").is_some_and(|e| e == "presence_state"),
        _ => false,
    }
}

/// Whether a text frame is a `presence_state` push.
pub fn is_presence_state_text(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| is_presence_state(&v))
}

/// The top-level `token` string of an HTTP body (a longpoll response), if any.
pub fn body_token(body: &str) -> Option<String> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("token") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Compares an HTTP response body. When both parse as JSON they are compared
/// as JSON, where a top-level `token` string goes through the bijection and a
/// top-level `messages` array of strings (longpoll) has each string parsed
/// and compared as a frame. Otherwise the bodies are compared as text.
pub fn match_http_body(
    expected: &str,
    got: &str,
    bindings: &mut Bindings,
) -> Result<(), Difference> {
    let (Ok(e), Ok(g)) = (
        serde_json::from_str::<Value>(expected),
        serde_json::from_str::<Value>(got),
    ) else {
        if expected == got {
            return Ok(());
        }
        return Err(diff("body", "text differs".to_owned()));
    };
    let (Value::Object(em), Value::Object(gm)) = (&e, &g) else {
        return match_json(&e, &g, bindings);
    };
    let mut scratch = bindings.clone();
    for key in em.keys() {
        if !gm.contains_key(key) {
            return Err(diff("$", format!("missing key {key:?}")));
        }
    }
    for key in gm.keys() {
        if !em.contains_key(key) {
            return Err(diff("$", format!("unexpected key {key:?}")));
        }
    }
    for (key, ev) in em {
        let Some(gv) = gm.get(key) else { continue };
        let path = format!("$.{key}");
        match (key.as_str(), ev, gv) {
            ("token", Value::String(es), Value::String(gs)) => {
                scratch.bind(es, gs).map_err(|d| diff(&path, d))?;
            }
            ("messages", Value::Array(es), Value::Array(gs)) if es.iter().all(Value::is_string) => {
                if es.len() != gs.len() {
                    return Err(diff(
                        &path,
                        format!("expected {} messages, got {}", es.len(), gs.len()),
                    ));
                }
                if scratch.rules.longpoll_batch_any_order {
                    match_messages_any_order(es, gs, &mut scratch, &path)?;
                    continue;
                }
                for (i, (em, gm)) in es.iter().zip(gs).enumerate() {
                    let sub = format!("{path}[{i}]");
                    let (Value::String(et), Value::String(gt)) = (em, gm) else {
                        return Err(diff(&sub, format!("expected a string message, got {gm}")));
                    };
                    match_text(et, gt, &mut scratch).map_err(|d| Difference {
                        path: format!("{sub}{}", d.path.trim_start_matches('$')),
                        detail: d.detail,
                    })?;
                }
            }
            _ => match_value(ev, gv, &mut scratch, &path)?,
        }
    }
    *bindings = scratch;
    Ok(())
}

/// Matches each recorded longpoll message with the first live one of the
/// batch that is still free and equal to it.
fn match_messages_any_order(
    expected: &[Value],
    got: &[Value],
    bindings: &mut Bindings,
    path: &str,
) -> Result<(), Difference> {
    let mut free: Vec<Option<&str>> = got.iter().map(Value::as_str).collect();
    for (i, em) in expected.iter().enumerate() {
        let Some(et) = em.as_str() else {
            return Err(diff(&format!("{path}[{i}]"), "not a string".to_owned()));
        };
        let mut first_difference = None;
        let found = free.iter_mut().find_map(|slot| {
            let gt = (*slot)?;
            match match_text(et, gt, bindings) {
                Ok(()) => {
                    *slot = None;
                    Some(())
                }
                Err(d) => {
                    first_difference.get_or_insert(d);
                    None
                }
            }
        });
        if found.is_none() {
            let detail = first_difference.map_or_else(
                || "no live message left".to_owned(),
                |d| format!("no live message of the batch matches (first: {d})"),
            );
            return Err(diff(&format!("{path}[{i}]"), detail));
        }
    }
    Ok(())
}

/// Percent-encodes like JavaScript's `encodeURIComponent`.
pub fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Recorded → live longpoll session tokens, substituted into later requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenMap {
    pairs: Vec<(String, String)>,
}

impl TokenMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the recorded token `recorded` is `live` on this server.
    pub fn insert(&mut self, recorded: &str, live: &str) {
        if let Some(pair) = self.pairs.iter_mut().find(|(r, _)| r == recorded) {
            pair.1 = live.to_owned();
        } else {
            self.pairs.push((recorded.to_owned(), live.to_owned()));
            // Longest first, so a token that contains another is replaced whole.
            self.pairs
                .sort_by_key(|pair| std::cmp::Reverse(pair.0.len()));
        }
    }

    /// Substitutes live tokens into a header value or a body.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (recorded, live) in &self.pairs {
            if recorded != live && !recorded.is_empty() {
                out = out.replace(recorded.as_str(), live);
            }
        }
        out
    }

    /// Substitutes live tokens into a request path (URL-encoding them).
    pub fn substitute_path(&self, path: &str) -> String {
        let mut out = path.to_owned();
        for (recorded, live) in &self.pairs {
            if recorded.is_empty() {
                continue;
            }
            let live_enc = encode_uri_component(live);
            let rec_enc = encode_uri_component(recorded);
            if rec_enc != *recorded {
                out = out.replace(rec_enc.as_str(), &live_enc);
            }
            out = out.replace(recorded.as_str(), &live_enc);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_is_irrelevant() {
        let mut b = Bindings::new();
        assert!(match_text(r#"{"a":1,"b":[1,2]}"#, r#"{"b":[1,2],"a":1}"#, &mut b).is_ok());
        assert!(match_text(r#"[1,2]"#, r#"[2,1]"#, &mut b).is_err());
        assert!(match_text(r#"{"a":1}"#, r#"{"a":1,"b":2}"#, &mut b).is_err());
        assert!(match_text(r#"{"a":1}"#, "not json", &mut b).is_err());
    }

    #[test]
    fn refs_are_a_bijection() {
        let mut b = Bindings::new();
        let rec = |r: &str| json!({"metas": [{"phx_ref": r, "name": "x"}]});
        assert!(match_json(&rec("R1"), &rec("L1"), &mut b).is_ok());
        assert_eq!(b.live_for("R1"), Some("L1"));
        assert_eq!(b.placeholder("R1"), Some(1));
        // Same recorded value must recur as the same live value.
        assert!(match_json(&rec("R1"), &rec("L1"), &mut b).is_ok());
        assert!(match_json(&rec("R1"), &rec("L2"), &mut b).is_err());
        // A new recorded value may not reuse a live value already bound.
        assert!(match_json(&rec("R2"), &rec("L1"), &mut b).is_err());
        assert!(match_json(&rec("R2"), &rec("L2"), &mut b).is_ok());
        assert_eq!(b.placeholder("R2"), Some(2));
        // phx_ref_prev shares the namespace.
        let prev = json!({"phx_ref": "R3", "phx_ref_prev": "R1"});
        let live = json!({"phx_ref": "L3", "phx_ref_prev": "L1"});
        assert!(match_json(&prev, &live, &mut b).is_ok());
        let live_bad = json!({"phx_ref": "L4", "phx_ref_prev": "L2"});
        assert!(match_json(
            &json!({"phx_ref": "R4", "phx_ref_prev": "R1"}),
            &live_bad,
            &mut b
        )
        .is_err());
    }

    #[test]
    fn failed_comparison_does_not_leak_bindings() {
        let mut b = Bindings::new();
        let e = json!([{"phx_ref": "R1"}, "ok"]);
        let g = json!([{"phx_ref": "L1"}, "error"]);
        assert!(match_json(&e, &g, &mut b).is_err());
        assert!(b.is_empty());
        let g2 = json!([{"phx_ref": "L9"}, "ok"]);
        assert!(match_json(&e, &g2, &mut b).is_ok());
        assert_eq!(b.live_for("R1"), Some("L9"));
    }

    #[test]
    fn ref_keys_only_normalise_strings() {
        let mut b = Bindings::new();
        assert!(match_json(&json!({"phx_ref": 1}), &json!({"phx_ref": 2}), &mut b).is_err());
        assert!(match_json(&json!({"other": "R"}), &json!({"other": "L"}), &mut b).is_err());
    }

    #[test]
    fn binary_is_byte_exact() {
        assert!(match_binary(&[1, 2, 3], &[1, 2, 3]).is_ok());
        let d = match_binary(&[1, 2, 3], &[1, 9, 3]).expect_err("differs");
        assert_eq!(d.path, "byte 1");
        assert!(match_binary(&[1, 2, 3], &[1, 2]).is_err());
    }

    #[test]
    fn presence_state_detection() {
        assert!(is_presence_state_text(
            r#"["1",null,"presence:lobby","presence_state",{}]"#
        ));
        assert!(!is_presence_state_text(
            r#"[null,null,"presence:lobby","presence_diff",{}]"#
        ));
        assert!(is_presence_state_text(
            r#"{"topic":"presence:lobby","event":"presence_state","payload":{},"ref":null}"#
        ));
        assert!(!is_presence_state_text("nope"));
    }

    #[test]
    fn longpoll_body_and_token_substitution() {
        let mut b = Bindings::new();
        let rec = r#"{"messages":[],"status":410,"token":"REC.TOKEN"}"#;
        let live = r#"{"status":410,"token":"live/tok+en=","messages":[]}"#;
        assert_eq!(body_token(rec).as_deref(), Some("REC.TOKEN"));
        assert!(match_http_body(rec, live, &mut b).is_ok());
        assert_eq!(b.live_for("REC.TOKEN"), Some("live/tok+en="));

        let mut tokens = TokenMap::new();
        tokens.insert("REC.TOKEN", "live/tok+en=");
        assert_eq!(
            tokens.substitute_path("/socket/longpoll?vsn=2.0.0&token=REC.TOKEN"),
            "/socket/longpoll?vsn=2.0.0&token=live%2Ftok%2Ben%3D"
        );
        assert_eq!(tokens.substitute("x REC.TOKEN y"), "x live/tok+en= y");
        assert_eq!(tokens.substitute("nothing"), "nothing");

        // Messages are parsed and compared as frames, with refs normalised.
        let rec = r#"{"messages":["[\"1\",\"1\",\"t\",\"phx_reply\",{\"response\":{\"phx_ref\":\"A\"},\"status\":\"ok\"}]"],"status":200,"token":"REC.TOKEN"}"#;
        let live = r#"{"messages":["[\"1\", \"1\", \"t\", \"phx_reply\", {\"status\":\"ok\",\"response\":{\"phx_ref\":\"Z\"}}]"],"status":200,"token":"live/tok+en="}"#;
        assert!(match_http_body(rec, live, &mut b).is_ok());
        assert_eq!(b.live_for("A"), Some("Z"));
        // A changed live token is a mismatch.
        let live_other = r#"{"messages":[],"status":410,"token":"other"}"#;
        let rec410 = r#"{"messages":[],"status":410,"token":"REC.TOKEN"}"#;
        assert!(match_http_body(rec410, live_other, &mut b).is_err());
        // Message mismatch names the message.
        let live_bad = r#"{"messages":["[\"1\",\"1\",\"t\",\"phx_reply\",{\"response\":{\"phx_ref\":\"Z\"},\"status\":\"error\"}]"],"status":200,"token":"live/tok+en="}"#;
        let d = match_http_body(rec, live_bad, &mut b).expect_err("differs");
        assert_eq!(d.path, "$.messages[0][4].status");
    }

    #[test]
    fn user_named_keys_are_normalised_or_ignored() {
        let rules = Arc::new(MatchRules {
            normalise_keys: vec!["id".to_owned()],
            ignore_keys: vec!["at".to_owned()],
            longpoll_batch_any_order: false,
        });
        let mut b = Bindings::with_rules(rules);
        let e: Value = serde_json::from_str(r#"{"id":"r1","at":1,"x":{"id":"r1"}}"#).expect("json");
        let g: Value = serde_json::from_str(r#"{"id":"L9","at":2,"x":{"id":"L9"}}"#).expect("json");
        assert!(match_json(&e, &g, &mut b).is_ok());
        let g2: Value =
            serde_json::from_str(r#"{"id":"L9","at":2,"x":{"id":"L8"}}"#).expect("json");
        assert!(match_json(&e, &g2, &mut Bindings::new()).is_err());
        assert!(match_json(&e, &g, &mut Bindings::new()).is_err());
        let g3: Value = serde_json::from_str(r#"{"id":"L9","x":{"id":"L9"}}"#).expect("json");
        assert!(
            match_json(&e, &g3, &mut b).is_err(),
            "an ignored key must still be present"
        );
    }

    #[test]
    fn longpoll_batch_order_only_when_allowed() {
        let rec = r#"{"status":200,"token":"T","messages":["[null,\"1\",\"r\",\"phx_reply\",{}]","[null,\"2\",\"r\",\"phx_reply\",{}]"]}"#;
        let live = r#"{"status":200,"token":"T","messages":["[null,\"2\",\"r\",\"phx_reply\",{}]","[null,\"1\",\"r\",\"phx_reply\",{}]"]}"#;
        assert!(match_http_body(rec, live, &mut Bindings::new()).is_err());
        let rules = Arc::new(MatchRules {
            longpoll_batch_any_order: true,
            ..MatchRules::default()
        });
        assert!(match_http_body(rec, live, &mut Bindings::with_rules(Arc::clone(&rules))).is_ok());
        let other = r#"{"status":200,"token":"T","messages":["[null,\"2\",\"r\",\"phx_reply\",{}]","[null,\"3\",\"r\",\"phx_reply\",{}]"]}"#;
        assert!(match_http_body(rec, other, &mut Bindings::with_rules(rules)).is_err());
    }

    #[test]
    fn http_body_falls_back_to_text() {
        let mut b = Bindings::new();
        assert!(match_http_body("plain", "plain", &mut b).is_ok());
        assert!(match_http_body("plain", "other", &mut b).is_err());
        assert!(match_http_body(r#"{"ok":true}"#, r#"{ "ok" : true }"#, &mut b).is_ok());
        assert!(match_http_body(r#"{"ok":true}"#, "ok", &mut b).is_err());
    }
}
