//! Whether two transcripts record the same conversation: the same actions
//! in the same order, and on each connection the same observations in the
//! same order (a `presence_state` in its own order, as in replay), compared
//! with the replay's normalisation. Connection names, pauses and the
//! recording markers do not matter, nor do client closes after the last
//! other action and what they cause (a replay closes what is left open
//! when it ends), nor how the messages of a LongPoll session were cut
//! into polls (only their sequence). Used to check that recording a replay
//! gives back the transcript that was replayed.

use std::collections::HashMap;

use crate::normalize::{self, Bindings};
use crate::transcript::{Step, Transcript};

/// One step with its connection renamed by order of first appearance.
#[derive(Debug)]
enum Item {
    Action(usize, Step),
    Recv(usize, Step),
}

/// The messages of each LongPoll session's polls, sessions in order of
/// first appearance: `(recorded token, messages)`.
type PollStreams = Vec<(String, Vec<String>)>;

fn items(t: &Transcript) -> Result<(Vec<Item>, PollStreams), String> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut polls: PollStreams = Vec::new();
    let mut skip_next = false;
    for (i, raw) in t.steps.iter().enumerate() {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        let step = raw.classify(i).map_err(|e| e.to_string())?;
        if matches!(step, Step::Sleep(_)) {
            continue;
        }
        // A poll of an open LongPoll session: only the sequence of the
        // session's messages counts, not how many polls carried them.
        if let (Step::Http(request), Some(response)) = (&step, t.steps.get(i + 1)) {
            if let Some(r) = &response.http_response {
                if let Some((token, poll)) =
                    crate::longpoll::stream_poll(&request.method, &request.path, r.status, &r.body)
                {
                    match polls.iter_mut().find(|(t, _)| *t == token) {
                        Some((_, messages)) => messages.extend(poll.messages),
                        None => polls.push((token, poll.messages)),
                    }
                    skip_next = true;
                    continue;
                }
            }
        }
        let next = names.len();
        let conn = raw
            .conn
            .as_ref()
            .map_or(usize::MAX, |c| *names.entry(c.clone()).or_insert(next));
        out.push(match step {
            Step::Recv { .. } => Item::Recv(conn, step),
            other => Item::Action(conn, other),
        });
    }
    // Trailing client closes: what a replay does when it ends.
    let mut end = out.len();
    for (i, item) in out.iter().enumerate().rev() {
        match item {
            Item::Action(_, Step::Close { .. }) => end = i,
            Item::Recv(..) => {}
            Item::Action(..) => break,
        }
    }
    // What the closes caused goes with them.
    out.truncate(end);
    Ok((out, polls))
}

/// `Ok` when `recorded` holds the same conversation as `original`, else the
/// first difference.
pub fn equivalent(original: &Transcript, recorded: &Transcript) -> Result<(), String> {
    let (a, polls_a) = items(original)?;
    let (b, polls_b) = items(recorded)?;
    let mut bindings = Bindings::new();
    if polls_a.len() != polls_b.len() {
        return Err(format!(
            "{} LongPoll sessions polled, {} in the original",
            polls_b.len(),
            polls_a.len()
        ));
    }
    for (n, ((ta, ma), (tb, mb))) in polls_a.iter().zip(&polls_b).enumerate() {
        bindings.bind(ta, tb)?;
        if ma.len() != mb.len() {
            return Err(format!(
                "LongPoll session #{n}: {} messages recorded, {} in the original",
                mb.len(),
                ma.len()
            ));
        }
        for (m, (x, y)) in ma.iter().zip(mb).enumerate() {
            normalize::match_text(x, y, &mut bindings)
                .map_err(|d| format!("LongPoll session #{n}, message {m}: {d}: {x} vs {y}"))?;
        }
    }
    let actions = |items: &[Item]| -> Vec<(usize, Step)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Action(c, s) => Some((*c, s.clone())),
                Item::Recv(..) => None,
            })
            .collect()
    };
    let (aa, ba) = (actions(&a), actions(&b));
    if aa.len() != ba.len() {
        return Err(format!(
            "{} actions recorded, {} in the original",
            ba.len(),
            aa.len()
        ));
    }
    for (n, ((ca, sa), (cb, sb))) in aa.iter().zip(&ba).enumerate() {
        if ca != cb {
            return Err(format!(
                "action {n}: on connection #{cb}, the original's is on #{ca}"
            ));
        }
        same_action(sa, sb, &mut bindings).map_err(|e| format!("action {n}: {e}"))?;
    }
    let conns = a
        .iter()
        .chain(&b)
        .filter_map(|i| match i {
            Item::Recv(c, _) => Some(*c),
            Item::Action(..) => None,
        })
        .max()
        .map_or(0, |m| m + 1);
    for conn in 0..conns {
        for presence in [true, false] {
            let pick = |items: &[Item]| -> Vec<Step> {
                items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Recv(c, s) if *c == conn && is_presence_state(s) == presence => {
                            Some(s.clone())
                        }
                        _ => None,
                    })
                    .collect()
            };
            let (ra, rb) = (pick(&a), pick(&b));
            if ra.len() != rb.len() {
                return Err(format!(
                    "connection #{conn}: {} observations recorded, {} in the original",
                    rb.len(),
                    ra.len()
                ));
            }
            for (n, (x, y)) in ra.iter().zip(&rb).enumerate() {
                same_recv(x, y, &mut bindings)
                    .map_err(|e| format!("connection #{conn}, observation {n}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn is_presence_state(step: &Step) -> bool {
    match step {
        Step::Recv {
            expected: crate::transcript::Expected::Text(t),
            ..
        } => normalize::is_presence_state_text(t),
        _ => false,
    }
}

fn same_recv(a: &Step, b: &Step, bindings: &mut Bindings) -> Result<(), String> {
    use crate::transcript::Expected;
    let (Step::Recv { expected: x, .. }, Step::Recv { expected: y, .. }) = (a, b) else {
        return Err("not observations".to_owned());
    };
    match (x, y) {
        (Expected::Text(x), Expected::Text(y)) => {
            normalize::match_text(x, y, bindings).map_err(|d| format!("{d}: {x} vs {y}"))
        }
        (Expected::Binary(x), Expected::Binary(y)) => {
            normalize::match_binary(x, y).map_err(|d| d.to_string())
        }
        (Expected::Closed { code: x, .. }, Expected::Closed { code: y, .. }) if x == y => Ok(()),
        _ => Err(format!("{x:?} vs {y:?}")),
    }
}

/// Query pairs of a path, with `token` values bound rather than compared.
fn same_path(a: &str, b: &str, bindings: &mut Bindings) -> Result<(), String> {
    let split = |p: &str| -> (String, Vec<(String, String)>) {
        match p.split_once('?') {
            Some((path, q)) => (
                path.to_owned(),
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
            None => (p.to_owned(), Vec::new()),
        }
    };
    let ((pa, qa), (pb, qb)) = (split(a), split(b));
    if pa != pb || qa.len() != qb.len() {
        return Err(format!("path {b} vs {a}"));
    }
    for ((ka, va), (kb, vb)) in qa.iter().zip(&qb) {
        if ka != kb {
            return Err(format!("path {b} vs {a}"));
        }
        if ka == "token" {
            bindings.bind(va, vb)?;
        } else if va != vb {
            return Err(format!("path {b} vs {a}"));
        }
    }
    Ok(())
}

fn same_action(a: &Step, b: &Step, bindings: &mut Bindings) -> Result<(), String> {
    match (a, b) {
        (
            Step::Connect {
                path: pa,
                query: qa,
                ..
            },
            Step::Connect {
                path: pb,
                query: qb,
                ..
            },
        ) if pa == pb && qa == qb => Ok(()),
        (Step::Connected { status: x, .. }, Step::Connected { status: y, .. }) if x == y => Ok(()),
        (Step::Send { frame: x, .. }, Step::Send { frame: y, .. }) if x == y => Ok(()),
        (Step::Close { code: x, .. }, Step::Close { code: y, .. }) if x == y => Ok(()),
        (Step::Http(x), Step::Http(y)) => {
            if x.method != y.method {
                return Err(format!("method {} vs {}", y.method, x.method));
            }
            same_path(&x.path, &y.path, bindings)?;
            normalize::match_http_body(&x.body, &y.body, bindings).map_err(|d| d.to_string())
        }
        (
            Step::HttpResponse {
                status: sx,
                body: bx,
            },
            Step::HttpResponse {
                status: sy,
                body: by,
            },
        ) => {
            if sx != sy {
                return Err(format!("status {sy} vs {sx}"));
            }
            normalize::match_http_body(bx, by, bindings).map_err(|d| d.to_string())
        }
        _ => Err(format!("{b:?} vs {a:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"{"scenario":"x","steps":[
      {"conn":"a","connect":{"path":"/socket/websocket","query":{"vsn":"2.0.0"}}},
      {"conn":"a","connected":{"status":101}},
      {"conn":"a","send":{"text":"[\"1\",\"1\",\"presence:l\",\"phx_join\",{}]"}},
      {"conn":"a","recv":{"text":"[\"1\",\"1\",\"presence:l\",\"phx_reply\",{}]"}},
      {"conn":"a","recv":{"text":"[\"1\",null,\"presence:l\",\"presence_state\",{\"u\":{\"metas\":[{\"phx_ref\":\"R1\"}]}}]"}},
      {"conn":"a","recv":{"text":"[null,null,\"presence:l\",\"presence_diff\",{\"joins\":{\"u\":{\"metas\":[{\"phx_ref\":\"R1\"}]}}}]"}},
      {"sleep_ms":100}
    ]}"#;

    #[test]
    fn names_markers_pauses_refs_and_the_presence_race_do_not_matter() {
        let recorded = r#"{"scenario":"y","steps":[
          {"conn":"c1","connect":{"path":"/socket/websocket","query":{"vsn":"2.0.0"}}},
          {"conn":"c1","connected":{"status":101}},
          {"sleep_ms":12},
          {"conn":"c1","send":{"text":"[\"1\",\"1\",\"presence:l\",\"phx_join\",{}]"},"pipelined":true},
          {"conn":"c1","recv":{"text":"[\"1\",\"1\",\"presence:l\",\"phx_reply\",{}]"}},
          {"conn":"c1","recv":{"text":"[null,null,\"presence:l\",\"presence_diff\",{\"joins\":{\"u\":{\"metas\":[{\"phx_ref\":\"Z\"}]}}}]"},"server_initiated":true},
          {"conn":"c1","recv":{"text":"[\"1\",null,\"presence:l\",\"presence_state\",{\"u\":{\"metas\":[{\"phx_ref\":\"Z\"}]}}]"}}
        ]}"#;
        let a = Transcript::from_json(ORIGINAL).expect("a");
        let b = Transcript::from_json(recorded).expect("b");
        equivalent(&a, &b).expect("equivalent");
    }

    fn longpoll(polls: &[&[&str]]) -> Transcript {
        let mut steps = vec![
            serde_json::json!({"http": {"method": "GET", "path": "/socket/longpoll?vsn=2.0.0&", "headers": {}}}),
            serde_json::json!({"http_response": {"status": 200, "body": "{\"status\":410,\"token\":\"T\",\"messages\":[]}"}}),
        ];
        for messages in polls {
            let body = serde_json::json!({"status": 200, "token": "T", "messages": messages});
            steps.push(serde_json::json!({"http": {"method": "GET", "path": "/socket/longpoll?vsn=2.0.0&token=T", "headers": {}}}));
            steps.push(
                serde_json::json!({"http_response": {"status": 200, "body": body.to_string()}}),
            );
        }
        let text = serde_json::json!({"scenario": "lp", "steps": steps}).to_string();
        Transcript::from_json(&text).expect("transcript")
    }

    #[test]
    fn longpoll_messages_count_not_the_polls_that_carried_them() {
        let one = longpoll(&[&["[1]", "[2]"]]);
        let two = longpoll(&[&["[1]"], &["[2]"], &[]]);
        equivalent(&one, &two).expect("same messages");
        let other = longpoll(&[&["[1]"], &["[3]"]]);
        assert!(equivalent(&one, &other).is_err());
        let fewer = longpoll(&[&["[1]"]]);
        assert!(equivalent(&one, &fewer).is_err());
    }

    #[test]
    fn a_different_frame_or_a_missing_one_is_a_difference() {
        let a = Transcript::from_json(ORIGINAL).expect("a");
        let changed = ORIGINAL.replace("phx_reply\\\",{}", "phx_reply\\\",{\\\"x\\\":1}");
        assert_ne!(changed, ORIGINAL);
        let b = Transcript::from_json(&changed).expect("b");
        assert!(equivalent(&a, &b).is_err());
        let mut short = a.clone();
        short.steps.remove(5);
        assert!(equivalent(&a, &short).is_err());
        // The same ref recorded twice must be the same ref live.
        let split = ORIGINAL.replacen("R1", "R2", 1);
        let b = Transcript::from_json(&split).expect("b");
        assert!(equivalent(&a, &b).is_err());
    }
}
