//! `chorus attach` as a person runs it, against the real server (a new
//! session, another client's prompt seen while attached, a missing session, no
//! server), against a scripted WebSocket server for tool calls and permission
//! questions, and the client's [`SessionSocket`] reconnecting to a scripted
//! server that drops it.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_client::{ClientError, SessionEvent, SessionSocket, SocketItem};
use chorus_proto::native::{Event, Priority, PromptRequest, SessionStatus};
use chorus_proto::ws::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as HandshakeResponse};

use crate::{bin, client, runtime};

/// How long a step may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// A server whose slots hold the default agent's prompt (its tools' definitions included).
fn server() -> chorus_testkit::server::TestServer {
    crate::server(&["--ctx-size", "16384"])
}

/// A running `chorus attach`, its output collected as it comes.
struct Attached {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    _data: tempfile::TempDir,
}

/// Bytes read from `from` as they come (bytes, not text: a read can end inside a character).
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let sink = bytes.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    bytes
}

impl Attached {
    fn start(args: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("temp data dir");
        let mut child = Command::new(bin())
            .arg("attach")
            .args(args)
            .env("XDG_DATA_HOME", data.path())
            .env_remove("CHORUS_URL")
            .env_remove("CHORUS_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chorus attach");
        let stdin = child.stdin.take();
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Self { child, stdin, stdout, stderr, _data: data }
    }

    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(text.as_bytes()).expect("write to attach's stdin");
        stdin.flush().expect("flush attach's stdin");
    }

    /// End of input.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Wait until `what` holds for (stdout, stderr).
    fn wait_for(&self, description: &str, what: impl Fn(&str, &str) -> bool) {
        let start = Instant::now();
        while !what(&self.stdout(), &self.stderr()) {
            assert!(
                start.elapsed() < PATIENCE,
                "attach never showed {description}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit: its code, stdout and stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        self.close_stdin();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("attach's status") {
                // Let the reader threads take the last bytes.
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.stdout(), self.stderr());
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("attach did not exit\n--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout(), self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn attach_starts_a_session_and_streams_the_answer() {
    let srv = server();
    let mut attach = Attached::start(&[&srv.url, "--max-tokens", "6"]);
    attach.write("hello\n");
    let (code, stdout, stderr) = attach.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("ses_"))
        .unwrap_or_else(|| panic!("the new session's id on stderr: {stderr}"))
        .to_owned();
    assert!(stderr.contains(&format!("attached to session {id}")), "{stderr}");

    let c = client(&srv.url, None);
    runtime().block_on(async {
        let messages = c.messages(&id).await.unwrap();
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant"], "end of input waited for the answer");
        assert_eq!(messages[0].content, "hello");
        let answer = &messages[1];
        assert!(answer.usage.unwrap().completion_tokens <= 6);
        assert!(stdout.contains(&answer.content), "the streamed answer is the stored one:\n{stdout}\n---\n{answer:?}");
        assert!(!stdout.contains("> hello"), "our own prompt is not echoed as another client's: {stdout}");
        assert_eq!(c.session(&id).await.unwrap().status, SessionStatus::Idle);
    });
}

#[test]
fn attach_shows_what_other_clients_of_the_session_do() {
    let srv = server();
    let c = client(&srv.url, None);
    let rt = runtime();
    let session = rt.block_on(c.create_session(&Default::default())).unwrap();
    let attach = Attached::start(&[&srv.url, "--session", &session.id]);
    attach.wait_for("that it is attached", |_, err| err.contains("attached to session"));
    assert!(!attach.stderr().contains("new session"), "an existing session is not created again");

    // Another client sends a prompt over HTTP: attach streams its answer.
    let prompt = PromptRequest {
        content: "a prompt from elsewhere".into(),
        stream: false,
        is_async: false,
        priority: Priority::Normal,
        max_tokens: Some(6),
        ignore_eos: true,
        tool_choice: None,
    };
    let answer = rt.block_on(c.prompt(&session.id, &prompt)).unwrap();
    assert!(!answer.content.is_empty());
    let expected = format!("> a prompt from elsewhere\n{}", answer.content);
    attach.wait_for("the other client's prompt and its answer", |out, _| out.contains(&expected));

    // Nothing of attach's own is running: the end of input detaches at once.
    let (code, stdout, stderr) = attach.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.matches("> a prompt from elsewhere").count(), 1, "{stdout}");
}

#[test]
fn attach_to_a_missing_session_or_no_server_explains() {
    let srv = server();
    let (code, _, stderr) = Attached::start(&[&srv.url, "--session", "ses_missing"]).finish();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no session `ses_missing`") && stderr.contains("chorus sessions list"), "{stderr}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    for args in [vec![url.as_str()], vec![url.as_str(), "--session", "ses_x"]] {
        let (code, _, stderr) = Attached::start(&args).finish();
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("is `chorus serve` running at"), "{stderr}");
    }
}

// --- A scripted WebSocket server -------------------------------------------

type ServerSocket = WebSocketStream<TcpStream>;

/// Accept one WebSocket: it, the request's path and query, and its `Authorization`.
#[allow(clippy::result_large_err)] // the error type of tungstenite's handshake callback
async fn accept(listener: &TcpListener) -> (ServerSocket, String, Option<String>) {
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut seen = None;
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |request: &Request, response: HandshakeResponse| {
        let auth = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        seen = Some((request.uri().to_string(), auth));
        Ok(response)
    })
    .await
    .expect("websocket handshake");
    let (uri, auth) = seen.expect("the handshake saw a request");
    (ws, uri, auth)
}

async fn send_envelope(ws: &mut ServerSocket, kind: &str, id: &str, payload: Value) {
    let envelope = json!({"type": kind, "id": id, "timestamp": 0, "payload": payload});
    ws.send(Message::Text(envelope.to_string().into())).await.expect("send");
}

async fn send_event(ws: &mut ServerSocket, id: i64, payload: Value) {
    send_envelope(ws, "event", &id.to_string(), payload).await;
}

/// The next request envelope from the client.
async fn request(ws: &mut ServerSocket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a request in time")
            .expect("the client is connected")
            .expect("a message");
        if let Message::Text(text) = message {
            let envelope: Value = serde_json::from_str(text.as_str()).expect("JSON");
            assert_eq!(envelope["type"], "request", "{envelope}");
            return envelope;
        }
    }
}

fn status(session: &str, status: &str) -> Value {
    json!({"type": "session.status_changed", "session_id": session, "status": status})
}

fn message(session: &str, role: &str, content: &str) -> Value {
    json!({"id": "msg_1", "session_id": session, "seq": 1, "created_at": 0, "role": role, "content": content})
}

fn call(id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// The next item the socket yields, in time.
async fn next_item(socket: &mut SessionSocket) -> Option<Result<SocketItem, ClientError>> {
    tokio::time::timeout(PATIENCE, socket.next()).await.expect("an item in time")
}

fn event_id(item: Option<Result<SocketItem, ClientError>>) -> i64 {
    match item {
        Some(Ok(SocketItem::Event(SessionEvent { id, .. }))) => id,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn the_socket_reconnects_and_resumes_after_the_last_event() {
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut ws, uri, auth) = accept(&listener).await;
            assert_eq!(uri, "/ws?session_id=ses_x");
            assert_eq!(auth.as_deref(), Some("Bearer key"));
            send_event(&mut ws, 1, status("ses_x", "busy")).await;
            send_event(&mut ws, 2, status("ses_x", "idle")).await;
            let prompt = request(&mut ws).await;
            assert_eq!(prompt["payload"], json!({"action": "prompt", "content": "one", "priority": "normal", "max_tokens": 3, "ignore_eos": false}));
            let queued = json!({"kind": "queued", "prompt_id": "prm_1", "queue_position": 0, "done": false});
            send_envelope(&mut ws, "response", prompt["id"].as_str().unwrap(), queued).await;
            // The connection drops without a close frame.
            drop(ws);

            // The client comes back without a session in the URL and resubscribes after event 2.
            let (mut ws, uri, auth) = accept(&listener).await;
            assert_eq!((uri.as_str(), auth.as_deref()), ("/ws", Some("Bearer key")));
            let subscribe = request(&mut ws).await;
            assert_eq!(subscribe["payload"], json!({"action": "subscribe", "session_id": "ses_x", "last_event_id": 2}));
            let subscribed = json!({"kind": "subscribed", "session_id": "ses_x"});
            send_envelope(&mut ws, "response", subscribe["id"].as_str().unwrap(), subscribed).await;
            // A repeated event is not yielded twice.
            send_event(&mut ws, 2, status("ses_x", "idle")).await;
            send_event(&mut ws, 3, json!({"type": "agent.idle", "session_id": "ses_x"})).await;
            // The prompt sent while disconnected went out after the subscription.
            let prompt = request(&mut ws).await;
            assert_eq!(prompt["payload"]["content"], "two");
            let queued = json!({"kind": "queued", "prompt_id": "prm_2", "queue_position": 0, "done": false});
            send_envelope(&mut ws, "response", prompt["id"].as_str().unwrap(), queued).await;
            ws
        });

        let c = client(&url, Some("key"));
        let mut socket = SessionSocket::connect(&c, "ses_x").await.unwrap();
        assert_eq!(event_id(next_item(&mut socket).await), 1);
        assert_eq!(event_id(next_item(&mut socket).await), 2);
        let prompt = |content: &str| PromptRequest {
            content: content.into(),
            stream: false,
            is_async: false,
            priority: Priority::Normal,
            max_tokens: Some(3),
            ignore_eos: false,
            tool_choice: None,
        };
        let first = socket.send_prompt(&prompt("one")).unwrap();
        match next_item(&mut socket).await {
            Some(Ok(SocketItem::Response { request_id, response: Response::Queued { prompt_id, .. } })) => {
                assert_eq!((request_id.as_str(), prompt_id.as_str()), (first.as_str(), "prm_1"));
            }
            other => panic!("expected the prompt's queued answer, got {other:?}"),
        }
        match next_item(&mut socket).await {
            Some(Ok(SocketItem::Reconnecting { attempt: 1, after: Some(2), .. })) => {}
            other => panic!("expected a reconnection, got {other:?}"),
        }
        let second = socket.requests().send_prompt(&prompt("two")).unwrap();
        assert_ne!(first, second);
        assert_eq!(next_item(&mut socket).await.unwrap().unwrap(), SocketItem::Reconnected { after: Some(2) });
        let item = next_item(&mut socket).await;
        assert!(matches!(&item, Some(Ok(SocketItem::Event(SessionEvent { id: 3, event: Event::AgentIdle { .. } })))), "{item:?}");
        match next_item(&mut socket).await {
            Some(Ok(SocketItem::Response { request_id, .. })) => assert_eq!(request_id, second),
            other => panic!("expected the second prompt's answer, got {other:?}"),
        }
        let _server_side = server.await.unwrap();
    });
}

#[test]
fn the_socket_gives_up_after_three_attempts() {
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut ws, _, _) = accept(&listener).await;
            send_event(&mut ws, 7, status("ses_x", "busy")).await;
            // Nothing listens any more.
        });
        let c = client(&url, None);
        let mut socket = SessionSocket::connect(&c, "ses_x").await.unwrap();
        assert_eq!(event_id(next_item(&mut socket).await), 7);
        server.await.unwrap();
        for expected in 1..=3 {
            match next_item(&mut socket).await {
                Some(Ok(SocketItem::Reconnecting { attempt, after: Some(7), .. })) => assert_eq!(attempt, expected),
                other => panic!("expected reconnection attempt {expected}, got {other:?}"),
            }
        }
        match next_item(&mut socket).await {
            Some(Err(ClientError::Disconnected { attempts: 3, .. })) => {}
            other => panic!("expected the final error, got {other:?}"),
        }
        assert!(next_item(&mut socket).await.is_none(), "the stream ends after its final error");
        assert!(matches!(socket.cancel(), Err(ClientError::Closed)));
    });
}

#[test]
fn attach_shows_tool_calls_and_asks_for_permission() {
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let s = "ses_tools";
    let server = rt.spawn(async move {
        let (mut ws, uri, _) = accept(&listener).await;
        assert_eq!(uri, "/ws?session_id=ses_tools");
        let p = "prm_1";
        send_event(&mut ws, 1, status(s, "busy")).await;
        let start = json!({"type": "message.start", "session_id": s, "prompt_id": p, "user_message": message(s, "user", "read a.txt")});
        send_event(&mut ws, 2, start).await;
        send_event(&mut ws, 3, json!({"type": "agent.thinking", "session_id": s, "prompt_id": p, "round": 1})).await;
        let read = call("call_1", "read_file", r#"{"path":"a.txt"}"#);
        let ask = json!({"type": "tool.permission_request", "session_id": s, "prompt_id": p, "request_id": "call_1", "call": read, "timeout_ms": 60000});
        send_event(&mut ws, 4, ask).await;
        let reply = request(&mut ws).await;
        assert_eq!(reply["payload"], json!({"action": "permission_reply", "request_id": "call_1", "allow": true}));
        send_event(&mut ws, 5, json!({"type": "tool.call_start", "session_id": s, "prompt_id": p, "call": read})).await;
        let done = json!({"type": "tool.call_complete", "session_id": s, "prompt_id": p, "call_id": "call_1", "name": "read_file", "output": "hello world\n"});
        send_event(&mut ws, 6, done).await;

        let write = call("call_2", "write_file", r#"{"path":"b.txt"}"#);
        let ask = json!({"type": "tool.permission_request", "session_id": s, "prompt_id": p, "request_id": "call_2", "call": write, "timeout_ms": 60000});
        send_event(&mut ws, 7, ask).await;
        let reply = request(&mut ws).await;
        assert_eq!(reply["payload"], json!({"action": "permission_reply", "request_id": "call_2", "allow": false}));
        let refused = json!({"type": "tool.call_error", "session_id": s, "prompt_id": p, "call_id": "call_2", "name": "write_file", "error": "the user refused", "code": "permission_denied"});
        send_event(&mut ws, 8, refused).await;
        send_event(&mut ws, 9, json!({"type": "message.chunk", "session_id": s, "prompt_id": p, "content": "It says hello."}))
            .await;
        let complete = json!({"type": "message.complete", "session_id": s, "prompt_id": p, "message": message(s, "assistant", "It says hello.")});
        send_event(&mut ws, 10, complete).await;
        send_event(&mut ws, 11, json!({"type": "agent.idle", "session_id": s})).await;
        // Stay connected until attach leaves.
        while let Some(Ok(_)) = ws.next().await {}
    });

    let mut attach = Attached::start(&[&url, "--session", s]);
    attach.wait_for("the first permission question", |out, _| {
        out.contains(r#"Allow read_file {"path":"a.txt"}? [y/N] "#)
    });
    attach.write("y\n");
    attach.wait_for("the second permission question", |out, _| {
        out.contains(r#"Allow write_file {"path":"b.txt"}? [y/N] "#)
    });
    attach.write("no\n");
    attach.wait_for("the end of the answer", |out, _| out.contains("It says hello.\n"));
    let (code, stdout, stderr) = attach.finish();
    assert_eq!(code, Some(0), "{stderr}");
    rt.block_on(server).unwrap();
    let expected = [
        "> read a.txt",
        r#"Allow read_file {"path":"a.txt"}? [y/N] "#,
        "[allowed read_file]",
        r#"[tool read_file {"path":"a.txt"}]"#,
        "[tool read_file done: 12 bytes]",
        r#"Allow write_file {"path":"b.txt"}? [y/N] "#,
        "[denied write_file]",
        "[tool write_file error (permission_denied): the user refused]",
        "It says hello.",
    ];
    let mut rest = stdout.as_str();
    for line in expected {
        let at = rest.find(line).unwrap_or_else(|| panic!("`{line}` in order in:\n{stdout}"));
        rest = &rest[at + line.len()..];
    }
}

#[test]
fn attach_answers_a_real_permission_request() {
    // The testkit's scripted model: forced to call `read_file`, it asks for `notes.md`, then says `OK`.
    let srv = crate::tools::scripted_server(&["--tool-permission", "read_file=ask", "--permission-timeout", "60"]);
    let c = client(&srv.url, None);
    let rt = runtime();
    let work = crate::tools::notes_dir();
    let request = chorus_proto::native::CreateSessionRequest {
        work_dir: Some(work.path().to_str().expect("utf-8").to_owned()),
        ..Default::default()
    };
    let session = rt.block_on(c.create_session(&request)).unwrap();
    let mut attach = Attached::start(&[&srv.url, "--session", &session.id]);
    attach.wait_for("that it is attached", |_, err| err.contains("attached to session"));

    // Another client's prompt makes the model call the tool; attach is asked.
    let prompt = crate::tools::read_notes();
    let answer = rt.spawn({
        let c = c.clone();
        let id = session.id.clone();
        async move { c.prompt(&id, &prompt).await }
    });
    attach.wait_for("the permission question", |out, _| out.contains(r#"Allow read_file {"path":"notes.md"}? [y/N] "#));
    attach.write("y\n");
    let answer = rt.block_on(answer).unwrap().unwrap();
    assert_eq!(answer.content, "OK");
    attach.wait_for("the answer", |out, _| out.contains("OK\n"));
    let (code, stdout, stderr) = attach.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let expected = [
        "> Read my notes.",
        r#"Allow read_file {"path":"notes.md"}? [y/N] "#,
        "[allowed read_file]",
        r#"[tool read_file {"path":"notes.md"}]"#,
        "[tool read_file done: 9 bytes]",
        "OK",
    ];
    let mut rest = stdout.as_str();
    for line in expected {
        let at = rest.find(line).unwrap_or_else(|| panic!("`{line}` in order in:\n{stdout}"));
        rest = &rest[at + line.len()..];
    }
    assert!(!stderr.contains("error"), "{stderr}");
}
