//! The simple agent API for scripts: `POST /request` `{prompt, stream,
//! async}` and `POST /clear`, acting on the default session (`ses_default`,
//! created on first use). Answers are those of
//! `POST /api/v1/sessions/{id}/prompt` and `…/clear`.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use chorus_proto::native;

use crate::extract::AppJson;
use crate::{ApiError, AppState};

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
    };
    super::sessions::answer(&state, session.id, prompt).await
}

pub(crate) async fn clear(State(state): State<AppState>) -> Result<Json<native::Session>, ApiError> {
    let session = state.engine.default_session().await?;
    let session = state.engine.clear_session(&session.id).await?;
    Ok(Json(super::sessions::view(&state, &session)))
}
