//! End-to-end tests of the runner against tiny fake servers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use super::http::BaseUrl;
use super::runner::{run_transcript, Failure, RunConfig};
use super::transcript::Transcript;

/// heartbeat.json as recorded.
/// [`HEARTBEAT`] with one heartbeat only.
const HEARTBEAT_ONCE: &str = r#"{
 "scenario": "heartbeat_once",
 "steps": [
  {"conn": "a", "connect": {"path": "/socket/websocket", "query": {"vsn": "2.0.0"}}},
  {"conn": "a", "connected": {"status": 101}},
  {"conn": "a", "send": {"text": "[null,\"1\",\"phoenix\",\"heartbeat\",{}]"}},
  {"conn": "a", "recv": {"text": "[null,\"1\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"}}
 ]
}"#;

const HEARTBEAT: &str = r#"{
 "scenario": "heartbeat",
 "description": "V2 heartbeat on topic phoenix gets an ok phx_reply with empty response",
 "server": {"phoenix": "1.8.12", "elixir": "1.18.4", "otp": "25"},
 "steps": [
  {"conn": "a", "connect": {"path": "/socket/websocket", "query": {"vsn": "2.0.0"}}},
  {"conn": "a", "connected": {"status": 101}},
  {"conn": "a", "send": {"text": "[null,\"1\",\"phoenix\",\"heartbeat\",{}]"}},
  {"conn": "a", "recv": {"text": "[null,\"1\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"}},
  {"conn": "a", "send": {"text": "[null,\"2\",\"phoenix\",\"heartbeat\",{}]"}},
  {"conn": "a", "recv": {"text": "[null,\"2\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"}}
 ]
}"#;

/// bad_token_refused.json as recorded.
const BAD_TOKEN: &str = r#"{
 "scenario": "bad_token_refused",
 "steps": [
  {"conn": "a", "connect": {"path": "/socket/websocket", "query": {"vsn": "2.0.0", "token": "bad"}}},
  {"conn": "a", "connected": {"status": 403}}
 ]
}"#;

/// A server-side close observed after a frame that is not JSON.
const INVALID_JSON: &str = r#"{
 "scenario": "invalid_json_frame",
 "steps": [
  {"conn": "a", "connect": {"path": "/socket/websocket", "query": {"vsn": "2.0.0"}}},
  {"conn": "a", "connected": {"status": 101}},
  {"conn": "a", "send": {"text": "this is not json"}},
  {"conn": "a", "recv": {"closed": {"code": 1011, "reason": ""}}}
 ]
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers heartbeats as Phoenix does.
    Correct,
    /// Answers with status "error".
    WrongStatus,
    /// Answers twice.
    DoubleReply,
    /// Never answers.
    Silent,
    /// Answers with the key order shuffled and extra whitespace.
    Reformatted,
}

/// Handshake callback: `token=bad` is refused with 403, as the app does.
#[allow(clippy::result_large_err)] // the callback signature is tungstenite's
fn refuse_bad_token(req: &WsRequest, resp: WsResponse) -> Result<WsResponse, ErrorResponse> {
    let query = req.uri().query().unwrap_or("");
    if query.split('&').any(|kv| kv == "token=bad") {
        let mut refusal = ErrorResponse::new(None);
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        return Err(refusal);
    }
    Ok(resp)
}

/// A websocket server that refuses `token=bad` with 403, answers heartbeats
/// according to `behaviour`, and closes with 1011 on a frame that is not JSON.
async fn fake_ws_server(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_hdr_async(stream, refuse_bad_token).await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(Value::Array(frame)) = serde_json::from_str::<Value>(text.as_str())
                    else {
                        let _ = ws
                            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                                code: 1011.into(),
                                reason: "".into(),
                            }))
                            .await;
                        return;
                    };
                    let reference = frame.get(1).cloned().unwrap_or(Value::Null);
                    let reply = match behaviour {
                        Behaviour::Silent => continue,
                        Behaviour::WrongStatus => json!([null, reference, "phoenix", "phx_reply",
                            {"response": {}, "status": "error"}])
                        .to_string(),
                        Behaviour::Reformatted => format!(
                            "[ null , {reference}, \"phoenix\", \"phx_reply\", \
                             {{\"status\": \"ok\", \"response\": {{}}}} ]"
                        ),
                        Behaviour::Correct | Behaviour::DoubleReply => json!([null, reference,
                            "phoenix", "phx_reply", {"response": {}, "status": "ok"}])
                        .to_string(),
                    };
                    if ws.send(Message::text(reply.clone())).await.is_err() {
                        return;
                    }
                    if behaviour == Behaviour::DoubleReply
                        && ws.send(Message::text(reply)).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(addr: SocketAddr) -> RunConfig {
    let base = BaseUrl::parse(&format!("http://{addr}")).expect("base url");
    let mut config = RunConfig::new(base);
    config.settle_override = Some(Duration::from_millis(100));
    config.frame_deadline = Duration::from_millis(500);
    config.cleanup_pause = Duration::from_millis(20);
    config
}

async fn replay(text: &str, behaviour: Behaviour) -> Result<(), Failure> {
    let addr = fake_ws_server(behaviour).await;
    let transcript = Transcript::from_json(text).expect("transcript");
    run_transcript(&transcript, &config(addr)).await
}

#[tokio::test]
async fn heartbeat_passes_against_a_correct_server() {
    replay(HEARTBEAT, Behaviour::Correct).await.expect("PASS");
}

#[tokio::test]
async fn heartbeat_compares_json_not_text() {
    replay(HEARTBEAT, Behaviour::Reformatted)
        .await
        .expect("PASS");
}

#[tokio::test]
async fn heartbeat_fails_on_a_wrong_reply() {
    let failure = replay(HEARTBEAT, Behaviour::WrongStatus)
        .await
        .expect_err("FAIL");
    let text = failure.to_string();
    assert!(
        matches!(failure, Failure::Mismatch { step: 3, .. }),
        "{text}"
    );
    assert!(text.contains("[4].status"), "{text}");
}

#[tokio::test]
async fn heartbeat_fails_on_an_extra_frame() {
    let failure = replay(HEARTBEAT, Behaviour::DoubleReply)
        .await
        .expect_err("FAIL");
    assert!(
        matches!(failure, Failure::Unexpected { after_step: 3, .. }),
        "{failure}"
    );
    assert!(failure.to_string().starts_with("unexpected frame"));
}

#[tokio::test]
async fn with_the_tail_race_a_push_after_a_connection_s_last_step_passes() {
    // One heartbeat: the server's second reply arrives after the
    // connection's last recorded step. Refused by default, accepted with
    // `tail`; with two heartbeats (above) it is refused either way.
    let transcript = Transcript::from_json(HEARTBEAT_ONCE).expect("one-heartbeat transcript");
    assert_eq!(
        transcript.plan().expect("plan").len(),
        2,
        "connect and one send"
    );
    let addr = fake_ws_server(Behaviour::DoubleReply).await;
    let strict = run_transcript(&transcript, &config(addr)).await;
    assert!(
        matches!(strict, Err(Failure::Unexpected { .. })),
        "{strict:?}"
    );
    let mut lenient = config(addr);
    lenient.races.tail = true;
    run_transcript(&transcript, &lenient)
        .await
        .expect("PASS with tail");
}

#[tokio::test]
async fn heartbeat_fails_on_a_missing_reply() {
    let failure = replay(HEARTBEAT, Behaviour::Silent)
        .await
        .expect_err("FAIL");
    assert!(
        matches!(failure, Failure::Missing { step: 3, .. }),
        "{failure}"
    );
}

#[tokio::test]
async fn refused_handshake_status_is_compared() {
    replay(BAD_TOKEN, Behaviour::Correct).await.expect("PASS");
    let accepted = BAD_TOKEN.replace("\"bad\"", "\"good\"");
    let failure = replay(&accepted, Behaviour::Correct)
        .await
        .expect_err("FAIL");
    assert!(
        matches!(
            failure,
            Failure::HandshakeStatus {
                expected: 403,
                got: 101,
                ..
            }
        ),
        "{failure}"
    );
}

#[tokio::test]
async fn server_close_code_is_compared() {
    replay(INVALID_JSON, Behaviour::Correct)
        .await
        .expect("PASS");
    let other = INVALID_JSON.replace("1011", "1000");
    let failure = replay(&other, Behaviour::Correct).await.expect_err("FAIL");
    assert!(
        matches!(failure, Failure::Mismatch { step: 3, .. }),
        "{failure}"
    );
}

const RECORDED_TOKEN: &str = "SFMyNTY.recorded";

/// A longpoll exchange in the recorded shape, with the recording's token.
fn longpoll_transcript() -> String {
    let msg = json!(["1", "1", "room:lobby", "phx_reply",
        {"response": {"topic": "room:lobby", "user_id": "carol"}, "status": "ok"}])
    .to_string();
    let poll_body = json!({"messages": [msg], "status": 200, "token": RECORDED_TOKEN}).to_string();
    let open_body = json!({"messages": [], "status": 410, "token": RECORDED_TOKEN}).to_string();
    let with_token = format!("/socket/longpoll?vsn=2.0.0&user_id=carol&token={RECORDED_TOKEN}");
    json!({
        "scenario": "longpoll_fake",
        "steps": [
            {"http": {"method": "GET", "path": "/socket/longpoll?vsn=2.0.0&user_id=carol&",
                      "headers": {"accept": "application/json"}}},
            {"http_response": {"status": 200, "body": open_body}},
            {"http": {"method": "POST", "path": with_token,
                      "headers": {"content-type": "application/x-ndjson"},
                      "body": "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]"}},
            {"http_response": {"status": 200, "body": "{\"status\":200}"}},
            {"http": {"method": "GET", "path": with_token,
                      "headers": {"accept": "application/json"}}},
            {"http_response": {"status": 200, "body": poll_body}}
        ]
    })
    .to_string()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A longpoll server that issues its own token `live_token` and only
/// accepts requests that carry it.
async fn fake_longpoll_server(live_token: &'static str) -> SocketAddr {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The join reply is answered to one poll; later polls wait, then 204.
    let replied = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let replied = replied.clone();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let replied = replied.clone();
                async move {
                    let query = req.uri().query().unwrap_or("").to_owned();
                    let token = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("token="))
                        .map(percent_decode);
                    let method = req.method().clone();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let answer = match (method.as_str(), token.as_deref()) {
                        ("GET", None) => {
                            json!({"messages": [], "status": 410, "token": live_token})
                        }
                        (_, Some(t)) if t != live_token => json!({"status": 410}),
                        ("POST", Some(_)) if body.starts_with(b"[\"1\",\"1\",\"room:lobby\"") => {
                            json!({"status": 200})
                        }
                        ("GET", Some(_)) if !replied.swap(true, Ordering::SeqCst) => json!({
                            "token": live_token,
                            "status": 200,
                            "messages": [json!(["1", "1", "room:lobby", "phx_reply",
                                {"status": "ok", "response": {"user_id": "carol", "topic": "room:lobby"}}])
                                .to_string()]
                        }),
                        ("GET", Some(_)) => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            json!({"token": live_token, "status": 204, "messages": []})
                        }
                        _ => json!({"status": 400}),
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer.to_string()))))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn longpoll_uses_the_servers_own_token() {
    // URL-unsafe characters check that the token is encoded in the query.
    let addr = fake_longpoll_server("live+token/=").await;
    let transcript = Transcript::from_json(&longpoll_transcript()).expect("transcript");
    run_transcript(&transcript, &config(addr))
        .await
        .expect("PASS");
}

#[tokio::test]
async fn longpoll_fails_when_the_body_differs() {
    let addr = fake_longpoll_server("live-token").await;
    let text = longpoll_transcript().replace("carol\\\\\\\"}", "dave\\\\\\\"}");
    assert_ne!(text, longpoll_transcript(), "the replacement must apply");
    let transcript = Transcript::from_json(&text).expect("transcript");
    let failure = run_transcript(&transcript, &config(addr))
        .await
        .expect_err("FAIL");
    // The poll's message differs: shown with the recorded and the live
    // message and where they differ.
    assert!(
        matches!(failure, Failure::Mismatch { step: 5, .. }),
        "{failure}"
    );
    let shown = failure.to_string();
    assert!(
        shown.contains("expected message text")
            && shown.contains("dave")
            && shown.contains(", got text")
            && shown.contains("carol"),
        "{shown}"
    );
}

/// The live messages of the batching server: the join reply, then a push.
fn reply_frame() -> String {
    json!(["1", "1", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}]).to_string()
}

fn welcome_frame(n: u64) -> String {
    json!(["1", null, "room:lobby", "welcome", {"n": n}]).to_string()
}

/// A LongPoll transcript: open, join, then one poll per entry of `polls`
/// with those recorded messages.
fn batched_transcript(polls: &[Vec<String>]) -> String {
    let open_body = json!({"messages": [], "status": 410, "token": RECORDED_TOKEN}).to_string();
    let with_token = format!("/socket/longpoll?vsn=2.0.0&token={RECORDED_TOKEN}");
    let mut steps = vec![
        json!({"http": {"method": "GET", "path": "/socket/longpoll?vsn=2.0.0&", "headers": {}}}),
        json!({"http_response": {"status": 200, "body": open_body}}),
        json!({"http": {"method": "POST", "path": with_token, "headers": {},
                        "body": "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]"}}),
        json!({"http_response": {"status": 200, "body": "{\"status\":200}"}}),
    ];
    for messages in polls {
        let status = if messages.is_empty() { 204 } else { 200 };
        let body = json!({"messages": messages, "status": status, "token": RECORDED_TOKEN});
        steps.push(json!({"http": {"method": "GET", "path": with_token, "headers": {}}}));
        steps.push(json!({"http_response": {"status": 200, "body": body.to_string()}}));
    }
    json!({"scenario": "longpoll_batches", "steps": steps}).to_string()
}

/// A LongPoll server whose join buffers a reply and then two pushes, and
/// whose polls answer at most `per_poll` buffered messages (a poll with
/// nothing buffered waits up to 300 ms, then answers 204).
async fn fake_batching_server(per_poll: usize) -> SocketAddr {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let buffer: Arc<Mutex<VecDeque<String>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let buffer = buffer.clone();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let buffer = buffer.clone();
                async move {
                    let has_token = req
                        .uri()
                        .query()
                        .unwrap_or("")
                        .split('&')
                        .any(|kv| kv.strip_prefix("token=").is_some_and(|t| !t.is_empty()));
                    let method = req.method().clone();
                    let answer = match (method.as_str(), has_token) {
                        ("GET", false) => json!({"messages": [], "status": 410, "token": "live"}),
                        ("POST", true) => {
                            let mut b = buffer.lock().expect("buffer");
                            b.extend([reply_frame(), welcome_frame(1), welcome_frame(2)]);
                            json!({"status": 200})
                        }
                        ("GET", true) => {
                            let mut taken = Vec::new();
                            for _ in 0..30 {
                                {
                                    let mut b = buffer.lock().expect("buffer");
                                    while taken.len() < per_poll {
                                        match b.pop_front() {
                                            Some(m) => taken.push(m),
                                            None => break,
                                        }
                                    }
                                }
                                if !taken.is_empty() {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            let status = if taken.is_empty() { 204 } else { 200 };
                            json!({"messages": taken, "status": status, "token": "live"})
                        }
                        _ => json!({"status": 400}),
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer.to_string()))))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn replay_batches(polls: &[Vec<String>], per_poll: usize, tail: bool) -> Result<(), Failure> {
    let addr = fake_batching_server(per_poll).await;
    let transcript = Transcript::from_json(&batched_transcript(polls)).expect("transcript");
    let mut config = config(addr);
    config.races.tail = tail;
    run_transcript(&transcript, &config).await
}

#[tokio::test]
async fn longpoll_messages_match_however_the_polls_cut_them() {
    let all = vec![reply_frame(), welcome_frame(1), welcome_frame(2)];
    // Recorded in one poll; live one message per poll.
    replay_batches(std::slice::from_ref(&all), 1, false)
        .await
        .expect("one recorded poll, three live polls");
    // Recorded one per poll; live all at once (the later recorded polls
    // take what the first live poll brought).
    let one_each: Vec<Vec<String>> = all.iter().map(|m| vec![m.clone()]).collect();
    replay_batches(&one_each, 3, false)
        .await
        .expect("three recorded polls, one live poll");
    // Recorded [reply], [welcome 1, welcome 2]; live two per poll.
    let split = vec![vec![all[0].clone()], all[1..].to_vec()];
    replay_batches(&split, 2, false)
        .await
        .expect("two and one against one and two");
    // A recorded empty poll (204) between them changes nothing.
    let with_empty = vec![all[..2].to_vec(), Vec::new(), all[2..].to_vec()];
    replay_batches(&with_empty, 1, false)
        .await
        .expect("an empty recorded poll");
}

#[tokio::test]
async fn a_poll_recorded_before_the_post_that_caused_its_messages_replays() {
    // A recorder writes a poll where it completed: the server may answer
    // the waiting poll before the POST that caused it has its response.
    let all = vec![reply_frame(), welcome_frame(1), welcome_frame(2)];
    let mut transcript: Value =
        serde_json::from_str(&batched_transcript(std::slice::from_ref(&all))).expect("json");
    let steps = transcript["steps"].as_array_mut().expect("steps");
    let poll: Vec<Value> = steps.drain(4..6).collect();
    steps.splice(2..2, poll);
    let addr = fake_batching_server(2).await;
    let transcript = Transcript::from_json(&transcript.to_string()).expect("transcript");
    run_transcript(&transcript, &config(addr))
        .await
        .expect("the poll waits for the post's messages");
}

#[tokio::test]
async fn longpoll_stream_differences_still_fail() {
    // A different message, whichever poll brings it: the first difference.
    let wrong = vec![reply_frame(), welcome_frame(1), welcome_frame(7)];
    let failure = replay_batches(&[wrong], 1, false).await.expect_err("FAIL");
    assert!(
        matches!(&failure, Failure::Mismatch { step: 5, conn, .. } if conn == "longpoll#1"),
        "{failure}"
    );
    assert!(failure.to_string().contains("\"n\":7"), "{failure}");
    // Another order on one channel.
    let swapped = vec![reply_frame(), welcome_frame(2), welcome_frame(1)];
    let failure = replay_batches(&[swapped], 3, false)
        .await
        .expect_err("FAIL");
    assert!(matches!(failure, Failure::Mismatch { .. }), "{failure}");
    // A message the recording never had: unexpected at the end, unless a
    // push after the recording's end is accepted (the tail race).
    let short = vec![vec![reply_frame(), welcome_frame(1)]];
    let failure = replay_batches(&short, 3, false).await.expect_err("FAIL");
    assert!(
        matches!(&failure, Failure::Unexpected { conn, .. } if conn == "longpoll#1"),
        "{failure}"
    );
    replay_batches(&short, 3, true)
        .await
        .expect("accepted with the tail race");
    // A message that never comes: missing, after the frame deadline.
    let more = vec![vec![
        reply_frame(),
        welcome_frame(1),
        welcome_frame(2),
        welcome_frame(3),
    ]];
    let failure = replay_batches(&more, 3, false).await.expect_err("FAIL");
    assert!(
        matches!(failure, Failure::Missing { step: 5, .. }),
        "{failure}"
    );
}
