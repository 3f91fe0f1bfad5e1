//! Session routes: create, list (with a title search), retrieve, update (title, model),
//! delete, messages, prompt (JSON, SSE or async), cancel and clear.
//!
//! A prompt belongs to its session, not to the connection that sent it: a
//! client that disconnects from a streamed or waiting prompt does not cancel
//! it (other clients may be watching); `POST …/cancel` does.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use chorus_engine::store::{Message, NewSession, SessionId, StoreError};
use chorus_engine::{EventFilter, LoggedEvent, Priority, PromptOptions, PromptOutcome, wire};
use chorus_proto::native;
use chorus_proto::openai::ErrorResponse;
use futures::{Stream, StreamExt};

use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

pub(crate) fn view(state: &AppState, session: &chorus_engine::store::Session) -> native::Session {
    wire::session(session, state.engine.queue_length(&session.id))
}

/// Create a session
///
/// Every field of the body is optional; an empty body creates a session with the defaults.
/// Announced as a `session.created` event.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    operation_id = "createSession",
    tag = "sessions",
    request_body(content = Option<native::CreateSessionRequest>, description = "The session's settings; may be empty"),
    responses(
        (status = 201, description = "The new session", body = native::Session),
        (status = 400, description = "Invalid body, or no such agent (`agent_not_found`)", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
        (status = 413, description = "The body is over the server's limit", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
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
        character: None,
    };
    if let Some(model) = &new.model {
        state.engine.resolve(Some(model))?;
    }
    let session = state.engine.create_session(new).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &session))))
}

/// `GET /api/v1/sessions`'s query.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only the sessions whose title contains this text (case-insensitive); all when absent or
    /// empty.
    #[serde(default)]
    q: Option<String>,
}

/// List the sessions
///
/// Most recently updated first; with `q`, only those whose title contains it.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    operation_id = "listSessions",
    tag = "sessions",
    params(ListQuery),
    responses(
        (status = 200, description = "The sessions", body = native::SessionList),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<native::SessionList>, ApiError> {
    let needle = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    let sessions = state.engine.store().list_sessions().await?;
    let data = sessions
        .iter()
        .filter(|s| needle.as_ref().is_none_or(|q| s.title.to_lowercase().contains(q)))
        .map(|s| view(&state, s))
        .collect();
    Ok(Json(native::SessionList { object: "list".into(), data }))
}

/// The longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// Update a session
///
/// Renames it (`title`) and/or changes the model of its next prompts (`model`: an id or alias,
/// `auto`, or `null` for the agent's model or the router's choice). Fields left out stay as
/// they are. Announced as a `session.updated` event.
#[utoipa::path(
    patch,
    path = "/api/v1/sessions/{id}",
    operation_id = "updateSession",
    tag = "sessions",
    params(("id" = String, Path, description = "The session's id")),
    request_body = native::UpdateSessionRequest,
    responses(
        (status = 200, description = "The session as it is now", body = native::Session),
        (status = 400, description = "Invalid body (such as a title over 200 characters)", body = ErrorResponse),
        (status = 404, description = "No such session (`session_not_found`), or no such model \
            (`model_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(request): AppJson<native::UpdateSessionRequest>,
) -> Result<Json<native::Session>, ApiError> {
    if request.title.as_ref().is_some_and(|t| t.trim().chars().count() > MAX_TITLE_CHARS) {
        return Err(ApiError::invalid(
            Some("title".into()),
            format!("`title` is longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    if let Some(Some(model)) = &request.model
        && model != "auto"
    {
        state.engine.resolve(Some(model))?;
    }
    let id = SessionId::from_string(id);
    let session = state.engine.update_session(&id, request.title, request.model).await?;
    Ok(Json(view(&state, &session)))
}

/// Retrieve a session
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}",
    operation_id = "retrieveSession",
    tag = "sessions",
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session", body = native::Session),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::Session>, ApiError> {
    let session = state.engine.session(&SessionId::from_string(id)).await?;
    Ok(Json(view(&state, &session)))
}

/// Delete a session
///
/// Cancels its running prompt, drops its queue and deletes its messages; announced as a
/// `session.deleted` event. Its events stay in the log.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}",
    operation_id = "deleteSession",
    tag = "sessions",
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session is deleted", body = native::Deleted),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::Deleted>, ApiError> {
    state.engine.delete_session(&SessionId::from_string(id.clone())).await?;
    Ok(Json(native::Deleted { id, object: "session".into(), deleted: true }))
}

/// List a session's messages
///
/// Oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/messages",
    operation_id = "listMessages",
    tag = "sessions",
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The messages", body = native::MessageList),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::MessageList>, ApiError> {
    let id = SessionId::from_string(id);
    state.engine.session(&id).await?;
    let messages = state.engine.store().messages(&id).await?;
    Ok(Json(native::MessageList { object: "list".into(), data: messages.iter().map(wire::message).collect() }))
}

/// Send a prompt to a session
///
/// The prompt joins the session's queue (`high` priority before `normal`). The answer is, as
/// the body asks: the stored assistant message once it is complete (JSON); with `stream: true`,
/// this prompt's events as server-sent events, ending with `message.complete` or
/// `message.error`; with `async: true`, `202` at once with the queue position, the answer then
/// arriving as events (`GET /api/v1/sessions/{id}/events`). A client that disconnects does not
/// cancel the prompt; `POST /api/v1/sessions/{id}/cancel` does.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{id}/prompt",
    operation_id = "promptSession",
    tag = "sessions",
    params(("id" = String, Path, description = "The session's id")),
    request_body = native::PromptRequest,
    responses(
        (status = 200, description = "The stored answer (`application/json`), or with `stream: true` this prompt's \
            events (`text/event-stream`: `id:` the event's log id, `event:` its type, `data:` an `Event`)",
            content((native::Message = "application/json"), (native::Event = "text/event-stream"))),
        (status = 202, description = "With `async: true`: the prompt is queued", body = native::PromptAccepted),
        (status = 400, description = "Invalid body (such as empty `content`, `stream` with `async`, \
            `max_tokens: 0`), or a prompt longer than the context", body = ErrorResponse),
        (status = 404, description = "No such session (`session_not_found`), or no such model \
            (`model_not_found`)", body = ErrorResponse),
        (status = 409, description = "The prompt was cancelled before it was answered (`cancelled`)", body = ErrorResponse),
        (status = 413, description = "The body is over the server's limit", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 503, description = "The model cannot take work (shutting down)", body = ErrorResponse),
    )
)]
pub(crate) async fn prompt(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(request): AppJson<native::PromptRequest>,
) -> Result<Response, ApiError> {
    answer(&state, SessionId::from_string(id), request).await
}

/// The engine's options for a prompt's wire fields (HTTP body or WebSocket
/// payload); the engine checks them (`Engine::prompt`).
pub(crate) fn prompt_options(
    priority: native::Priority,
    max_tokens: Option<u32>,
    ignore_eos: bool,
    tool_choice: Option<chorus_proto::openai::ToolChoice>,
) -> PromptOptions {
    let priority = match priority {
        native::Priority::Normal => Priority::Normal,
        native::Priority::High => Priority::High,
    };
    PromptOptions {
        priority,
        max_tokens,
        ignore_eos,
        tool_choice: crate::openai::tool_choice(tool_choice),
        user_name: None,
    }
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
    let options = prompt_options(request.priority, request.max_tokens, request.ignore_eos, request.tool_choice);
    // Subscribe before queueing, so the stream cannot miss the prompt's first event.
    let events = request.stream.then(|| state.engine.events().subscribe(EventFilter::Session(id.clone()), None));
    let ticket = state.engine.prompt(&id, request.content, options).await?;

    if let Some(events) = events {
        let stream = prompt_events(state, events, ticket.prompt_id).map(|event| match event {
            Ok(event) => sse::logged(&event),
            Err(e) => sse::error(&e),
        });
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

    let message = outcome(ticket.outcome).await?;
    Ok(Json(wire::message(&message)).into_response())
}

/// One prompt's events from a subscription taken before it was queued: the others are skipped,
/// and the stream ends after its `message.complete` or `message.error`, after a failed read
/// (that error last), or when the server ends its streams at shutdown.
pub(crate) fn prompt_events(
    state: &AppState,
    events: impl Stream<Item = Result<Arc<LoggedEvent>, StoreError>> + Send + 'static,
    prompt_id: String,
) -> impl Stream<Item = Result<Arc<LoggedEvent>, ApiError>> + Send + 'static {
    let abort = state.abort.clone();
    async_stream::stream! {
        let events = events.take_until(abort.cancelled_owned());
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if event.event.prompt_id() != Some(prompt_id.as_str()) {
                        continue;
                    }
                    let last = matches!(event.event, native::Event::MessageComplete { .. } | native::Event::MessageError { .. });
                    yield Ok(event);
                    if last {
                        break;
                    }
                }
                Err(e) => {
                    yield Err(ApiError::internal(e));
                    break;
                }
            }
        }
    }
}

/// What a prompt waited for came to: its stored answer, or the error to send (`cancelled` when
/// it was cancelled, or its runner went away).
pub(crate) async fn outcome(outcome: tokio::sync::oneshot::Receiver<PromptOutcome>) -> Result<Message, ApiError> {
    match outcome.await {
        Ok(PromptOutcome::Complete(message)) => Ok(message),
        Ok(PromptOutcome::Failed(e)) => Err(e.into()),
        Ok(PromptOutcome::Cancelled) | Err(_) => Err(ApiError::cancelled()),
        Ok(PromptOutcome::Store(e)) => Err(e.into()),
    }
}

/// Cancel a session's prompts
///
/// Cancels the running prompt (its partial answer is stored with `finish_reason: cancelled`)
/// and drops the queued ones.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{id}/cancel",
    operation_id = "cancelSession",
    tag = "sessions",
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = "What was cancelled", body = native::CancelResult),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::CancelResult>, ApiError> {
    let (cancelled, dropped) = state.engine.cancel(&SessionId::from_string(id.clone())).await?;
    Ok(Json(native::CancelResult { session_id: id, cancelled, dropped }))
}

/// Clear a session
///
/// Deletes its messages; refused while it answers a prompt.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{id}/clear",
    operation_id = "clearSession",
    tag = "sessions",
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session, now empty", body = native::Session),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorResponse),
        (status = 409, description = "The session is answering a prompt (`session_busy`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn clear(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<native::Session>, ApiError> {
    let session = state.engine.clear_session(&SessionId::from_string(id)).await?;
    Ok(Json(view(&state, &session)))
}
