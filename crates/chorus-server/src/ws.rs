//! `GET /ws?session_id=…`: the WebSocket face of sessions (protocol in
//! `chorus_proto::ws`, the AMCP seed's envelope). A connection watches one
//! session, named in the URL, by a `subscribe`, or by the `session_id` of its
//! first request that names one: it receives every event of that session as
//! an `event` envelope, in log order, like every other client on that
//! session; a prompt it sends is also answered with `response` envelopes
//! under the request's id (`queued`, `text` chunks, `tool_call` /
//! `tool_result` as its tools run, `complete`) or an `error`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use chorus_engine::store::{SessionId, StoreError};
use chorus_engine::{EventFilter, LoggedEvent};
use chorus_proto::native::Event;
use chorus_proto::ws::{Envelope, EnvelopeType, Request, Response as WsResponse, Timestamp, WsError};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

use crate::{ApiError, AppState};

type Events = BoxStream<'static, Result<Arc<LoggedEvent>, StoreError>>;

/// The query string of `/ws`.
#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    /// The session to watch from the start; `subscribe` can pick one later.
    session_id: Option<String>,
}

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::invalid(None, format!("/ws needs a WebSocket upgrade request: {e}")))?;
    let session = match query.session_id {
        Some(id) => {
            let id = SessionId::from_string(id);
            state.engine.session(&id).await?;
            Some(id)
        }
        None => None,
    };
    // Subscribe before the handshake completes: a client that acts as soon as
    // it is connected must not miss the first events.
    let events =
        session.as_ref().map(|id| state.engine.events().subscribe(EventFilter::Session(id.clone()), None).boxed());
    // A browser that sent its API key as a subprotocol also offers `chorus`, and needs the
    // server to choose one of its offers.
    Ok(ws.protocols(["chorus"]).on_upgrade(move |socket| connection(state, socket, session, events)))
}

/// One envelope, stamped now, serialized once.
fn envelope(kind: EnvelopeType, id: Option<String>, payload: impl serde::Serialize) -> WsMessage {
    let envelope = Envelope { kind, id, timestamp: Some(Timestamp::now()), payload };
    match serde_json::to_string(&envelope) {
        Ok(text) => WsMessage::Text(text.into()),
        Err(e) => error(envelope.id, &ApiError::internal(e)),
    }
}

fn error(id: Option<String>, e: &ApiError) -> WsMessage {
    let body = e.body().error;
    envelope(EnvelopeType::Error, id, WsError { message: body.message, kind: body.kind, code: body.code })
}

struct Connection {
    state: AppState,
    session: Option<SessionId>,
    events: Option<Events>,
    /// Prompts this connection sent: prompt id → request id.
    pending: HashMap<String, String>,
}

async fn connection(state: AppState, socket: WebSocket, session: Option<SessionId>, events: Option<Events>) {
    let (mut tx, mut rx) = socket.split();
    let abort = state.abort.clone();
    let mut conn = Connection { state, session, events, pending: HashMap::new() };
    loop {
        let out: Vec<WsMessage> = tokio::select! {
            () = abort.cancelled() => {
                let _ = tx.send(WsMessage::Close(None)).await;
                break;
            }
            incoming = rx.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => conn.request(text.as_str()).await,
                Some(Ok(WsMessage::Binary(_))) => {
                    vec![error(None, &ApiError::invalid(None, "send requests as JSON text messages"))]
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => break,
            },
            event = next_event(&mut conn.events) => match event {
                Some(Ok(event)) => conn.event(&event),
                Some(Err(e)) => {
                    conn.events = None;
                    vec![error(None, &ApiError::internal(e))]
                }
                None => {
                    conn.events = None;
                    continue;
                }
            },
        };
        for message in out {
            if tx.send(message).await.is_err() {
                return;
            }
        }
    }
}

async fn next_event(events: &mut Option<Events>) -> Option<Result<Arc<LoggedEvent>, StoreError>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    /// One client message: its answers.
    async fn request(&mut self, text: &str) -> Vec<WsMessage> {
        let envelope: Envelope = match crate::extract::parse(text.as_bytes()) {
            Ok(e) => e,
            Err(e) => return vec![error(None, &e)],
        };
        if envelope.kind != EnvelopeType::Request {
            return vec![error(
                envelope.id,
                &ApiError::invalid(Some("type".into()), "clients send `request` envelopes"),
            )];
        }
        let id = envelope.id;
        let request = match Request::from_payload(envelope.payload) {
            Ok(r) => r,
            Err(e) => return vec![error(id, &ApiError::invalid(Some(e.param.to_owned()), e.message))],
        };
        match self.handle(request, id.clone()).await {
            Ok(response) => vec![envelope_response(id, response)],
            Err(e) => vec![error(id, &e)],
        }
    }

    async fn handle(&mut self, request: Request, id: Option<String>) -> Result<WsResponse, ApiError> {
        match request {
            Request::Subscribe { session_id, last_event_id } => {
                let session = SessionId::from_string(session_id);
                self.watch(session.clone(), last_event_id).await?;
                Ok(WsResponse::Subscribed { session_id: session.to_string() })
            }
            Request::Prompt { content, priority, max_tokens, ignore_eos, tool_choice, session_id } => {
                let session = self.session_for(session_id).await?;
                let engine = &self.state.engine;
                let options = crate::api::prompt_options(priority, max_tokens, ignore_eos, tool_choice);
                let ticket = engine.prompt(&session, content, options).await?;
                if let Some(id) = id {
                    self.pending.insert(ticket.prompt_id.clone(), id);
                }
                Ok(WsResponse::Queued {
                    prompt_id: ticket.prompt_id,
                    queue_position: ticket.queue_position,
                    done: false,
                })
            }
            Request::Cancel { session_id } => {
                let session = self.session_for(session_id).await?;
                let (cancelled, dropped) = self.state.engine.cancel(&session).await?;
                Ok(WsResponse::Cancelled { cancelled, dropped })
            }
            Request::PermissionReply { request_id, allow, session_id } => {
                let session = self.session_for(session_id).await?;
                self.state
                    .engine
                    .reply_permission(&session, &request_id, allow)
                    .map_err(|e| ApiError::invalid(Some("payload.request_id".into()), e.to_string()))?;
                Ok(WsResponse::PermissionRecorded { request_id, allow })
            }
        }
    }

    /// Watch `session` from now on (after `after`, replayed from the log,
    /// when given), in place of the session watched so far.
    async fn watch(&mut self, session: SessionId, after: Option<i64>) -> Result<(), ApiError> {
        let engine = &self.state.engine;
        engine.session(&session).await?;
        self.events = Some(engine.events().subscribe(EventFilter::Session(session.clone()), after).boxed());
        self.session = Some(session);
        self.pending.clear();
        Ok(())
    }

    /// The session a request acts on: the one its payload names, which the
    /// connection then watches if it watched none (as `subscribe` does), and
    /// which must be the watched one otherwise; else the watched one.
    async fn session_for(&mut self, named: Option<String>) -> Result<SessionId, ApiError> {
        match (named, &self.session) {
            (Some(named), Some(current)) if named == current.as_str() => Ok(current.clone()),
            (Some(named), Some(current)) => Err(ApiError::invalid(
                Some("payload.session_id".into()),
                format!(
                    "this connection watches session {current}, but the request names session {named}: leave \
                     `session_id` out, send `subscribe` for {named} first, or use a connection to {named}"
                ),
            )),
            (Some(named), None) => {
                let session = SessionId::from_string(named);
                self.watch(session.clone(), None).await?;
                Ok(session)
            }
            (None, Some(current)) => Ok(current.clone()),
            (None, None) => Err(ApiError::invalid(
                Some("payload.session_id".into()),
                "no session: connect with /ws?session_id=ID, send `subscribe` first, or name it in the \
                 payload's `session_id`",
            )),
        }
    }

    /// One event of the session: the `event` envelope (the typed event,
    /// serialized once into it), and the prompt's response when this
    /// connection sent that prompt.
    fn event(&mut self, logged: &LoggedEvent) -> Vec<WsMessage> {
        // An unlogged event (the store failed) has no id to resume from.
        let id = (logged.id != chorus_engine::events::UNLOGGED).then(|| logged.id.to_string());
        let mut out = vec![envelope(EnvelopeType::Event, id, &logged.event)];
        let Some(request) = logged.event.prompt_id().and_then(|p| self.pending.get(p)).cloned() else { return out };
        let response = match &logged.event {
            Event::MessageChunk { content, .. } => WsResponse::Text { content: content.clone(), done: false },
            Event::ToolCallStart { session_id, call, .. } => WsResponse::ToolCall {
                tool_name: call.function.name.clone(),
                // The model's arguments are a JSON object as text; sent as the object they denote.
                arguments: serde_json::from_str(&call.function.arguments)
                    .unwrap_or_else(|_| serde_json::Value::String(call.function.arguments.clone())),
                session_id: session_id.clone(),
                call_id: call.id.clone(),
            },
            Event::ToolCallComplete { call_id, name, output, .. } => WsResponse::ToolResult {
                tool_name: name.clone(),
                result: output.clone(),
                success: true,
                call_id: call_id.clone(),
            },
            Event::ToolCallError { call_id, name, error, .. } => WsResponse::ToolResult {
                tool_name: name.clone(),
                result: error.clone(),
                success: false,
                call_id: call_id.clone(),
            },
            Event::MessageComplete { prompt_id, message, .. } => {
                self.pending.remove(prompt_id);
                let usage = message.usage.unwrap_or_default();
                WsResponse::Complete { message: Box::new(message.clone()), usage, done: true }
            }
            Event::MessageError { prompt_id, error: e, .. } => {
                self.pending.remove(prompt_id);
                let error = WsError { message: e.message.clone(), kind: e.kind.clone(), code: e.code.clone() };
                out.push(envelope(EnvelopeType::Error, Some(request), error));
                return out;
            }
            _ => return out,
        };
        out.push(envelope_response(Some(request), response));
        out
    }
}

fn envelope_response(id: Option<String>, response: WsResponse) -> WsMessage {
    envelope(EnvelopeType::Response, id, response)
}
