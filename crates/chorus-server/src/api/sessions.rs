//! Session routes: create, list, retrieve, delete, messages, prompt (JSON,
//! SSE or async), cancel and clear.
//!
//! A prompt belongs to its session, not to the connection that sent it: a
//! client that disconnects from a streamed or waiting prompt does not cancel
//! it (other clients may be watching); `POST …/cancel` does.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chorus_engine::store::{NewSession, SessionId};
use chorus_engine::{EventFilter, Priority, PromptOptions, PromptOutcome, wire};
use chorus_proto::native;
use futures::StreamExt;

use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

pub(crate) fn view(state: &AppState, session: &chorus_engine::store::Session) -> native::Session {
    wire::session(session, state.engine.queue_length(&session.id))
}

/// `POST /api/v1/sessions`; an empty body creates a session with defaults.
pub(crate) async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<native::Session>), ApiError> {
    let request: native::CreateSessionRequest =
        if body.iter().all(u8::is_ascii_whitespace) { Default::default() } else { crate::extract::parse(&body)? };
    let new = NewSession {
        id: None,
        title: request.title.unwrap_or_default(),
        work_dir: request.work_dir.unwrap_or_default(),
        agent: request.agent.unwrap_or_default(),
        model: request.model,
    };
    if let Some(model) = &new.model {
        state.engine.model(Some(model))?;
    }
    let session = state.engine.create_session(new).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &session))))
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<native::SessionList>, ApiError> {
    let sessions = state.engine.store().list_sessions().await?;
    Ok(Json(native::SessionList { object: "list".into(), data: sessions.iter().map(|s| view(&state, s)).collect() }))
}

pub(crate) async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::Session>, ApiError> {
    let session = state.engine.session(&SessionId::from_string(id)).await?;
    Ok(Json(view(&state, &session)))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::Deleted>, ApiError> {
    state.engine.delete_session(&SessionId::from_string(id.clone())).await?;
    Ok(Json(native::Deleted { id, object: "session".into(), deleted: true }))
}

pub(crate) async fn messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::MessageList>, ApiError> {
    let id = SessionId::from_string(id);
    state.engine.session(&id).await?;
    let messages = state.engine.store().messages(&id).await?;
    Ok(Json(native::MessageList { object: "list".into(), data: messages.iter().map(wire::message).collect() }))
}

pub(crate) async fn prompt(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(request): AppJson<native::PromptRequest>,
) -> Result<Response, ApiError> {
    answer(&state, SessionId::from_string(id), request).await
}

/// The engine's options for a prompt's wire fields (HTTP body or WebSocket
/// payload); `max_tokens_param` names the field in errors.
pub(crate) fn prompt_options(
    priority: native::Priority,
    max_tokens: Option<u32>,
    ignore_eos: bool,
    max_tokens_param: &str,
) -> Result<PromptOptions, ApiError> {
    if max_tokens == Some(0) {
        return Err(ApiError::invalid(Some(max_tokens_param.into()), "max_tokens must be at least 1"));
    }
    let priority = match priority {
        native::Priority::Normal => Priority::Normal,
        native::Priority::High => Priority::High,
    };
    Ok(PromptOptions { priority, max_tokens, ignore_eos })
}

/// Queue a prompt on a session and answer as it asks: SSE of its events,
/// `202` with its queue position, or the stored answer.
pub(crate) async fn answer(
    state: &AppState,
    id: SessionId,
    request: native::PromptRequest,
) -> Result<Response, ApiError> {
    if request.stream && request.is_async {
        return Err(ApiError::invalid(Some("async".into()), "`stream` and `async` cannot both be true"));
    }
    let options = prompt_options(request.priority, request.max_tokens, request.ignore_eos, "max_tokens")?;
    // Subscribe before queueing, so the stream cannot miss the prompt's first event.
    let events = request.stream.then(|| state.engine.events().subscribe(EventFilter::Session(id.clone()), None));
    let ticket = state.engine.prompt(&id, request.content, options).await?;

    if let Some(events) = events {
        let prompt_id = ticket.prompt_id.clone();
        let abort = state.abort.clone();
        let stream = async_stream::stream! {
            let events = events.take_until(abort.cancelled_owned());
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        let Ok(payload) = serde_json::from_str::<native::Event>(&event.data) else { continue };
                        if payload.prompt_id() != Some(prompt_id.as_str()) {
                            continue;
                        }
                        let last = matches!(payload, native::Event::MessageComplete { .. } | native::Event::MessageError { .. });
                        yield sse::stored(&event);
                        if last {
                            break;
                        }
                    }
                    Err(e) => {
                        yield sse::error(&ApiError::internal(e));
                        break;
                    }
                }
            }
        };
        return Ok(sse::response(stream));
    }

    if request.is_async {
        let accepted = native::PromptAccepted {
            prompt_id: ticket.prompt_id,
            session_id: id.to_string(),
            status: if ticket.queue_position == 0 { "running" } else { "queued" }.into(),
            queue_position: ticket.queue_position,
        };
        return Ok((StatusCode::ACCEPTED, Json(accepted)).into_response());
    }

    match ticket.outcome.await {
        Ok(PromptOutcome::Complete(message)) => Ok(Json(wire::message(&message)).into_response()),
        Ok(PromptOutcome::Failed(e)) => Err(e.into()),
        Ok(PromptOutcome::Cancelled) | Err(_) => Err(ApiError::cancelled()),
        Ok(PromptOutcome::Store(e)) => Err(e.into()),
    }
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::CancelResult>, ApiError> {
    let (cancelled, dropped) = state.engine.cancel(&SessionId::from_string(id.clone())).await?;
    Ok(Json(native::CancelResult { session_id: id, cancelled, dropped }))
}

pub(crate) async fn clear(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::Session>, ApiError> {
    let session = state.engine.clear_session(&SessionId::from_string(id)).await?;
    Ok(Json(view(&state, &session)))
}
