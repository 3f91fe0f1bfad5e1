//! A small in-process OpenAI-compatible server on `127.0.0.1:0`: it records every request,
//! answers with what the test scripted (server-sent events, an error status, JSON), can hold
//! its answers behind a gate (a slow upstream), tells when a client left a stream, and can be
//! stopped (a dead upstream). Every response says `Connection: close`, so a stopped server's
//! connections are not reused.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How a route answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These `data:` payloads, then the body ends.
    Events(Vec<String>),
    /// These `data:` payloads, then nothing, forever (until the client leaves).
    EventsThenHang(Vec<String>),
    /// This status and body (JSON when it parses).
    Status(u16, String),
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
    pub authorization: Option<String>,
}

pub struct MockState {
    received: Mutex<Vec<Received>>,
    replies: Mutex<HashMap<&'static str, Reply>>,
    /// Generation answers wait while this is false.
    gate: watch::Sender<bool>,
    /// Health answers wait while this is false.
    health_gate: watch::Sender<bool>,
    /// `/health`'s status; 404 means the route is missing.
    health_status: AtomicU16,
    health_hits: AtomicU16,
    models_hits: AtomicU16,
    /// A client left a hanging stream ([`Reply::EventsThenHang`]).
    pub disconnected: AtomicBool,
}

pub struct Mock {
    pub url: String,
    pub state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

pub const CHAT: &str = "/v1/chat/completions";
pub const COMPLETIONS: &str = "/v1/completions";
pub const EMBEDDINGS: &str = "/v1/embeddings";

impl Mock {
    /// A server answering chat and completions with "Hello world" and embeddings with `[n, 1]`
    /// per input (n: its characters or tokens).
    pub async fn start() -> Mock {
        let state = Arc::new(MockState {
            received: Mutex::new(Vec::new()),
            replies: Mutex::new(HashMap::new()),
            gate: watch::channel(true).0,
            health_gate: watch::channel(true).0,
            health_status: AtomicU16::new(200),
            health_hits: AtomicU16::new(0),
            models_hits: AtomicU16::new(0),
            disconnected: AtomicBool::new(false),
        });
        state.reply(CHAT, Reply::Events(chat_text(&["Hello", " world"], "stop")));
        state.reply(COMPLETIONS, Reply::Events(completion_text(&["Hello", " world"], "length")));
        let app = Router::new()
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route(CHAT, post(generate))
            .route(COMPLETIONS, post(generate))
            .route(EMBEDDINGS, post(embeddings))
            .layer(axum::middleware::map_response(close_connection))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { url, state, task }
    }

    /// Stop accepting connections: the port refuses from now on.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl MockState {
    pub fn reply(&self, path: &'static str, reply: Reply) {
        self.replies.lock().unwrap().insert(path, reply);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.received(path).len()
    }

    /// Hold (false) or release (true) generation answers.
    pub fn open(&self, open: bool) {
        self.gate.send_replace(open);
    }

    /// Hold (false) or release (true) health answers.
    pub fn open_health(&self, open: bool) {
        self.health_gate.send_replace(open);
    }

    pub fn set_health(&self, status: u16) {
        self.health_status.store(status, Ordering::SeqCst);
    }

    pub fn health_hits(&self) -> u16 {
        self.health_hits.load(Ordering::SeqCst)
    }

    pub fn models_hits(&self) -> u16 {
        self.models_hits.load(Ordering::SeqCst)
    }

    fn record(&self, path: &str, headers: &HeaderMap, body: Value) {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.received.lock().unwrap().push(Received { path: path.to_owned(), body, authorization });
    }
}

async fn close_connection(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn health(State(state): State<Arc<MockState>>) -> Response {
    state.health_hits.fetch_add(1, Ordering::SeqCst);
    let _ = state.health_gate.subscribe().wait_for(|open| *open).await;
    let status = StatusCode::from_u16(state.health_status.load(Ordering::SeqCst)).unwrap();
    (status, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn models(State(state): State<Arc<MockState>>) -> Response {
    state.models_hits.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"object": "list", "data": []})).into_response()
}

/// Sets `disconnected` when dropped before the stream ended.
struct OnDrop(Arc<MockState>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.disconnected.store(true, Ordering::SeqCst);
    }
}

async fn generate(
    State(state): State<Arc<MockState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let path: &'static str = if uri.path() == CHAT { CHAT } else { COMPLETIONS };
    state.record(path, &headers, body);
    let _ = state.gate.subscribe().wait_for(|open| *open).await;
    let reply = state.replies.lock().unwrap().get(path).cloned().expect("a reply");
    let (events, hang) = match reply {
        Reply::Events(events) => (events, false),
        Reply::EventsThenHang(events) => (events, true),
        Reply::Status(status, body) => return status_reply(status, body),
    };
    let frames: Vec<Result<Bytes, Infallible>> =
        events.into_iter().map(|e| Ok(Bytes::from(format!("data: {e}\n\n")))).collect();
    let stream = futures::stream::iter(frames);
    let stream = if hang {
        // A hanging stream ends only when the client leaves: that is when its guard drops.
        let guard = OnDrop(state.clone());
        stream
            .chain(futures::stream::pending())
            .map(move |frame| {
                let _ = &guard;
                frame
            })
            .boxed()
    } else {
        stream.boxed()
    };
    Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

fn status_reply(status: u16, body: String) -> Response {
    let content_type = if serde_json::from_str::<Value>(&body).is_ok() { "application/json" } else { "text/plain" };
    Response::builder().status(status).header(header::CONTENT_TYPE, content_type).body(Body::from(body)).unwrap()
}

async fn embeddings(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    state.record(EMBEDDINGS, &headers, body.clone());
    if let Some(Reply::Status(status, body)) = state.replies.lock().unwrap().get(EMBEDDINGS).cloned() {
        return status_reply(status, body);
    }
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let sizes: Vec<usize> = inputs
        .iter()
        .map(|i| match i {
            Value::String(s) => s.chars().count(),
            Value::Array(tokens) => tokens.len(),
            _ => 0,
        })
        .collect();
    // In reverse order, with indices, as a server may answer.
    let data: Vec<Value> = sizes
        .iter()
        .enumerate()
        .rev()
        .map(|(i, n)| json!({"object": "embedding", "index": i, "embedding": [*n as f32, 1.0]}))
        .collect();
    let total: usize = sizes.iter().sum();
    axum::Json(json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": total, "total_tokens": total}}))
        .into_response()
}

/// The chunks of a streamed chat answer of `pieces`, then `finish`, usage and `[DONE]`.
pub fn chat_text(pieces: &[&str], finish: &str) -> Vec<String> {
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    events.extend(pieces.iter().map(|p| chunk(json!({"content": p}), None)));
    events.push(chunk(json!({}), Some(finish)));
    events.push(usage(7, pieces.len() as u32));
    events.push("[DONE]".into());
    events
}

/// The events of a streamed completion of `pieces`.
pub fn completion_text(pieces: &[&str], finish: &str) -> Vec<String> {
    let mut events: Vec<String> = pieces
        .iter()
        .map(|p| {
            json!({"object": "text_completion", "choices": [{"index": 0, "text": p, "finish_reason": null}]})
                .to_string()
        })
        .collect();
    events.push(
        json!({"object": "text_completion", "choices": [{"index": 0, "text": "", "finish_reason": finish}]})
            .to_string(),
    );
    events.push(usage(3, pieces.len() as u32));
    events.push("[DONE]".into());
    events
}

/// One `chat.completion.chunk` with `delta` and `finish_reason`.
pub fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        "usage": null,
    })
    .to_string()
}

/// The final usage chunk.
pub fn usage(prompt: u32, completion: u32) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": 2}},
    })
    .to_string()
}

/// Wait until `done` holds, checking every 10 ms; panic with `what` after 10 s.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
