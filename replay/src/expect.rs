//! The observations still expected after an action, and matching live
//! observations against them.
//!
//! Each connection keeps two queues: its `presence_state` frames and all its
//! other observations, each in recorded order. A live observation is matched
//! against the head of the queue of its kind, so a `presence_state` may
//! arrive before or after the connection's `presence_diff`s (Phoenix races
//! them), while everything else keeps the recorded order per connection.
//! Different connections are independent. [`Races`] turns the
//! `presence_state` leniency off, or lets the frames of different channels
//! of one connection interleave; observations recorded as
//! `server_initiated` are left out unless demanded.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;

use super::normalize::{self, Bindings, Difference};
use super::transcript::{Expected, ExpectedRecv};
use super::ws::Observed;

/// Longest rendering of a frame in messages.
const MAX_SHOWN: usize = 240;

#[derive(Debug, Default)]
struct ConnQueues {
    presence: VecDeque<ExpectedRecv>,
    other: VecDeque<ExpectedRecv>,
}

/// The result of offering a live observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// It matched this expected observation, which is now consumed.
    Matched(ExpectedRecv),
    /// Nothing (more) is expected on that connection.
    Unexpected,
    /// It differs from the expected observation it was compared with.
    Mismatch {
        /// The expected observation it was compared with.
        expected: ExpectedRecv,
        /// How it differs.
        difference: Difference,
    },
}

/// Which orderings that Phoenix itself races are accepted in either order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Races {
    /// A connection's `presence_state` may come before or after its
    /// `presence_diff`s (and other frames) of the same action.
    pub presence_state: bool,
    /// The `messages` of one longpoll response may come in any order.
    pub longpoll_batch: bool,
    /// The frames of different channels of one connection may interleave
    /// in any order; each channel's frames keep their recorded order. A
    /// channel is a topic with one join_ref (broadcasts, without join_ref,
    /// count as a channel of their topic): in Phoenix each joined channel
    /// is a process of its own, so what two of them send to the socket
    /// (or a broadcast and a reply) races.
    pub channels: bool,
    /// A frame that the recording places after the next action, and that
    /// the next action's answers start with on its connection, may arrive
    /// before that action: a recording cannot tell whether a client acted
    /// before or after a push already on its way (a channel's push right
    /// after its join reply, while the client goes on).
    pub ahead: bool,
    /// A frame the server pushes on a connection after that connection's
    /// last recorded step is accepted: a recording ends where its client
    /// went away, and a push already on its way then (a channel's welcome
    /// right after its join reply) was never recorded.
    pub tail: bool,
}

impl Default for Races {
    /// The rules of APP.md: the presence race only.
    fn default() -> Self {
        Self {
            presence_state: true,
            longpoll_batch: false,
            channels: false,
            ahead: false,
            tail: false,
        }
    }
}

/// The outstanding expected observations of one action.
#[derive(Debug, Default)]
pub struct Expectations {
    conns: HashMap<String, ConnQueues>,
    races: Races,
}

impl Expectations {
    /// Builds the queues from the action's recorded observations. Those
    /// marked `server_initiated` are left out unless `demand_server_initiated`.
    pub fn new(expected: &[ExpectedRecv], races: Races, demand_server_initiated: bool) -> Self {
        let mut conns: HashMap<String, ConnQueues> = HashMap::new();
        for e in expected {
            if e.server_initiated && !demand_server_initiated {
                continue;
            }
            let queues = conns.entry(e.conn.clone()).or_default();
            let is_presence_state = races.presence_state
                && match &e.expected {
                    Expected::Text(text) => normalize::is_presence_state_text(text),
                    _ => false,
                };
            if is_presence_state {
                queues.presence.push_back(e.clone());
            } else {
                queues.other.push_back(e.clone());
            }
        }
        Self { conns, races }
    }

    /// Whether every expected observation has arrived.
    pub fn is_done(&self) -> bool {
        self.conns
            .values()
            .all(|q| q.presence.is_empty() && q.other.is_empty())
    }

    /// The outstanding observations, in recorded (step) order.
    pub fn missing(&self) -> Vec<&ExpectedRecv> {
        let mut all: Vec<&ExpectedRecv> = self
            .conns
            .values()
            .flat_map(|q| q.presence.iter().chain(q.other.iter()))
            .collect();
        all.sort_by_key(|e| e.step);
        all
    }

    /// Matches a live observation on `conn`; on success the expected
    /// observation is consumed and the bindings extended.
    pub fn offer(&mut self, conn: &str, got: &Observed, bindings: &mut Bindings) -> Offer {
        let Some(queues) = self.conns.get_mut(conn) else {
            return Offer::Unexpected;
        };
        let live_presence_state = match got {
            Observed::Text(text) => normalize::is_presence_state_text(text),
            _ => false,
        };
        let queue = if live_presence_state && !queues.presence.is_empty() {
            &mut queues.presence
        } else if !queues.other.is_empty() {
            &mut queues.other
        } else if !queues.presence.is_empty() {
            &mut queues.presence
        } else {
            return Offer::Unexpected;
        };
        // With the channel race, the live frame is compared with the first
        // outstanding frame of its channel (else with the head, to show
        // the difference).
        let index = if self.races.channels {
            let live = channel_observed(got);
            queue
                .iter()
                .position(|e| channel_expected(&e.expected) == live)
                .unwrap_or(0)
        } else {
            0
        };
        let Some(head) = queue.get(index) else {
            return Offer::Unexpected;
        };
        match match_observation(&head.expected, got, bindings) {
            Ok(()) => match queue.remove(index) {
                Some(e) => Offer::Matched(e),
                None => Offer::Unexpected,
            },
            Err(difference) => Offer::Mismatch {
                expected: head.clone(),
                difference,
            },
        }
    }
}

/// A channel of a connection: topic and join_ref (`None` for a broadcast).
/// Frames that are not channel frames (closes, unparsable text) have none.
pub type Channel = Option<(String, Option<String>)>;

fn channel_expected(e: &Expected) -> Channel {
    match e {
        Expected::Text(t) => channel_of_text(t),
        Expected::Binary(b) => channel_of_binary(b),
        Expected::Closed { .. } => None,
    }
}

fn channel_observed(o: &Observed) -> Channel {
    match o {
        Observed::Text(t) => channel_of_text(t),
        Observed::Binary(b) => channel_of_binary(b),
        Observed::Closed(..) => None,
    }
}

/// The channel (topic, join_ref) of a text frame from the server, if it is
/// a channel frame.
pub fn channel_of_text(text: &str) -> Channel {
    use serde_json::Value;
    let as_ref = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(items) if items.len() == 5 => {
            Some((items[2].as_str()?.to_owned(), as_ref(items.first())))
        }
        Value::Object(map) => Some((
            map.get("topic")?.as_str()?.to_owned(),
            as_ref(map.get("join_ref")),
        )),
        _ => None,
    }
}

/// The channel of a V2 binary frame from the server: a push (join_ref,
/// topic, event), a reply (join_ref, ref, topic, status) or a broadcast
/// (topic, event).
fn channel_of_binary(data: &[u8]) -> Channel {
    let (&kind, rest) = data.split_first()?;
    let text = |from: usize, len: u8| -> Option<String> {
        let bytes = rest.get(from..from + usize::from(len))?;
        String::from_utf8(bytes.to_vec()).ok()
    };
    match kind {
        0 => {
            let (&join_len, &topic_len) = (rest.first()?, rest.get(1)?);
            let join_ref = text(3, join_len)?;
            Some((text(3 + usize::from(join_len), topic_len)?, Some(join_ref)))
        }
        1 => {
            let (&join_len, &ref_len, &topic_len) = (rest.first()?, rest.get(1)?, rest.get(2)?);
            let join_ref = text(4, join_len)?;
            let topic_at = 4 + usize::from(join_len) + usize::from(ref_len);
            Some((text(topic_at, topic_len)?, Some(join_ref)))
        }
        2 => Some((text(2, *rest.first()?)?, None)),
        _ => None,
    }
}

/// What identifies a kind of server push, for accepting pushes recorded as
/// `server_initiated`: `topic event` of a text frame (V2 array or V1
/// object), `binary` or `closed`.
pub fn signature_expected(e: &Expected) -> String {
    match e {
        Expected::Text(t) => text_signature(t),
        Expected::Binary(_) => "binary".to_owned(),
        Expected::Closed { .. } => "closed".to_owned(),
    }
}

/// The [`signature_expected`] of a live observation.
pub fn signature_observed(o: &Observed) -> String {
    match o {
        Observed::Text(t) => text_signature(t),
        Observed::Binary(_) => "binary".to_owned(),
        Observed::Closed(..) => "closed".to_owned(),
    }
}

fn text_signature(text: &str) -> String {
    use serde_json::Value;
    let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let (topic, event) = match &frame {
        Value::Array(items) if items.len() == 5 => (items[2].clone(), items[3].clone()),
        Value::Object(map) => (
            map.get("topic").cloned().unwrap_or(Value::Null),
            map.get("event").cloned().unwrap_or(Value::Null),
        ),
        _ => (Value::Null, Value::Null),
    };
    format!("text {topic} {event}")
}

/// Compares one recorded observation with a live one.
pub fn match_observation(
    expected: &Expected,
    got: &Observed,
    bindings: &mut Bindings,
) -> Result<(), Difference> {
    match (expected, got) {
        (Expected::Text(e), Observed::Text(g)) => normalize::match_text(e, g, bindings),
        (Expected::Binary(e), Observed::Binary(g)) => normalize::match_binary(e, g),
        (Expected::Closed { code: e, .. }, Observed::Closed(g, _)) => {
            if e == g {
                Ok(())
            } else {
                Err(Difference {
                    path: "close code".to_owned(),
                    detail: format!("expected {}, got {}", show_code(*e), show_code(*g)),
                })
            }
        }
        _ => Err(Difference {
            path: "$".to_owned(),
            detail: "different kind of observation".to_owned(),
        }),
    }
}

fn show_code(code: Option<u16>) -> String {
    code.map_or_else(|| "null (no close frame)".to_owned(), |c| c.to_string())
}

/// One line, cut to a readable length, for failure messages.
pub fn shorten(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.chars().count() <= MAX_SHOWN {
        return s;
    }
    let cut: String = s.chars().take(MAX_SHOWN).collect();
    format!("{cut}…")
}

/// A one-line rendering of an expected observation.
pub fn describe_expected(e: &Expected) -> String {
    match e {
        Expected::Text(t) => format!("text {}", shorten(t)),
        Expected::Binary(b) => format!(
            "binary {}",
            shorten(&base64::engine::general_purpose::STANDARD.encode(b))
        ),
        Expected::Closed { code, .. } => format!("closed (code {})", show_code(*code)),
    }
}

/// A one-line rendering of a live observation.
pub fn describe_observed(o: &Observed) -> String {
    match o {
        Observed::Text(t) => format!("text {}", shorten(t)),
        Observed::Binary(b) => format!(
            "binary {}",
            shorten(&base64::engine::general_purpose::STANDARD.encode(b))
        ),
        Observed::Closed(code, reason) if reason.is_empty() => {
            format!("closed (code {})", show_code(*code))
        }
        Observed::Closed(code, reason) => {
            format!("closed (code {}, {})", show_code(*code), shorten(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(step: usize, conn: &str, t: &str) -> ExpectedRecv {
        ExpectedRecv {
            step,
            conn: conn.to_owned(),
            expected: Expected::Text(t.to_owned()),
            server_initiated: false,
        }
    }

    const REPLY: &str = r#"["1","1","presence:lobby","phx_reply",{"response":{},"status":"ok"}]"#;
    const DIFF: &str = r#"[null,null,"presence:lobby","presence_diff",{"joins":{"alice":{"metas":[{"phx_ref":"R1"}]}},"leaves":{}}]"#;
    const STATE: &str =
        r#"["1",null,"presence:lobby","presence_state",{"alice":{"metas":[{"phx_ref":"R1"}]}}]"#;
    const LIVE_DIFF: &str = r#"[null,null,"presence:lobby","presence_diff",{"joins":{"alice":{"metas":[{"phx_ref":"L1"}]}},"leaves":{}}]"#;
    const LIVE_STATE: &str =
        r#"["1",null,"presence:lobby","presence_state",{"alice":{"metas":[{"phx_ref":"L1"}]}}]"#;

    fn live(t: &str) -> Observed {
        Observed::Text(t.to_owned())
    }

    #[test]
    fn presence_state_may_overtake_diffs() {
        let mut b = Bindings::new();
        let mut ex = Expectations::new(
            &[text(5, "a", REPLY), text(6, "a", DIFF), text(7, "a", STATE)],
            Races::default(),
            false,
        );
        assert!(matches!(ex.offer("a", &live(REPLY), &mut b), Offer::Matched(e) if e.step == 5));
        assert!(
            matches!(ex.offer("a", &live(LIVE_STATE), &mut b), Offer::Matched(e) if e.step == 7)
        );
        assert!(
            matches!(ex.offer("a", &live(LIVE_DIFF), &mut b), Offer::Matched(e) if e.step == 6)
        );
        assert!(ex.is_done());
        assert!(matches!(
            ex.offer("a", &live(REPLY), &mut b),
            Offer::Unexpected
        ));
    }

    #[test]
    fn strict_presence_order_when_the_race_is_off() {
        let mut b = Bindings::new();
        let strict = Races {
            presence_state: false,
            longpoll_batch: false,
            channels: false,
            ahead: false,
            tail: false,
        };
        let mut ex = Expectations::new(&[text(6, "a", DIFF), text(7, "a", STATE)], strict, false);
        match ex.offer("a", &live(LIVE_STATE), &mut b) {
            Offer::Mismatch { expected, .. } => assert_eq!(expected.step, 6),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn server_initiated_observations_are_only_demanded_on_request() {
        let mut pushed = text(3, "a", DIFF);
        pushed.server_initiated = true;
        let ex = Expectations::new(std::slice::from_ref(&pushed), Races::default(), false);
        assert!(ex.is_done());
        let ex = Expectations::new(&[pushed], Races::default(), true);
        assert!(!ex.is_done());
        assert_eq!(
            signature_observed(&live(LIVE_DIFF)),
            signature_expected(&Expected::Text(DIFF.to_owned()))
        );
        assert_ne!(
            signature_observed(&live(LIVE_STATE)),
            signature_expected(&Expected::Text(DIFF.to_owned()))
        );
    }

    #[test]
    fn other_frames_keep_recorded_order_per_conn() {
        let mut b = Bindings::new();
        let mut ex = Expectations::new(
            &[text(1, "a", REPLY), text(2, "a", DIFF), text(3, "b", REPLY)],
            Races::default(),
            false,
        );
        // Conns interleave freely.
        assert!(matches!(
            ex.offer("b", &live(REPLY), &mut b),
            Offer::Matched(_)
        ));
        // But within "a", the diff may not come first.
        match ex.offer("a", &live(LIVE_DIFF), &mut b) {
            Offer::Mismatch { expected, .. } => assert_eq!(expected.step, 1),
            other => panic!("unexpected {other:?}"),
        }
        assert!(b.is_empty(), "failed comparison must not bind");
        assert_eq!(
            ex.missing().iter().map(|e| e.step).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(matches!(
            ex.offer("c", &live(REPLY), &mut b),
            Offer::Unexpected
        ));
    }

    #[test]
    fn closes_compare_by_code_only() {
        let mut b = Bindings::new();
        let closed = |code| ExpectedRecv {
            step: 1,
            conn: "a".to_owned(),
            expected: Expected::Closed {
                code,
                reason: "ignored".to_owned(),
            },
            server_initiated: false,
        };
        let mut ex = Expectations::new(&[closed(Some(1000))], Races::default(), false);
        assert!(matches!(
            ex.offer(
                "a",
                &Observed::Closed(Some(1000), "other".to_owned()),
                &mut b
            ),
            Offer::Matched(_)
        ));
        let mut ex = Expectations::new(&[closed(None)], Races::default(), false);
        assert!(matches!(
            ex.offer("a", &Observed::Closed(Some(1000), String::new()), &mut b),
            Offer::Mismatch { .. }
        ));
        assert!(matches!(
            ex.offer("a", &Observed::Closed(None, String::new()), &mut b),
            Offer::Matched(_)
        ));
    }

    #[test]
    fn binary_frames_compare_exactly() {
        let mut b = Bindings::new();
        let e = ExpectedRecv {
            step: 1,
            conn: "a".to_owned(),
            expected: Expected::Binary(vec![2, 3]),
            server_initiated: false,
        };
        let mut ex = Expectations::new(std::slice::from_ref(&e), Races::default(), false);
        assert!(matches!(
            ex.offer("a", &Observed::Binary(vec![2, 4]), &mut b),
            Offer::Mismatch { .. }
        ));
        assert!(matches!(
            ex.offer("a", &Observed::Text("[]".to_owned()), &mut b),
            Offer::Mismatch { .. }
        ));
        assert!(matches!(
            ex.offer("a", &Observed::Binary(vec![2, 3]), &mut b),
            Offer::Matched(_)
        ));
    }

    #[test]
    fn channels_interleave_only_with_the_channel_race() {
        const A_REPLY: &str = r#"["1","2","room:a","phx_reply",{"response":{},"status":"ok"}]"#;
        const A_PUSH: &str = r#"["1",null,"room:a","tick",{"n":1}]"#;
        const A_PUSH_2: &str = r#"["1",null,"room:a","tick",{"n":2}]"#;
        const B_REPLY: &str = r#"["3","3","room:b","phx_reply",{"response":{},"status":"ok"}]"#;
        // The same topic joined again: another channel.
        const A_AGAIN: &str = r#"["4","4","room:a","phx_reply",{"response":{},"status":"ok"}]"#;
        let expected = [
            text(1, "a", A_REPLY),
            text(2, "a", A_PUSH),
            text(3, "a", A_PUSH_2),
            text(4, "a", B_REPLY),
            text(5, "a", A_AGAIN),
        ];
        let races = Races {
            channels: true,
            ..Races::default()
        };
        let mut b = Bindings::new();
        let mut ex = Expectations::new(&expected, races, false);
        let offer = |ex: &mut Expectations, b: &mut Bindings, t: &str| ex.offer("a", &live(t), b);
        assert!(matches!(offer(&mut ex, &mut b, A_AGAIN), Offer::Matched(e) if e.step == 5));
        assert!(matches!(offer(&mut ex, &mut b, B_REPLY), Offer::Matched(e) if e.step == 4));
        // Within room:a (join_ref 1) the recorded order holds.
        match offer(&mut ex, &mut b, A_PUSH_2) {
            Offer::Mismatch { expected, .. } => assert_eq!(expected.step, 1),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(offer(&mut ex, &mut b, A_REPLY), Offer::Matched(e) if e.step == 1));
        assert!(matches!(offer(&mut ex, &mut b, A_PUSH), Offer::Matched(e) if e.step == 2));
        assert!(matches!(offer(&mut ex, &mut b, A_PUSH_2), Offer::Matched(e) if e.step == 3));
        assert!(ex.is_done());

        // Without the race, another channel's frame may not overtake.
        let mut ex = Expectations::new(&expected, Races::default(), false);
        match ex.offer("a", &live(B_REPLY), &mut b) {
            Offer::Mismatch { expected, .. } => assert_eq!(expected.step, 1),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn finds_the_channel_of_binary_frames() {
        // push: join_ref "1", topic "r:x", event "ev"
        let mut push = vec![0u8, 1, 3, 2];
        push.extend_from_slice(b"1r:xev\x01");
        assert_eq!(
            channel_of_binary(&push),
            Some(("r:x".into(), Some("1".into())))
        );
        // reply: join_ref "1", ref "22", topic "r:x", status "ok"
        let mut reply = vec![1u8, 1, 2, 3, 2];
        reply.extend_from_slice(b"122r:xok");
        assert_eq!(
            channel_of_binary(&reply),
            Some(("r:x".into(), Some("1".into())))
        );
        let mut broadcast = vec![2u8, 3, 2];
        broadcast.extend_from_slice(b"r:xev");
        assert_eq!(channel_of_binary(&broadcast), Some(("r:x".into(), None)));
        assert_eq!(channel_of_binary(&[1, 9, 9, 9]), None);
        assert_eq!(
            channel_of_text(r#"[null,null,"t","e",{}]"#),
            Some(("t".into(), None))
        );
    }
}
