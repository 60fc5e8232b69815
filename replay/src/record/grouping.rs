//! Which connections share a transcript: the grouping modes of
//! `fawkes record --group`, and the keys that tie traffic together in topic
//! mode (the topics a websocket frame or an HTTP body names, and the
//! LongPoll session an exchange belongs to).

use serde_json::Value;

use super::filter::text_topic;

/// How the recorder puts connections into transcripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grouping {
    /// One transcript per time window: every connection and HTTP exchange
    /// while a transcript is open.
    #[default]
    Time,
    /// One transcript per set of connections that share a topic: joining a
    /// topic (or an HTTP exchange naming it) ties a connection to every
    /// other connection on that topic, transitively.
    Topic,
}

impl std::str::FromStr for Grouping {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "time" => Ok(Self::Time),
            "topic" => Ok(Self::Topic),
            other => Err(format!(
                "unknown grouping {other:?} (expected time or topic)"
            )),
        }
    }
}

/// The socket-level topic of heartbeats: shared by every connection, so it
/// never ties connections together.
pub const SOCKET_TOPIC: &str = "phoenix";

/// Whether `topic` ties the connections that use it together.
pub fn links(topic: &str) -> bool {
    topic != SOCKET_TOPIC
}

/// The topics an HTTP body names: a frame (V2 array or V1 object), a list
/// of frames, a LongPoll response's `messages` (frames as JSON text), an
/// object with a `topic` key (a broadcast API), or one of these per line.
pub fn body_topics(body: &str) -> Vec<String> {
    let mut topics = Vec::new();
    match serde_json::from_str::<Value>(body) {
        Ok(value) => collect(&value, &mut topics),
        Err(_) => {
            for line in body.lines() {
                if let Ok(value) = serde_json::from_str::<Value>(line) {
                    collect(&value, &mut topics);
                }
            }
        }
    }
    topics.retain(|t| links(t));
    topics.sort();
    topics.dedup();
    topics
}

fn collect(value: &Value, topics: &mut Vec<String>) {
    match value {
        Value::Array(items) if is_v2_frame(items) => {
            if let Some(topic) = items[2].as_str() {
                topics.push(topic.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, topics)),
        Value::Object(map) => {
            if let Some(topic) = map.get("topic").and_then(Value::as_str) {
                topics.push(topic.to_owned());
            }
            if let Some(Value::Array(messages)) = map.get("messages") {
                for message in messages {
                    match message {
                        Value::String(text) => topics.extend(text_topic(text)),
                        other => collect(other, topics),
                    }
                }
            }
        }
        Value::String(text) => topics.extend(text_topic(text)),
        _ => {}
    }
}

fn is_v2_frame(items: &[Value]) -> bool {
    items.len() == 5 && items[2].is_string() && items[3].is_string()
}

/// The LongPoll session an exchange belongs to: its `token` query
/// parameter, else (the first poll of a session) the `token` the server
/// answered with. `None` for other HTTP requests.
pub fn longpoll_session(path: &str, response_body: &str) -> Option<String> {
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    if !path_only.ends_with("/longpoll") {
        return None;
    }
    let from_query = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    from_query.or_else(|| {
        serde_json::from_str::<Value>(response_body)
            .ok()?
            .get("token")?
            .as_str()
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grouping_flag() {
        assert_eq!("time".parse(), Ok(Grouping::Time));
        assert_eq!("topic".parse(), Ok(Grouping::Topic));
        assert!("conn".parse::<Grouping>().is_err());
    }

    #[test]
    fn finds_the_topics_of_http_bodies() {
        assert_eq!(
            body_topics(r#"["1","1","room:a","phx_join",{}]"#),
            vec!["room:a"]
        );
        assert_eq!(
            body_topics(r#"{"topic":"room:b","event":"e","payload":{}}"#),
            vec!["room:b"]
        );
        let poll = r#"{"status":200,"token":"t","messages":["[\"1\",\"1\",\"room:c\",\"phx_reply\",{}]","[null,\"2\",\"phoenix\",\"phx_reply\",{}]"]}"#;
        assert_eq!(body_topics(poll), vec!["room:c"]);
        let lines = "[\"1\",\"1\",\"room:d\",\"phx_join\",{}]\n[\"1\",\"2\",\"room:e\",\"x\",{}]";
        assert_eq!(body_topics(lines), vec!["room:d", "room:e"]);
        assert!(body_topics("[null,\"1\",\"phoenix\",\"heartbeat\",{}]").is_empty());
        assert!(body_topics("not json").is_empty());
    }

    #[test]
    fn finds_the_longpoll_session() {
        assert_eq!(
            longpoll_session("/socket/longpoll?vsn=2.0.0&token=abc", "").as_deref(),
            Some("abc")
        );
        assert_eq!(
            longpoll_session(
                "/socket/longpoll?vsn=2.0.0",
                r#"{"status":410,"token":"new"}"#
            )
            .as_deref(),
            Some("new")
        );
        assert_eq!(longpoll_session("/api/broadcast", r#"{"token":"x"}"#), None);
    }
}
