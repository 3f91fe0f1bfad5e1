//! The mobile API, the AI Tester seed's MobileAPI: `POST /api/v1/mobile/chat` `{device_id,
//! text, stream?}` → `{text, session_id}` and `GET /api/v1/mobile/history?device_id=`, in the
//! compact wire types of `chorus_proto::mobile`. Each device has its own session
//! (`Engine::device_session`), so two phones never share a context. A phone app has no way to
//! answer a tool's permission request, so its prompts are answered without tools
//! (`tool_choice: none` for the first round).

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chorus_engine::EventFilter;
use chorus_engine::Role;
use chorus_proto::mobile::{ChatChunk, ChatRequest, ChatResponse, History, HistoryMessage, HistoryQuery};
use chorus_proto::native::{self, Event};
use chorus_proto::openai::{ErrorBody, ErrorResponse, ToolChoice, ToolChoiceMode};
use futures::StreamExt;

use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

/// The longest `device_id`, in characters.
const MAX_DEVICE_ID_CHARS: usize = 128;

fn check_device(device_id: &str) -> Result<&str, ApiError> {
    let id = device_id.trim();
    if id.is_empty() || id.chars().count() > MAX_DEVICE_ID_CHARS || id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            Some("device_id".into()),
            format!("`device_id` must be 1 to {MAX_DEVICE_ID_CHARS} characters without control characters"),
        ));
    }
    Ok(id)
}

/// Chat from a phone
///
/// Sends `text` to the device's own conversation (created on its first message) and answers
/// with the assistant's text. With `stream: true` the answer comes as server-sent events:
/// `data: {"text": CHUNK}` as it is generated, then `data: {"text": WHOLE, "session_id", "model",
/// "done": true}`; an error after the stream started is `data: {"error": {…}}`.
#[utoipa::path(
    post,
    path = "/api/v1/mobile/chat",
    operation_id = "mobileChat",
    tag = "mobile",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The answer (`application/json`), or with `stream: true` its \
            pieces and then the whole answer (`text/event-stream`)",
            content((ChatResponse = "application/json"), (ChatChunk = "text/event-stream"))),
        (status = 400, description = "Invalid body: a bad `device_id`, empty `text`, or a prompt \
            longer than the context", body = ErrorResponse),
        (status = 409, description = "The prompt was cancelled (from another client on the device's \
            session)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn chat(
    State(state): State<AppState>,
    AppJson(request): AppJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let device_id = check_device(&request.device_id)?;
    let session = state.engine.device_session(device_id).await?;
    let session_id = session.id.to_string();
    let no_tools = Some(ToolChoice::Mode(ToolChoiceMode::None));
    let options = super::prompt_options(native::Priority::Normal, None, false, no_tools);
    let events =
        request.stream.then(|| state.engine.events().subscribe(EventFilter::Session(session.id.clone()), None));
    let ticket = state.engine.prompt(&session.id, request.text, options).await?;

    let Some(events) = events else {
        let message = super::sessions::outcome(ticket.outcome).await?;
        let model = chorus_engine::wire::message(&message).metadata.and_then(|m| m.model);
        return Ok(Json(ChatResponse { text: message.content, session_id, model, done: false }).into_response());
    };
    let stream = super::sessions::prompt_events(&state, events, ticket.prompt_id).filter_map(move |event| {
        let sse = match event {
            Err(e) => Some(sse::error(&e)),
            Ok(event) => match &event.event {
                Event::MessageChunk { content, .. } => Some(sse::json(&ChatChunk { text: content.clone() })),
                Event::MessageComplete { message, .. } => {
                    let model = message.metadata.as_ref().and_then(|m| m.model.clone());
                    let text = message.content.clone();
                    Some(sse::json(&ChatResponse { text, session_id: session_id.clone(), model, done: true }))
                }
                Event::MessageError { error, .. } => {
                    let body = ErrorBody {
                        message: error.message.clone(),
                        kind: error.kind.clone(),
                        param: None,
                        code: error.code.clone(),
                        n_prompt_tokens: None,
                        n_ctx: None,
                    };
                    Some(sse::json(&ErrorResponse { error: body }))
                }
                _ => None,
            },
        };
        std::future::ready(sse)
    });
    Ok(sse::response(stream))
}

/// A phone's conversation
///
/// The device's user and assistant messages, oldest first, as `{role, text, ts}`; an empty list
/// for a device that has not chatted yet.
#[utoipa::path(
    get,
    path = "/api/v1/mobile/history",
    operation_id = "mobileHistory",
    tag = "mobile",
    params(HistoryQuery),
    responses(
        (status = 200, description = "The device's conversation", body = History),
        (status = 400, description = "A missing or bad `device_id`", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::invalid(Some("device_id".into()), "`device_id` is required: ?device_id=ID"))?;
    let device_id = check_device(&query.device_id)?;
    let id = chorus_engine::device_session_id(device_id);
    let messages = match state.engine.store().session(&id).await? {
        Some(_) => state.engine.store().messages(&id).await?,
        None => Vec::new(),
    };
    let messages = messages
        .into_iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant) && !m.content.is_empty())
        .map(|m| HistoryMessage { role: m.role.as_str().to_owned(), text: m.content, ts: m.created_at })
        .collect();
    Ok(Json(History { session_id: id.to_string(), messages }))
}
