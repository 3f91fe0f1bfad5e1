//! The WebSocket envelope exactly as the AMCP seed writes it, sent as raw
//! text by tokio-tungstenite clients to the real server on the scripted model
//! (which answers `OK`, or calls `read_file` on `notes.md` when forced): the
//! seed's example request, `timestamp` absent / RFC 3339 / Unix ms,
//! `session_id` in the payload selecting, matching or contradicting the
//! watched session, unknown fields and an unknown action; two clients on one
//! session see the same events; every timestamp the server writes is RFC 3339
//! UTC; tool calls come back as the seed's `tool_call` / `tool_result`
//! responses, to the raw client and to chorus's own `SessionSocket`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_client::{SessionSocket, SocketItem};
use chorus_proto::ws::{Response, Timestamp};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::tools::{notes_dir, read_notes, scripted_server, session_in};
use crate::{client, runtime};

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The seed's example client message, verbatim.
pub(crate) const SEED_EXAMPLE: &str = r#"{"type": "request", "id": "req_001", "timestamp": "2026-01-07T12:00:00Z", "payload": {"action": "prompt", "content": "Hello", "session_id": "ses_abc"}}"#;

/// `/ws`, watching `session` from the start when given.
pub(crate) async fn connect(url: &str, session: Option<&str>) -> Socket {
    let mut ws_url = format!("{}/ws", url.replacen("http://", "ws://", 1));
    if let Some(session) = session {
        ws_url = format!("{ws_url}?session_id={session}");
    }
    tokio_tungstenite::connect_async(ws_url).await.expect("websocket handshake").0
}

pub(crate) async fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::Text(text.into())).await.expect("send");
}

/// The next envelope, as JSON; its timestamp must be RFC 3339 in UTC with
/// milliseconds, and about now.
pub(crate) async fn recv(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("a message within 60 s")
            .expect("the socket is open")
            .expect("a message");
        if let Message::Text(text) = message {
            let envelope: Value = serde_json::from_str(text.as_str()).expect("JSON");
            check_timestamp(&envelope);
            return envelope;
        }
    }
}

pub(crate) fn check_timestamp(envelope: &Value) {
    let text = envelope["timestamp"].as_str().unwrap_or_else(|| panic!("a string timestamp in {envelope}"));
    let shape = text.len() == "2026-01-07T12:00:00.123Z".len() && text.ends_with('Z') && text.as_bytes()[10] == b'T';
    assert!(shape, "RFC 3339 UTC with milliseconds: {text}");
    let at: Timestamp = text.parse().unwrap_or_else(|e| panic!("{e}"));
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    assert!((now - at.unix_ms()).abs() < 120_000, "{text} is not about now");
}

/// Envelopes until the `agent.idle` event (included).
async fn until_idle(socket: &mut Socket) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let envelope = recv(socket).await;
        let idle = envelope["type"] == "event" && envelope["payload"]["type"] == "agent.idle";
        seen.push(envelope);
        if idle {
            return seen;
        }
    }
}

/// The `(id, payload)` of each event envelope.
pub(crate) fn events(seen: &[Value]) -> Vec<(Value, Value)> {
    seen.iter().filter(|e| e["type"] == "event").map(|e| (e["id"].clone(), e["payload"].clone())).collect()
}

/// The payloads of the responses to request `id`.
pub(crate) fn responses<'a>(seen: &'a [Value], id: &str) -> Vec<&'a Value> {
    seen.iter().filter(|e| e["type"] == "response" && e["id"] == id).map(|e| &e["payload"]).collect()
}

/// The kinds of the responses to request `id`, text chunks once.
pub(crate) fn response_kinds(seen: &[Value], id: &str) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for payload in responses(seen, id) {
        let kind = payload["kind"].as_str().unwrap().to_owned();
        if kinds.last() != Some(&kind) || kind != "text" {
            kinds.push(kind);
        }
    }
    kinds
}

/// A prompt answered under `id`: `queued`, the text, `complete` with `OK`.
fn assert_answered(seen: &[Value], id: &str) {
    assert_eq!(response_kinds(seen, id), ["queued", "text", "complete"], "{seen:#?}");
    let complete = responses(seen, id).pop().unwrap();
    assert_eq!((&complete["message"]["content"], &complete["done"]), (&json!("OK"), &json!(true)));
}

/// `e`, checked to be an error envelope.
fn the_error(e: Value) -> Value {
    assert_eq!(e["type"], "error", "{e}");
    e
}

#[test]
fn the_seeds_envelopes_on_two_clients_of_one_session() {
    let srv = scripted_server(&[]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let s = session_in(&c, work.path()).await;
        // A watches the session from its URL; B watches none yet.
        let mut a = connect(&srv.url, Some(&s)).await;
        let mut b = connect(&srv.url, None).await;
        let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());

        // The seed's example, naming this session: B watches it from now on.
        send(&mut b, &SEED_EXAMPLE.replace("ses_abc", &s)).await;
        let answer = until_idle(&mut b).await;
        assert_answered(&answer, "req_001");
        seen_b.extend(answer);
        seen_a.extend(until_idle(&mut a).await);

        // No timestamp, no session_id: A's session.
        send(&mut a, r#"{"type": "request", "id": "req_002", "payload": {"action": "prompt", "content": "Hello"}}"#)
            .await;
        let answer = until_idle(&mut a).await;
        assert_answered(&answer, "req_002");
        seen_a.extend(answer);
        seen_b.extend(until_idle(&mut b).await);

        // Unix milliseconds, the session named and matching, fields the protocol does not
        // define in the envelope and in the payload.
        let request = json!({
            "type": "request", "id": "req_003", "timestamp": 1_767_787_200_000_i64, "version": "1.0",
            "trace": {"span": "abc"},
            "payload": {"action": "prompt", "content": "Hello", "session_id": s, "metadata": {"from": "seed"}},
        });
        send(&mut a, &request.to_string()).await;
        let answer = until_idle(&mut a).await;
        assert_answered(&answer, "req_003");
        seen_a.extend(answer);
        seen_b.extend(until_idle(&mut b).await);

        // Both clients saw the same events, in the same order, with the same ids; the
        // responses went to the sender only.
        assert_eq!(events(&seen_a), events(&seen_b));
        assert_eq!(events(&seen_a).iter().filter(|(_, e)| e["type"] == "message.complete").count(), 3);
        assert!(seen_b.iter().all(|e| e["type"] == "event" || e["id"] == "req_001"), "{seen_b:#?}");
        assert!(seen_a.iter().all(|e| e["type"] == "event" || e["id"] != "req_001"), "{seen_a:#?}");

        // The seed's example verbatim names another session than A watches: refused, naming both.
        send(&mut a, SEED_EXAMPLE).await;
        let e = the_error(recv(&mut a).await);
        assert_eq!((&e["id"], &e["payload"]["type"]), (&json!("req_001"), &json!("invalid_request_error")));
        let message = e["payload"]["message"].as_str().unwrap();
        assert!(message.contains(&s) && message.contains("ses_abc"), "{message}");

        // An unknown action: refused, listing the known ones.
        send(
            &mut a,
            r#"{"type": "request", "id": "req_004", "timestamp": "2026-01-07T12:00:00Z", "payload": {"action": "fly"}}"#,
        )
        .await;
        let e = the_error(recv(&mut a).await);
        assert_eq!(e["id"], "req_004");
        assert_eq!(
            e["payload"]["message"],
            "unknown action `fly`; the actions are `prompt`, `cancel`, `subscribe`, `permission_reply`"
        );

        // A timestamp that is neither: refused, saying what is accepted.
        send(&mut a, r#"{"type": "request", "id": "req_005", "timestamp": "noon", "payload": {"action": "cancel"}}"#)
            .await;
        let e = the_error(recv(&mut a).await);
        let message = e["payload"]["message"].as_str().unwrap();
        assert!(message.contains("timestamp") && message.contains("RFC 3339"), "{message}");

        // The socket is still usable, and a matching session_id works for cancel too.
        send(&mut a, &json!({"type": "request", "id": "req_006", "payload": {"action": "cancel", "session_id": s}}).to_string())
            .await;
        let e = recv(&mut a).await;
        assert_eq!((&e["type"], &e["id"], &e["payload"]["kind"]), (&json!("response"), &json!("req_006"), &json!("cancelled")));

        // A connection that watches nothing: naming a session that does not exist is a 404
        // error envelope; naming none at all is explained.
        let mut c3 = connect(&srv.url, None).await;
        send(&mut c3, SEED_EXAMPLE).await;
        let e = the_error(recv(&mut c3).await);
        assert_eq!((&e["id"], &e["payload"]["code"]), (&json!("req_001"), &json!("session_not_found")));
        send(&mut c3, r#"{"type": "request", "id": "req_007", "payload": {"action": "prompt", "content": "Hello"}}"#)
            .await;
        let e = the_error(recv(&mut c3).await);
        assert!(e["payload"]["message"].as_str().unwrap().contains("no session"), "{e}");
    });
}

#[test]
fn tool_calls_come_back_in_the_seeds_shapes() {
    let srv = scripted_server(&[]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    // A work dir whose notes.md leads outside it: the call starts, then fails.
    let trap = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.md"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.md"), trap.path().join("notes.md")).unwrap();
    runtime().block_on(async {
        let s = session_in(&c, work.path()).await;
        let mut a = connect(&srv.url, Some(&s)).await;
        let mut b = connect(&srv.url, Some(&s)).await;

        // The forced `read_file` call, in the seed's envelope.
        let request = json!({
            "type": "request", "id": "req_tool", "timestamp": "2026-01-07T12:00:00Z",
            "payload": {"action": "prompt", "content": "Read my notes.", "session_id": s, "max_tokens": 64,
                        "tool_choice": {"type": "function", "function": {"name": "read_file"}}},
        });
        send(&mut a, &request.to_string()).await;
        let seen = until_idle(&mut a).await;
        assert_eq!(response_kinds(&seen, "req_tool"), ["queued", "tool_call", "tool_result", "text", "complete"]);
        let call_id = seen
            .iter()
            .find(|e| e["payload"]["type"] == "tool.call_start")
            .map(|e| e["payload"]["call"]["id"].clone())
            .expect("a tool.call_start event");
        let answers = responses(&seen, "req_tool");
        assert_eq!(
            *answers[1],
            json!({"kind": "tool_call", "tool_name": "read_file", "arguments": {"path": "notes.md"},
                   "session_id": s, "call_id": call_id})
        );
        assert_eq!(
            *answers[2],
            json!({"kind": "tool_result", "tool_name": "read_file", "result": "buy milk\n", "success": true,
                   "call_id": call_id})
        );
        // The other client sees the events, not the responses.
        let seen_b = until_idle(&mut b).await;
        assert!(seen_b.iter().all(|e| e["type"] == "event"), "{seen_b:#?}");
        assert_eq!(events(&seen), events(&seen_b));

        // A call that fails: `tool_result` with `success: false` and the error.
        let t = session_in(&c, trap.path()).await;
        let mut d = connect(&srv.url, None).await;
        send(&mut d, &request.to_string().replace(&s, &t)).await;
        let seen = until_idle(&mut d).await;
        assert_eq!(response_kinds(&seen, "req_tool"), ["queued", "tool_call", "tool_result", "text", "complete"]);
        let result = responses(&seen, "req_tool")[2];
        assert_eq!((&result["tool_name"], &result["success"]), (&json!("read_file"), &json!(false)));
        assert!(result["result"].as_str().unwrap().contains("outside the work dir"), "{result}");

        // chorus's own client reads the new responses (and the RFC 3339 timestamps).
        let mut socket = SessionSocket::connect(&c, &s).await.unwrap();
        let request_id = socket.send_prompt(&read_notes()).unwrap();
        let mut kinds = Vec::new();
        loop {
            let item = tokio::time::timeout(Duration::from_secs(60), socket.next())
                .await
                .expect("an item within 60 s")
                .expect("the socket is open")
                .expect("a readable item");
            let SocketItem::Response { request_id: of, response } = item else { continue };
            assert_eq!(of, request_id);
            match response {
                Response::ToolCall { tool_name, arguments, session_id, .. } => {
                    assert_eq!(
                        (tool_name.as_str(), arguments, session_id.as_str()),
                        ("read_file", json!({"path": "notes.md"}), s.as_str())
                    );
                    kinds.push("tool_call");
                }
                Response::ToolResult { tool_name, result, success, .. } => {
                    assert_eq!((tool_name.as_str(), result.as_str(), success), ("read_file", "buy milk\n", true));
                    kinds.push("tool_result");
                }
                Response::Complete { message, .. } => {
                    assert_eq!(message.content, "OK");
                    kinds.push("complete");
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(kinds, ["tool_call", "tool_result", "complete"]);
        socket.close().await;
    });
}
