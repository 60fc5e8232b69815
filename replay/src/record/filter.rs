//! What the recorder keeps of a frame or request: redaction of named fields
//! and the topic filter. Pure functions over text and bytes.

use serde_json::Value;

/// The value that replaces a redacted field.
pub const REDACTED: &str = "REDACTED";

/// Fields to redact and topics to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Object keys (in JSON frames and bodies), query parameters and headers
    /// whose values are replaced by [`REDACTED`].
    pub redact: Vec<String>,
    /// Topic patterns to record (`room:*` is a prefix match); empty: all.
    pub topics: Vec<String>,
}

impl Filter {
    /// Whether frames of `topic` are recorded.
    pub fn keeps_topic(&self, topic: &str) -> bool {
        self.topics.is_empty()
            || self
                .topics
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => topic.starts_with(prefix),
                    None => topic == pattern,
                })
    }

    fn redacts(&self, key: &str) -> bool {
        self.redact.iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// A JSON text with the named fields redacted (also inside longpoll
    /// `messages` strings); other text is returned unchanged.
    pub fn redact_text(&self, text: &str) -> String {
        if self.redact.is_empty() {
            return text.to_owned();
        }
        let Ok(mut value) = serde_json::from_str::<Value>(text) else {
            return text.to_owned();
        };
        if self.redact_value(&mut value) {
            serde_json::to_string(&value).unwrap_or_else(|_| text.to_owned())
        } else {
            text.to_owned()
        }
    }

    /// Redacts in place; returns whether anything changed.
    fn redact_value(&self, value: &mut Value) -> bool {
        match value {
            Value::Object(map) => {
                let mut changed = false;
                for (key, v) in map.iter_mut() {
                    if self.redacts(key) {
                        if *v != Value::String(REDACTED.to_owned()) {
                            *v = Value::String(REDACTED.to_owned());
                            changed = true;
                        }
                    } else if key == "messages" {
                        changed |= self.redact_embedded(v);
                    } else {
                        changed |= self.redact_value(v);
                    }
                }
                changed
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.redact_value(v) | changed),
            _ => false,
        }
    }

    /// Longpoll `messages`: an array of JSON texts.
    fn redact_embedded(&self, value: &mut Value) -> bool {
        let Value::Array(items) = value else {
            return self.redact_value(value);
        };
        let mut changed = false;
        for item in items {
            if let Value::String(text) = item {
                let redacted = self.redact_text(text);
                if redacted != *text {
                    *text = redacted;
                    changed = true;
                }
            } else {
                changed |= self.redact_value(item);
            }
        }
        changed
    }

    /// Query pairs with the named parameters redacted.
    pub fn redact_pairs(&self, pairs: Vec<(String, String)>) -> Vec<(String, String)> {
        pairs
            .into_iter()
            .map(|(k, v)| {
                if self.redacts(&k) {
                    (k, REDACTED.to_owned())
                } else {
                    (k, v)
                }
            })
            .collect()
    }

    /// A path with a query string whose named parameters are redacted.
    pub fn redact_path(&self, path: &str) -> String {
        let Some((base, query)) = path.split_once('?') else {
            return path.to_owned();
        };
        if self.redact.is_empty() {
            return path.to_owned();
        }
        let parts: Vec<String> = query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((k, _)) if self.redacts(&decode(k)) => format!("{k}={REDACTED}"),
                _ => part.to_owned(),
            })
            .collect();
        format!("{base}?{}", parts.join("&"))
    }
}

fn decode(s: &str) -> String {
    form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// The topic of a text frame (V2 array or V1 object), if it has one.
pub fn text_topic(text: &str) -> Option<String> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(items) if items.len() == 5 => items[2].as_str().map(str::to_owned),
        Value::Object(map) => map.get("topic")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The topic of a V2 binary frame (push, reply or broadcast), if well formed.
pub fn binary_topic(data: &[u8]) -> Option<String> {
    let (&kind, rest) = data.split_first()?;
    // Header sizes, then join_ref/ref/topic/... in that order.
    let (sizes, skip_before_topic): (usize, usize) = match kind {
        0 | 1 => (4, 2), // push / reply: join_ref, ref, topic, event|status
        2 => (2, 0),     // broadcast: topic, event
        _ => return None,
    };
    let header = rest.get(..sizes)?;
    let before: usize = header[..skip_before_topic]
        .iter()
        .map(|&b| usize::from(b))
        .sum();
    let topic_len = usize::from(header[skip_before_topic]);
    let start = sizes + before;
    let topic = rest.get(start..start + topic_len)?;
    String::from_utf8(topic.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(redact: &[&str], topics: &[&str]) -> Filter {
        Filter {
            redact: redact.iter().map(|s| (*s).to_owned()).collect(),
            topics: topics.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn topics_match_exactly_or_by_prefix() {
        let f = filter(&[], &["room:*", "phoenix"]);
        assert!(f.keeps_topic("room:lobby"));
        assert!(f.keeps_topic("phoenix"));
        assert!(!f.keeps_topic("presence:lobby"));
        assert!(filter(&[], &[]).keeps_topic("anything"));
    }

    #[test]
    fn redacts_nested_fields_and_longpoll_messages() {
        let f = filter(&["password"], &[]);
        let frame = r#"["1","1","room:a","phx_join",{"user":{"password":"hunter2"},"x":1}]"#;
        let out = f.redact_text(frame);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains(REDACTED));
        let body = r#"{"status":200,"messages":["[null,null,\"r\",\"e\",{\"password\":\"p\"}]"]}"#;
        let out = f.redact_text(body);
        assert!(!out.contains("\\\"p\\\""), "{out}");
        // Unchanged text keeps its exact bytes.
        let plain = r#"{"b":1, "a":2}"#;
        assert_eq!(f.redact_text(plain), plain);
        assert_eq!(f.redact_text("not json"), "not json");
    }

    #[test]
    fn redacts_query_parameters() {
        let f = filter(&["token"], &[]);
        assert_eq!(
            f.redact_path("/socket/longpoll?vsn=2.0.0&token=abc"),
            format!("/socket/longpoll?vsn=2.0.0&token={REDACTED}")
        );
        let pairs = f.redact_pairs(vec![("token".into(), "s".into()), ("a".into(), "b".into())]);
        assert_eq!(pairs[0].1, REDACTED);
        assert_eq!(pairs[1].1, "b");
    }

    #[test]
    fn finds_topics_of_frames() {
        assert_eq!(
            text_topic(r#"[null,"1","phoenix","heartbeat",{}]"#).as_deref(),
            Some("phoenix")
        );
        assert_eq!(
            text_topic(r#"{"topic":"t","event":"e"}"#).as_deref(),
            Some("t")
        );
        assert_eq!(text_topic("nope"), None);
        // push: kind 0, join_ref "1", ref "2", topic "room:x", event "ev"
        let mut push = vec![0u8, 1, 1, 6, 2];
        push.extend_from_slice(b"12room:xev\x01");
        assert_eq!(binary_topic(&push).as_deref(), Some("room:x"));
        let mut broadcast = vec![2u8, 6, 2];
        broadcast.extend_from_slice(b"room:xev");
        assert_eq!(binary_topic(&broadcast).as_deref(), Some("room:x"));
        assert_eq!(binary_topic(&[0, 9, 9]), None);
        assert_eq!(binary_topic(&[]), None);
    }
}
