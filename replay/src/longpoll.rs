//! LongPoll polls replayed as one stream of messages per session.
//!
//! A LongPoll server answers a poll with every message buffered so far,
//! so how the messages of a session are cut into poll responses depends
//! on timing: the recording may hold `[reply, push]` in one poll where the
//! replay gets `[reply]`, then `[push]`. And a recorder writes a poll where
//! it completed, which may be before the `POST` that caused its messages
//! (the server answers the waiting poll before the post). What a client
//! sees is the sequence of messages, so the replay polls each session on
//! its own, from the first recorded poll to the end, and the messages of
//! all the session's recorded polls must come, in their order (with the
//! same races as a websocket's frames), however they were cut into polls.
//! [`RecordedPoll`] matches the live messages against the recorded ones.

use std::collections::VecDeque;

use serde_json::Value;

use super::expect::{channel_of_text, Races};
use super::normalize::{self, Bindings, Difference};

/// What a recorded poll response holds, when it is part of a session's
/// message stream: a `200` or `204` with a token and string messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPoll {
    /// The session token the recorded response carries, if any.
    pub token: Option<String>,
    /// The recorded messages (frames as JSON text), in order.
    pub messages: Vec<String>,
}

/// Whether a recorded exchange is a poll of an open LongPoll session whose
/// messages can be matched as a stream: a `GET` of `…/longpoll` with a
/// `token` in its query, answered HTTP 200 with `{"status": 200 | 204,
/// "messages": [strings]}`. Returns the recorded token of the request (the
/// session's key) and the response's content.
pub fn stream_poll(
    method: &str,
    path: &str,
    status: u16,
    body: &str,
) -> Option<(String, StreamPoll)> {
    if !method.eq_ignore_ascii_case("GET") || status != 200 {
        return None;
    }
    let (path_only, query) = path.split_once('?')?;
    if !path_only.ends_with("/longpoll") {
        return None;
    }
    let token = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty() && *t != "null")?;
    let poll = poll_body(body)?;
    Some((token.to_owned(), poll))
}

/// The content of a poll response body with status 200 or 204.
pub fn poll_body(body: &str) -> Option<StreamPoll> {
    let Value::Object(map) = serde_json::from_str::<Value>(body).ok()? else {
        return None;
    };
    if !matches!(map.get("status").and_then(Value::as_u64), Some(200 | 204)) {
        return None;
    }
    let messages = match map.get("messages") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| m.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?,
        Some(_) => return None,
    };
    let token = map.get("token").and_then(Value::as_str).map(str::to_owned);
    Some(StreamPoll { token, messages })
}

/// A live message that did not match what the poll expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollMismatch {
    /// The step of the recorded poll response holding the expected message.
    pub step: usize,
    /// The recorded message it was compared with.
    pub expected: String,
    /// The live message.
    pub got: String,
    /// How they differ.
    pub difference: Difference,
}

/// The recorded messages of a session (each with the step of the poll
/// response that holds it) still waiting for their live counterpart.
#[derive(Debug, Clone)]
pub struct RecordedPoll {
    outstanding: Vec<(usize, String)>,
    races: Races,
    /// Live messages not taken, in arrival order (for the next poll).
    deferred: VecDeque<String>,
    /// The first live message that differed from what was expected.
    pub first_mismatch: Option<PollMismatch>,
}

impl RecordedPoll {
    /// Waits for `messages` (`(step, text)`, in recorded order), with the
    /// orderings `races` allows.
    pub fn new(messages: Vec<(usize, String)>, races: Races) -> Self {
        Self {
            outstanding: messages,
            races,
            deferred: VecDeque::new(),
            first_mismatch: None,
        }
    }

    /// Whether every recorded message has been matched.
    pub fn is_done(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// The recorded messages not matched yet, with their steps.
    pub fn outstanding(&self) -> &[(usize, String)] {
        &self.outstanding
    }

    /// The live messages not taken, in arrival order.
    pub fn deferred(&self) -> &VecDeque<String> {
        &self.deferred
    }

    /// Offer one live message, in arrival order. It is taken when it is
    /// the next recorded message (as the races allow); otherwise it is
    /// kept aside, and so is every later message that may not overtake it.
    pub fn offer(&mut self, live: String, bindings: &mut Bindings) {
        if self.blocked(&live) || self.outstanding.is_empty() {
            self.deferred.push_back(live);
            return;
        }
        let candidates = self.candidates(&live);
        let mut first = None;
        for index in candidates {
            match normalize::match_text(&self.outstanding[index].1, &live, bindings) {
                Ok(()) => {
                    self.outstanding.remove(index);
                    return;
                }
                Err(difference) => {
                    first.get_or_insert((index, difference));
                }
            }
        }
        if let (None, Some((index, difference))) = (&self.first_mismatch, first) {
            let (step, expected) = self.outstanding[index].clone();
            self.first_mismatch = Some(PollMismatch {
                step,
                expected,
                got: live.clone(),
                difference,
            });
        }
        self.deferred.push_back(live);
    }

    /// A message may not overtake one kept back before it: of the same
    /// channel with the channel race, any message without it.
    fn blocked(&self, live: &str) -> bool {
        if self.deferred.is_empty() {
            return false;
        }
        if self.races.longpoll_batch {
            return false;
        }
        if !self.races.channels {
            return true;
        }
        let channel = channel_of_text(live);
        channel.is_none()
            || self
                .deferred
                .iter()
                .any(|d| channel_of_text(d).as_ref() == channel.as_ref())
    }

    /// The indexes of the outstanding messages `live` is compared with, in
    /// order of preference.
    fn candidates(&self, live: &str) -> Vec<usize> {
        if self.races.longpoll_batch {
            return (0..self.outstanding.len()).collect();
        }
        let presence = |text: &str| normalize::is_presence_state_text(text);
        // A presence_state races the other frames; everything else keeps
        // its order among the frames that are not a presence_state.
        let pool: Vec<usize> = if self.races.presence_state {
            let live_state = presence(live);
            let same: Vec<usize> = (0..self.outstanding.len())
                .filter(|&i| presence(&self.outstanding[i].1) == live_state)
                .collect();
            if same.is_empty() {
                (0..self.outstanding.len()).collect()
            } else {
                same
            }
        } else {
            (0..self.outstanding.len()).collect()
        };
        let head = pool.first().copied().into_iter().collect::<Vec<_>>();
        if !self.races.channels {
            return head;
        }
        let channel = channel_of_text(live);
        match pool
            .iter()
            .find(|&&i| channel_of_text(&self.outstanding[i].1) == channel)
        {
            Some(&i) => vec![i],
            None => head,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(topic: &str, event: &str, n: u64) -> String {
        format!(r#"["1",null,"{topic}","{event}",{{"n":{n}}}]"#)
    }

    fn strict() -> Races {
        Races {
            presence_state: true,
            longpoll_batch: false,
            channels: false,
            ahead: false,
            tail: false,
        }
    }

    #[test]
    fn recognises_stream_polls_only() {
        let body = r#"{"status":200,"token":"T","messages":["[1]"]}"#;
        let (token, poll) =
            stream_poll("GET", "/socket/longpoll?vsn=2.0.0&token=abc", 200, body).expect("a poll");
        assert_eq!(token, "abc");
        assert_eq!(poll.messages, vec!["[1]".to_owned()]);
        assert_eq!(poll.token.as_deref(), Some("T"));
        let empty = r#"{"status":204,"token":"T","messages":[]}"#;
        assert!(stream_poll("GET", "/socket/longpoll?token=abc", 200, empty).is_some());
        // The first GET of a session, a POST, a 410, another path: not.
        let opened = r#"{"status":410,"token":"T","messages":[]}"#;
        assert!(stream_poll("GET", "/socket/longpoll?vsn=2.0.0&token=", 200, body).is_none());
        assert!(stream_poll("GET", "/socket/longpoll?token=abc", 200, opened).is_none());
        assert!(stream_poll("POST", "/socket/longpoll?token=abc", 200, body).is_none());
        assert!(stream_poll("GET", "/api/x?token=abc", 200, body).is_none());
    }

    fn recorded(messages: &[String]) -> Vec<(usize, String)> {
        messages.iter().map(|m| (3, m.clone())).collect()
    }

    #[test]
    fn messages_match_in_order_and_extra_ones_are_kept_aside() {
        let mut bindings = Bindings::new();
        let mut poll = RecordedPoll::new(
            recorded(&[frame("room:a", "x", 1), frame("room:a", "x", 2)]),
            strict(),
        );
        for n in 1..=3 {
            poll.offer(frame("room:a", "x", n), &mut bindings);
        }
        assert!(poll.is_done());
        assert!(poll.first_mismatch.is_none());
        assert_eq!(poll.deferred(), &VecDeque::from([frame("room:a", "x", 3)]));
    }

    #[test]
    fn a_different_message_is_kept_with_its_difference() {
        let mut bindings = Bindings::new();
        let mut poll = RecordedPoll::new(recorded(&[frame("room:a", "x", 1)]), strict());
        poll.offer(frame("room:a", "x", 9), &mut bindings);
        assert!(!poll.is_done());
        let mismatch = poll.first_mismatch.clone().expect("a mismatch");
        assert_eq!(mismatch.step, 3);
        assert_eq!(mismatch.got, frame("room:a", "x", 9));
        assert!(
            mismatch.difference.to_string().contains("n"),
            "{mismatch:?}"
        );
        // Strict order: a later message does not overtake the kept one.
        poll.offer(frame("room:a", "x", 1), &mut bindings);
        assert!(!poll.is_done());
    }

    #[test]
    fn channels_race_lets_other_channels_overtake() {
        let mut bindings = Bindings::new();
        let races = Races {
            channels: true,
            ..strict()
        };
        // Recorded [a1, b1]; live [b1, a1]: the channels race accepts it.
        let mut poll = RecordedPoll::new(
            recorded(&[frame("room:a", "x", 1), frame("room:b", "x", 1)]),
            races,
        );
        poll.offer(frame("room:b", "x", 1), &mut bindings);
        poll.offer(frame("room:a", "x", 1), &mut bindings);
        assert!(poll.is_done());
        // Without it, the same order is a difference.
        let mut poll = RecordedPoll::new(
            recorded(&[frame("room:a", "x", 1), frame("room:b", "x", 1)]),
            strict(),
        );
        poll.offer(frame("room:b", "x", 1), &mut bindings);
        poll.offer(frame("room:a", "x", 1), &mut bindings);
        assert!(!poll.is_done());
        assert!(poll.first_mismatch.is_some());
    }
}
