//! The simple agent API for scripts: `POST /request` `{prompt, stream,
//! async}` and `POST /clear`, acting on the default session (`ses_default`,
//! created on first use). Answers are those of
//! `POST /api/v1/sessions/{id}/prompt` and `…/clear`.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use chorus_proto::native;
use chorus_proto::openai::ErrorResponse;

use crate::extract::AppJson;
use crate::{ApiError, AppState};

/// Prompt the default session
///
/// The simple agent API for scripts: a prompt for the default session (`ses_default`, created
/// on first use), answered as `POST /api/v1/sessions/{id}/prompt` answers.
#[utoipa::path(
    post,
    path = "/request",
    operation_id = "promptDefaultSession",
    tag = "sessions",
    request_body = native::AgentRequest,
    responses(
        (status = 200, description = "The stored answer (`application/json`), or with `stream: true` this prompt's \
            events (`text/event-stream`)",
            content((native::Message = "application/json"), (native::Event = "text/event-stream"))),
        (status = 202, description = "With `async: true`: the prompt is queued", body = native::PromptAccepted),
        (status = 400, description = "Invalid body, or a prompt longer than the context", body = ErrorResponse),
        (status = 409, description = "The prompt was cancelled before it was answered (`cancelled`)", body = ErrorResponse),
        (status = 413, description = "The body is over the server's limit", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 503, description = "The model cannot take work (shutting down)", body = ErrorResponse),
    )
)]
pub(crate) async fn request(
    State(state): State<AppState>,
    AppJson(request): AppJson<native::AgentRequest>,
) -> Result<Response, ApiError> {
    let session = state.engine.default_session().await?;
    let prompt = native::PromptRequest {
        content: request.prompt,
        stream: request.stream,
        is_async: request.is_async,
        priority: native::Priority::Normal,
        max_tokens: request.max_tokens,
        ignore_eos: false,
        tool_choice: None,
    };
    super::sessions::answer(&state, session.id, prompt).await
}

/// Clear the default session
///
/// Deletes the default session's messages; refused while it answers a prompt.
#[utoipa::path(
    post,
    path = "/clear",
    operation_id = "clearDefaultSession",
    tag = "sessions",
    responses(
        (status = 200, description = "The default session, now empty", body = native::Session),
        (status = 409, description = "The session is answering a prompt (`session_busy`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn clear(State(state): State<AppState>) -> Result<Json<native::Session>, ApiError> {
    let session = state.engine.default_session().await?;
    let session = state.engine.clear_session(&session.id).await?;
    Ok(Json(super::sessions::view(&state, &session)))
}
