//! A store that really fails while prompts are answered: the server on a SQLite file, and the
//! test holding that file's write lock (`BEGIN EXCLUSIVE` on a connection of its own). In WAL
//! mode the server still reads (the session is found, the prompt is accepted), but every write
//! waits out chorus's 10 s `busy_timeout` and fails with `SQLITE_BUSY`: the user message, and
//! the event log too. The prompt must still end, for the client that sent it, with a
//! `message.error` that the log could not take (so it comes unlogged: no SSE `id:`, a WebSocket
//! `id: null`) and says only the engine's public server-error message; once the lock is
//! released the session answers again, and its log and transcript hold nothing of the prompts
//! that failed.

use std::time::{Duration, Instant};

use chorus_client::EventItem;
use chorus_engine::error::INTERNAL_MESSAGE;
use chorus_proto::native::{CreateSessionRequest, Event, Priority, PromptRequest, SessionStatus};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::tools::scripted_server;
use crate::{client, runtime};

/// How long a failed prompt may take to say so: a bound for a loaded 2-core machine (each
/// refused write waits 10 s), not a speed claim.
const BOUND: Duration = Duration::from_secs(120);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One server-sent event: its `event:`, `id:` (absent for an unlogged event) and `data:` lines.
#[derive(Debug)]
struct Sse {
    event: Option<String>,
    id: Option<String>,
    data: Value,
}

/// The events of an SSE body, read until the server ends it (at most [`BOUND`]).
async fn read_sse(mut response: reqwest::Response) -> Vec<Sse> {
    let mut body = String::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("the prompt's stream did not end within {BOUND:?}; so far:\n{body}"))
            .expect("the stream reads");
        match chunk {
            Some(bytes) => body.push_str(std::str::from_utf8(&bytes).expect("UTF-8")),
            None => break,
        }
    }
    body.split("\n\n")
        .filter_map(|block| {
            let (mut event, mut id, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(v.trim()).unwrap_or_else(|e| panic!("{e}: {v}")));
                }
            }
            // Keep-alive comments carry no data.
            Some(Sse { event, id, data: data? })
        })
        .collect()
}

async fn recv(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(BOUND, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no WebSocket message within {BOUND:?}"))
            .expect("the socket is open")
            .expect("a message");
        if let WsMessage::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}

/// The error a store failure gives a client: the public server error, nothing of SQLite.
fn assert_public_server_error(error: &Value) {
    assert_eq!(*error, json!({"message": INTERNAL_MESSAGE, "type": "server_error", "code": "server_error"}));
    let text = error.to_string().to_lowercase();
    assert!(!text.contains("sqlite") && !text.contains("locked") && !text.contains("database"), "{error}");
}

#[test]
fn a_store_that_refuses_writes_ends_the_prompt_with_message_error_and_the_server_recovers() {
    let db = tempfile::tempdir().unwrap();
    let path = db.path().join("chorus.db");
    let url = format!("sqlite://{}", path.display());
    let srv = scripted_server(&["--database-url", &url]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let s = c.create_session(&CreateSessionRequest::default()).await.unwrap().id;
        let ws_url = format!("{}/ws?session_id={s}", srv.url.replacen("http://", "ws://", 1));
        let mut ws = tokio_tungstenite::connect_async(ws_url).await.expect("websocket handshake").0;

        // The write lock, held from here: the server's writers get SQLITE_BUSY after 10 s.
        let options = SqliteConnectOptions::new().filename(&path).busy_timeout(Duration::from_secs(30));
        let mut lock = options.connect().await.expect("the test opens the server's database");
        lock.execute("BEGIN EXCLUSIVE").await.expect("the test takes the write lock");

        // A streamed prompt: the server finds the session (a read) and starts the stream; the
        // prompt's only event is its message.error, unlogged.
        let started = Instant::now();
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/sessions/{s}/prompt", srv.url))
            .json(&json!({"content": "Hello", "stream": true, "max_tokens": 4}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let sse = read_sse(response).await;
        eprintln!("the streamed prompt ended after {:?}: {sse:?}", started.elapsed());
        assert_eq!(sse.len(), 1, "{sse:#?}");
        let error = &sse[0];
        assert_eq!((error.event.as_deref(), error.id.as_deref()), (Some("message.error"), None), "{sse:#?}");
        assert_eq!((&error.data["type"], &error.data["session_id"]), (&json!("message.error"), &json!(s)));
        assert_public_server_error(&error.data["error"]);
        let sse_prompt = error.data["prompt_id"].as_str().unwrap().to_owned();

        // The WebSocket watching the session saw that event too, as an `id: null` envelope.
        let envelope = recv(&mut ws).await;
        assert_eq!((&envelope["type"], &envelope["id"]), (&json!("event"), &Value::Null), "{envelope}");
        assert_eq!(envelope["payload"], error.data);

        // A prompt over the WebSocket: queued, then an error envelope for its request id.
        let started = Instant::now();
        let request = json!({"type": "request", "id": "req_locked",
                             "payload": {"action": "prompt", "content": "Hello", "max_tokens": 4}});
        ws.send(WsMessage::Text(request.to_string().into())).await.unwrap();
        let queued = recv(&mut ws).await;
        assert_eq!(
            (&queued["type"], &queued["id"], &queued["payload"]["kind"]),
            (&json!("response"), &json!("req_locked"), &json!("queued")),
            "{queued}"
        );
        let ws_prompt = queued["payload"]["prompt_id"].as_str().unwrap().to_owned();
        let event = recv(&mut ws).await;
        assert_eq!(
            (&event["type"], &event["id"], &event["payload"]["type"]),
            (&json!("event"), &Value::Null, &json!("message.error")),
            "{event}"
        );
        assert_eq!(event["payload"]["prompt_id"], json!(ws_prompt));
        let answer = recv(&mut ws).await;
        eprintln!("the WebSocket prompt ended after {:?}: {answer}", started.elapsed());
        assert_eq!((&answer["type"], &answer["id"]), (&json!("error"), &json!("req_locked")), "{answer}");
        assert_public_server_error(&answer["payload"]);

        // The details went to the server's log.
        let log = srv.stderr();
        assert!(log.contains("the store failed while answering a prompt"), "{log}");
        assert!(log.contains("database is locked"), "{log}");

        // Released: the session answers again, over HTTP and over the same WebSocket.
        lock.execute("COMMIT").await.unwrap();
        lock.close().await.unwrap();
        let prompt = PromptRequest {
            content: "Hello again".into(),
            stream: false,
            is_async: false,
            priority: Priority::Normal,
            max_tokens: Some(4),
            ignore_eos: false,
            tool_choice: None,
        };
        let answer = tokio::time::timeout(BOUND, c.prompt(&s, &prompt)).await.expect("answered in time").unwrap();
        assert_eq!((answer.role.as_str(), answer.content.as_str()), ("assistant", "OK"));
        let request = json!({"type": "request", "id": "req_after",
                             "payload": {"action": "prompt", "content": "And now?", "max_tokens": 4}});
        ws.send(WsMessage::Text(request.to_string().into())).await.unwrap();
        let mut complete = None;
        loop {
            let e = recv(&mut ws).await;
            assert_ne!(e["type"], "error", "{e}");
            if e["type"] == "response" && e["payload"]["kind"] == "complete" {
                complete = Some(e);
            } else if complete.is_some() && e["type"] == "event" && e["payload"]["type"] == "agent.idle" {
                break;
            }
        }
        let complete = complete.unwrap();
        assert_eq!((&complete["id"], &complete["payload"]["message"]["content"]), (&json!("req_after"), &json!("OK")));

        // The transcript holds the answered prompts, whole; the refused ones never got in.
        let messages = c.messages(&s).await.unwrap();
        let turns: Vec<(&str, &str)> = messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
        assert_eq!(turns, [("user", "Hello again"), ("assistant", "OK"), ("user", "And now?"), ("assistant", "OK")]);
        assert_eq!(c.session(&s).await.unwrap().status, SessionStatus::Idle);

        // The log, replayed from the start: the answered prompts' events with ids, nothing of
        // the failed ones (their message.error could not be logged, so it cannot be replayed).
        let replay = c.events(Some(&s), Some(0)).await.unwrap();
        let mut completes = 0;
        let logged = replay
            .take_while(|item| {
                let last = matches!(item, Ok(EventItem::Event(e)) if matches!(e.event, Event::MessageComplete { .. }))
                    && {
                        completes += 1;
                        completes == 2
                    };
                std::future::ready(!last)
            })
            .filter_map(|item| async move {
                match item {
                    Ok(EventItem::Event(e)) => Some(e.event),
                    _ => None,
                }
            })
            .collect::<Vec<Event>>();
        let logged = tokio::time::timeout(BOUND, logged).await.expect("the log replays in time");
        assert!(logged.iter().any(|e| matches!(e, Event::MessageStart { .. })), "{logged:#?}");
        for failed in [&sse_prompt, &ws_prompt] {
            assert!(!logged.iter().any(|e| e.prompt_id() == Some(failed.as_str())), "{failed} in {logged:#?}");
        }
    });
}
