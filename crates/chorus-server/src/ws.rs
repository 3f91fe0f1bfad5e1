//! `GET /ws?session_id=…`: the WebSocket face of sessions (protocol in
//! `chorus_proto::ws`). A connection watches one session: it receives every
//! event of that session as an `event` envelope, in log order, like every
//! other client on that session; a prompt it sends is also answered with
//! `response` envelopes under the request's id (`queued`, `text` chunks,
//! `complete`) or an `error`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use chorus_engine::EventFilter;
use chorus_engine::store::{SessionId, StoreError, StoredEvent};
use chorus_proto::native::Event;
use chorus_proto::ws::{Envelope, EnvelopeType, Request, Response as WsResponse, WsError};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

use crate::{ApiError, AppState};

type Events = BoxStream<'static, Result<Arc<StoredEvent>, StoreError>>;

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
    Ok(ws.on_upgrade(move |socket| connection(state, socket, session, events)))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn envelope(kind: EnvelopeType, id: Option<String>, payload: impl serde::Serialize) -> WsMessage {
    let envelope = Envelope {
        kind,
        id,
        timestamp: now_ms(),
        payload: serde_json::to_value(payload).unwrap_or(serde_json::Value::Null),
    };
    WsMessage::Text(serde_json::to_string(&envelope).unwrap_or_default().into())
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

async fn next_event(events: &mut Option<Events>) -> Option<Result<Arc<StoredEvent>, StoreError>> {
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
        let request: Request = match serde_json::from_value(envelope.payload) {
            Ok(r) => r,
            Err(e) => {
                return vec![error(id, &ApiError::invalid(Some("payload".into()), format!("invalid request: {e}")))];
            }
        };
        match self.handle(request, id.clone()).await {
            Ok(response) => vec![envelope_response(id, response)],
            Err(e) => vec![error(id, &e)],
        }
    }

    async fn handle(&mut self, request: Request, id: Option<String>) -> Result<WsResponse, ApiError> {
        let engine = &self.state.engine;
        match request {
            Request::Subscribe { session_id, last_event_id } => {
                let session = SessionId::from_string(session_id);
                engine.session(&session).await?;
                self.events =
                    Some(engine.events().subscribe(EventFilter::Session(session.clone()), last_event_id).boxed());
                self.session = Some(session.clone());
                self.pending.clear();
                Ok(WsResponse::Subscribed { session_id: session.to_string() })
            }
            Request::Prompt { content, priority, max_tokens, ignore_eos, tool_choice } => {
                let session = self.session()?;
                let options =
                    crate::api::prompt_options(priority, max_tokens, ignore_eos, tool_choice, "payload.max_tokens")?;
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
            Request::Cancel => {
                let session = self.session()?;
                let (cancelled, dropped) = engine.cancel(&session).await?;
                Ok(WsResponse::Cancelled { cancelled, dropped })
            }
            Request::PermissionReply { request_id, allow } => {
                let session = self.session()?;
                engine
                    .reply_permission(&session, &request_id, allow)
                    .map_err(|e| ApiError::invalid(Some("payload.request_id".into()), e.to_string()))?;
                Ok(WsResponse::PermissionRecorded { request_id, allow })
            }
        }
    }

    fn session(&self) -> Result<SessionId, ApiError> {
        self.session.clone().ok_or_else(|| {
            ApiError::invalid(
                Some("session_id".into()),
                "no session: connect with /ws?session_id=ID or send `subscribe` first",
            )
        })
    }

    /// One event of the session: the `event` envelope, and the prompt's
    /// response when this connection sent that prompt.
    fn event(&mut self, stored: &StoredEvent) -> Vec<WsMessage> {
        let payload: serde_json::Value = serde_json::from_str(&stored.data).unwrap_or(serde_json::Value::Null);
        let mut out = vec![envelope(EnvelopeType::Event, Some(stored.id.to_string()), &payload)];
        let Ok(event) = serde_json::from_value::<Event>(payload) else { return out };
        let Some(request) = event.prompt_id().and_then(|p| self.pending.get(p)).cloned() else { return out };
        match event {
            Event::MessageChunk { content, .. } => {
                out.push(envelope_response(Some(request), WsResponse::Text { content, done: false }));
            }
            Event::MessageComplete { prompt_id, message, .. } => {
                self.pending.remove(&prompt_id);
                let usage = message.usage.unwrap_or_default();
                out.push(envelope_response(Some(request), WsResponse::Complete { message, usage, done: true }));
            }
            Event::MessageError { prompt_id, error: e, .. } => {
                self.pending.remove(&prompt_id);
                out.push(envelope(
                    EnvelopeType::Error,
                    Some(request),
                    WsError { message: e.message, kind: e.kind, code: e.code },
                ));
            }
            _ => {}
        }
        out
    }
}

fn envelope_response(id: Option<String>, response: WsResponse) -> WsMessage {
    envelope(EnvelopeType::Response, id, response)
}
