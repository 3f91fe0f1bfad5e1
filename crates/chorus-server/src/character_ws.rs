//! The characters WebSocket, the socket-based character agent seed's protocol: `GET
//! /ws/characters`, and `/` and `/ws/characters` on `--character-port`
//! ([`character_port_app`]), behind the API key like `/ws`.
//!
//! JSON text frames. A request is `{"type": "KIND_request", "request_id"?, "data": {…}}`, whose
//! fields may also be given at the top level (the seed's flat form); it is answered by
//! `{"type": "KIND_response", "request_id", "success", "data", "error", "timestamp"}`
//! (`error_response` for a frame that is no request). `init_request` attaches the connection to a
//! character's session; from then on it receives that session's events as they happen, whoever
//! caused them (`chat_message`, `chat_chunk`, `chat_error`, `vitals_update`,
//! `character_restored`), so every client on a character sees every turn. Requests run
//! concurrently with the forwarding of events (a turn does not hold up a `ping_request`); one
//! writer task sends every frame. A bad request is answered, never a reason to close.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::middleware;
use axum::response::Response;
use axum::routing::get;
use chorus_engine::character::user_name;
use chorus_engine::store::SessionId;
use chorus_engine::{EventFilter, LoggedEvent, PromptOptions, PromptOutcome, Role, wire};
use chorus_proto::character::{CharacterInit, CharacterWsError, CharacterWsResponse, SnapshotInfo};
use chorus_proto::native::Event;
use chorus_proto::ws::Timestamp;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use crate::{ApiError, AppState};

/// The most transcript messages an `init_request` answers with.
const INIT_MESSAGES: usize = 100;
/// How long a `chat_response` waits for the turn's `vitals_update` to go out before it.
const UPDATE_WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws =
        ws.map_err(|e| ApiError::invalid(None, format!("/ws/characters needs a WebSocket upgrade request: {e}")))?;
    // A browser that sent its API key as a subprotocol also offers `chorus`; the seed's plain
    // clients offer none and get none.
    Ok(ws.protocols(["chorus"]).on_upgrade(move |socket| connection(state, socket)))
}

/// The `--character-port` server: the characters WebSocket at `/` and `/ws/characters`, behind
/// the same API key as the main port.
pub fn character_port_app(state: AppState) -> Router {
    Router::new()
        .route("/", get(upgrade))
        .route("/ws/characters", get(upgrade))
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::auth::require_key))
        .fallback(crate::error::not_found)
        .with_state(state)
}

/// A frame, stamped now.
fn frame(kind: &str, request_id: &Value, data: Value) -> WsMessage {
    let frame =
        json!({"type": kind, "request_id": request_id, "data": data, "timestamp": Timestamp::now().to_string()});
    WsMessage::Text(frame.to_string().into())
}

/// A response frame.
fn response(kind: &str, request_id: &Value, result: Result<Value, CharacterWsError>) -> WsMessage {
    let (success, data, error) = match result {
        Ok(data) => (true, Some(data), None),
        Err(e) => (false, None, Some(e)),
    };
    let response = CharacterWsResponse {
        kind: format!("{kind}_response"),
        // Echoed as it came (a string, or whatever JSON the client sent).
        request_id: Some(request_id.clone()),
        success,
        data,
        error,
        timestamp: Timestamp::now().to_string(),
    };
    match serde_json::to_string(&response) {
        Ok(text) => WsMessage::Text(text.into()),
        Err(_) => WsMessage::Text(json!({"type": response.kind, "success": false}).to_string().into()),
    }
}

fn ws_error(kind: &str, message: impl Into<String>, code: &str, param: Option<&str>) -> CharacterWsError {
    CharacterWsError {
        message: message.into(),
        kind: kind.to_owned(),
        code: Some(code.to_owned()),
        param: param.map(str::to_owned),
    }
}

impl From<ApiError> for CharacterWsError {
    fn from(e: ApiError) -> Self {
        let body = e.body().error;
        Self { message: body.message, kind: body.kind, code: body.code, param: body.param }
    }
}

fn api<E: Into<ApiError>>(e: E) -> CharacterWsError {
    e.into().into()
}

/// The character session a connection is attached to.
#[derive(Debug, Clone)]
struct Attachment {
    character: String,
    session: SessionId,
    user: String,
}

/// A turn this connection asked for, while it runs.
struct OwnPrompt {
    /// The `chat_request`'s id, for its `chat_chunk`s.
    request_id: Value,
    /// Told once the turn's `vitals_update` went out, so the `chat_response` comes after it.
    forwarded: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Prompts {
    own: HashMap<String, OwnPrompt>,
    /// Turns whose answer went out and whose `vitals_update` is next.
    awaiting_update: Vec<oneshot::Sender<()>>,
}

/// What a connection's tasks share.
struct Shared {
    state: AppState,
    /// To the writer task.
    out: mpsc::UnboundedSender<WsMessage>,
    attached: Mutex<Option<Attachment>>,
    /// Locked across queueing a turn, so the forwarder knows the turn is this connection's
    /// before it sees the turn's first event.
    prompts: tokio::sync::Mutex<Prompts>,
}

impl Shared {
    fn send(&self, message: WsMessage) {
        // The writer is gone only when the connection is.
        let _ = self.out.send(message);
    }

    fn attachment(&self) -> Option<Attachment> {
        self.attached.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn connection(state: AppState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut queue) = mpsc::unbounded_channel::<WsMessage>();
    let abort = state.abort.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = queue.recv().await {
            let close = matches!(message, WsMessage::Close(_));
            if sink.send(message).await.is_err() || close {
                break;
            }
        }
    });
    let shared = Arc::new(Shared {
        state,
        out,
        attached: Mutex::new(None),
        prompts: tokio::sync::Mutex::new(Prompts::default()),
    });
    let mut forwarder: Option<AbortHandle> = None;
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = abort.cancelled() => {
                shared.send(WsMessage::Close(None));
                break;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    request(&shared, text.as_str(), &mut forwarder, &mut tasks).await;
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    let e = ws_error("invalid_request_error", "send requests as JSON text frames", "invalid_json", None);
                    shared.send(response("error", &Value::Null, Err(e)));
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => break,
            },
        }
    }
    if let Some(f) = forwarder {
        f.abort();
    }
    // Dropping the tasks and the last handle ends the writer once it has sent what is queued.
    drop(tasks);
    drop(shared);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// The parts of a request frame.
struct Parsed {
    kind: String,
    request_id: Value,
    data: Value,
}

/// `{"type", "request_id"?, "data"?, …}`: the top-level fields besides `type`, `request_id` and
/// `data` are merged into `data` (`data`'s own win).
fn parse(text: &str) -> Result<Parsed, Box<(Value, CharacterWsError)>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let message = format!("the frame is not valid JSON: {e}");
        Box::new((Value::Null, ws_error("invalid_request_error", message, "invalid_json", None)))
    })?;
    let Value::Object(mut object) = value else {
        let e = ws_error("invalid_request_error", "a request is a JSON object with a `type`", "invalid_json", None);
        return Err(Box::new((Value::Null, e)));
    };
    let request_id = object.remove("request_id").unwrap_or(Value::Null);
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            let e = ws_error(
                "invalid_request_error",
                "a request needs a `type` such as `init_request`",
                "unknown_request",
                Some("type"),
            );
            return Err(Box::new((request_id, e)));
        }
    };
    let mut data = match object.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data,
        Some(_) => {
            let e = ws_error("invalid_request_error", "`data` must be an object", "invalid_request", Some("data"));
            return Err(Box::new((request_id, e)));
        }
    };
    for (key, value) in object {
        data.entry(key).or_insert(value);
    }
    Ok(Parsed { kind, request_id, data: Value::Object(data) })
}

/// A request's data as `T`, naming the field at fault.
fn fields<T: DeserializeOwned>(data: Value) -> Result<T, CharacterWsError> {
    serde_path_to_error::deserialize(data).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let param = (path != ".").then(|| format!("data.{path}"));
        let message = match &param {
            Some(p) => format!("invalid value for `{p}`: {inner}"),
            None => format!("invalid request data: {inner}"),
        };
        CharacterWsError { message, kind: "invalid_request_error".into(), code: None, param }
    })
}

const KINDS: [&str; 8] = ["init", "chat", "status", "save", "load", "reset", "memory_search", "ping"];

/// One client frame: `init` at once (later requests see its attachment), the others on tasks
/// of their own.
async fn request(shared: &Arc<Shared>, text: &str, forwarder: &mut Option<AbortHandle>, tasks: &mut JoinSet<()>) {
    let Parsed { kind, request_id, data } = match parse(text) {
        Ok(p) => p,
        Err(rejected) => {
            let (request_id, e) = *rejected;
            return shared.send(response("error", &request_id, Err(e)));
        }
    };
    let Some(name) = kind.strip_suffix("_request").filter(|k| KINDS.contains(k)).map(str::to_owned) else {
        let known = KINDS.iter().map(|k| format!("`{k}_request`")).collect::<Vec<_>>().join(", ");
        let e = ws_error(
            "invalid_request_error",
            format!("unknown request type `{kind}`; the types are {known}"),
            "unknown_request",
            Some("type"),
        );
        return shared.send(response("error", &request_id, Err(e)));
    };
    match name.as_str() {
        "init" => {
            let result = init(shared, data, forwarder).await;
            shared.send(response("init", &request_id, result));
        }
        "ping" => {
            let data = json!({"pong": true, "server_time": Timestamp::now().to_string()});
            shared.send(response("ping", &request_id, Ok(data)));
        }
        _ => {
            let Some(attached) = shared.attachment() else {
                let e = ws_error(
                    "invalid_request_error",
                    "this connection is not attached to a character: send {\"type\": \"init_request\", \"data\": \
                     {\"character\": NAME}} first",
                    "not_initialized",
                    None,
                );
                return shared.send(response(&name, &request_id, Err(e)));
            };
            let shared = Arc::clone(shared);
            tasks.spawn(async move {
                let result = match name.as_str() {
                    "chat" => chat(&shared, &attached, &request_id, data).await,
                    other => act(&shared, &attached, other, data).await,
                };
                shared.send(response(&name, &request_id, result));
            });
        }
    }
}

#[derive(Deserialize)]
struct InitData {
    #[serde(alias = "character_id", alias = "character_name")]
    character: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

/// Attach the connection to the character's session (in place of the one it had): subscribe to
/// its events, then answer with its transcript and state.
async fn init(
    shared: &Arc<Shared>,
    data: Value,
    forwarder: &mut Option<AbortHandle>,
) -> Result<Value, CharacterWsError> {
    let data: InitData = fields(data)?;
    let Some(character) = data.character.filter(|c| !c.trim().is_empty()) else {
        return Err(CharacterWsError {
            message: "`character` is required: the id or name of a character".into(),
            kind: "invalid_request_error".into(),
            code: None,
            param: Some("data.character".into()),
        });
    };
    let user =
        user_name(data.user_name.as_deref()).map_err(|e| api(chorus_engine::character::CharacterError::from(e)))?;
    let named = data.session_id.filter(|s| !s.trim().is_empty()).map(SessionId::from_string);
    let engine = &shared.state.engine;
    let (character, session) = engine.character_session(character.trim(), named.as_ref(), &user).await.map_err(api)?;
    // Subscribe before reading the transcript, so nothing said meanwhile is missed.
    let events = engine.events().subscribe(EventFilter::Session(session.id.clone()), None);
    let messages = engine.store().messages(&session.id).await.map_err(api)?;
    let mut messages: Vec<_> = messages
        .iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant) && !m.content.is_empty())
        .map(wire::message)
        .collect();
    messages.drain(..messages.len().saturating_sub(INIT_MESSAGES));
    let status = engine.character_status(character.id(), Some(&session.id), &user).await.map_err(api)?;

    if let Some(old) = forwarder.take() {
        old.abort();
    }
    // Turns asked for on the old attachment are no longer followed here.
    *shared.prompts.lock().await = Prompts::default();
    let attachment =
        Attachment { character: character.id().to_owned(), session: session.id.clone(), user: user.clone() };
    *shared.attached.lock().unwrap_or_else(PoisonError::into_inner) = Some(attachment);
    let task = tokio::spawn(forward(Arc::clone(shared), events));
    *forwarder = Some(task.abort_handle());

    let init = CharacterInit {
        character: character.id().to_owned(),
        name: character.name().to_owned(),
        session_id: session.id.to_string(),
        user,
        messages,
        status,
    };
    serde_json::to_value(init).map_err(|e| api(ApiError::internal(e)))
}

/// The attached session's events, as frames, until the connection re-attaches or closes.
async fn forward(
    shared: Arc<Shared>,
    events: impl futures::Stream<Item = Result<Arc<LoggedEvent>, chorus_engine::store::StoreError>> + Send + 'static,
) {
    let events = events.take_until(shared.state.abort.clone().cancelled_owned());
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                let e = api(ApiError::internal(e));
                shared.send(response("error", &Value::Null, Err(e)));
                return;
            }
        };
        let own = |prompts: &Prompts, prompt_id: &str| {
            prompts.own.get(prompt_id).map_or(Value::Null, |p| p.request_id.clone())
        };
        match &event.event {
            Event::MessageStart { session_id, prompt_id, user_message } => {
                let request_id = own(&*shared.prompts.lock().await, prompt_id);
                let data = json!({"session_id": session_id, "prompt_id": prompt_id, "message": user_message});
                shared.send(frame("chat_message", &request_id, data));
            }
            Event::MessageChunk { prompt_id, content, .. } => {
                let request_id = own(&*shared.prompts.lock().await, prompt_id);
                shared.send(frame("chat_chunk", &request_id, json!({"content": content, "prompt_id": prompt_id})));
            }
            Event::MessageComplete { session_id, prompt_id, message } => {
                let mut prompts = shared.prompts.lock().await;
                let request_id = own(&prompts, prompt_id);
                let data = json!({"session_id": session_id, "prompt_id": prompt_id, "message": message});
                shared.send(frame("chat_message", &request_id, data));
                if let Some(done) = prompts.own.get_mut(prompt_id).and_then(|p| p.forwarded.take()) {
                    prompts.awaiting_update.push(done);
                }
            }
            Event::MessageError { session_id, prompt_id, error, .. } => {
                let mut prompts = shared.prompts.lock().await;
                let request_id = own(&prompts, prompt_id);
                prompts.own.remove(prompt_id);
                let data = json!({"session_id": session_id, "prompt_id": prompt_id, "error": error});
                shared.send(frame("chat_error", &request_id, data));
            }
            Event::CharacterUpdated { .. } => {
                let data = serde_json::to_value(&event.event).unwrap_or(Value::Null);
                shared.send(frame("vitals_update", &Value::Null, data));
                for done in shared.prompts.lock().await.awaiting_update.drain(..) {
                    let _ = done.send(());
                }
            }
            Event::CharacterRestored { .. } => {
                let data = serde_json::to_value(&event.event).unwrap_or(Value::Null);
                shared.send(frame("character_restored", &Value::Null, data));
            }
            _ => {}
        }
    }
}

#[derive(Deserialize)]
struct ChatData {
    #[serde(alias = "content")]
    message: Option<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

/// A turn: queued as the connection's user; answered once it is stored and its
/// `vitals_update` went out.
async fn chat(
    shared: &Shared,
    attached: &Attachment,
    request_id: &Value,
    data: Value,
) -> Result<Value, CharacterWsError> {
    let data: ChatData = fields(data)?;
    let message = data.message.unwrap_or_default();
    if message.trim().is_empty() {
        return Err(CharacterWsError {
            message: "`message` must not be empty".into(),
            kind: "invalid_request_error".into(),
            code: None,
            param: Some("data.message".into()),
        });
    }
    let engine = &shared.state.engine;
    let options =
        PromptOptions { user_name: Some(attached.user.clone()), max_tokens: data.max_tokens, ..Default::default() };
    let (forwarded, after_update) = oneshot::channel();
    let ticket = {
        let mut prompts = shared.prompts.lock().await;
        let ticket = engine.prompt(&attached.session, message, options).await.map_err(api)?;
        let own = OwnPrompt { request_id: request_id.clone(), forwarded: Some(forwarded) };
        prompts.own.insert(ticket.prompt_id.clone(), own);
        ticket
    };
    let prompt_id = ticket.prompt_id.clone();
    let outcome = ticket.outcome.await;
    let result = match outcome {
        Ok(PromptOutcome::Complete(message)) => {
            // The answer and the vitals go out before the response (the re-attached or closed
            // connection does not wait).
            let _ = tokio::time::timeout(UPDATE_WAIT, after_update).await;
            let response = crate::api::characters::chat_response(
                &shared.state,
                &attached.character,
                &attached.session,
                &attached.user,
                &message,
            )
            .await
            .map_err(CharacterWsError::from)?;
            serde_json::to_value(response).map_err(|e| api(ApiError::internal(e)))
        }
        Ok(PromptOutcome::Failed(e)) => Err(api(e)),
        Ok(PromptOutcome::Store(e)) => Err(api(e)),
        Ok(PromptOutcome::Cancelled) | Err(_) => Err(api(ApiError::cancelled())),
    };
    shared.prompts.lock().await.own.remove(&prompt_id);
    result
}

#[derive(Deserialize)]
struct NameData {
    name: Option<String>,
}

#[derive(Deserialize)]
struct SearchData {
    query: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

fn required(value: Option<String>, field: &str) -> Result<String, CharacterWsError> {
    value.filter(|v| !v.trim().is_empty()).ok_or_else(|| CharacterWsError {
        message: format!("`{field}` is required"),
        kind: "invalid_request_error".into(),
        code: None,
        param: Some(format!("data.{field}")),
    })
}

/// `status`, `save`, `load`, `reset` and `memory_search` on the attached session.
async fn act(shared: &Shared, attached: &Attachment, kind: &str, data: Value) -> Result<Value, CharacterWsError> {
    let engine = &shared.state.engine;
    let (character, session, user) = (attached.character.as_str(), Some(&attached.session), attached.user.as_str());
    let value = match kind {
        "status" => serde_json::to_value(engine.character_status(character, session, user).await.map_err(api)?),
        "save" => {
            let name = required(fields::<NameData>(data)?.name, "name")?;
            let snapshot = engine.save_character(character, session, name.trim()).await.map_err(api)?;
            serde_json::to_value(SnapshotInfo { name: snapshot.name, created_at: snapshot.created_at })
        }
        "load" => {
            let name = required(fields::<NameData>(data)?.name, "name")?;
            let status = engine.load_character(character, session, name.trim()).await.map_err(api)?;
            serde_json::to_value(status)
        }
        "reset" => serde_json::to_value(engine.reset_character(character, session, user).await.map_err(api)?),
        "memory_search" => {
            let data: SearchData = fields(data)?;
            let query = required(data.query, "query")?;
            let found =
                engine.search_memories(character, session, &query, Some(user), data.limit).await.map_err(api)?;
            let results: Vec<_> = found
                .iter()
                .map(|(m, score)| chorus_engine::character::instance::memory_view(m, Some(*score)))
                .collect();
            Ok(json!({"results": results}))
        }
        other => {
            return Err(ws_error(
                "invalid_request_error",
                format!("unknown request `{other}`"),
                "unknown_request",
                None,
            ));
        }
    };
    value.map_err(|e| api(ApiError::internal(e)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flat_fields_merge_into_data() {
        let p = parse(r#"{"type": "chat_request", "request_id": "r1", "message": "hi", "data": {"max_tokens": 4}}"#)
            .map_err(|r| r.1)
            .unwrap();
        assert_eq!((p.kind.as_str(), &p.request_id), ("chat_request", &json!("r1")));
        assert_eq!(p.data, json!({"message": "hi", "max_tokens": 4}));
        let p = parse(r#"{"type": "save_request", "name": "a", "data": {"name": "b"}}"#).map_err(|r| r.1).unwrap();
        assert_eq!((p.data, p.request_id), (json!({"name": "b"}), Value::Null));
    }

    #[test]
    fn bad_frames_are_named() {
        let (_, e) = *parse("{nope").err().unwrap();
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
        let (id, e) = *parse(r#"{"request_id": 7}"#).err().unwrap();
        assert_eq!((id, e.code.as_deref()), (json!(7), Some("unknown_request")));
        let e = fields::<ChatData>(json!({"message": 5})).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("data.message"));
    }
}
