//! AI-to-AI conversations: `POST /api/v1/conversations` starts one (streamed as server-sent
//! events, or answered whole), `GET /api/v1/conversations/{session_id}` reads one back,
//! `POST /api/v1/conversations/{session_id}/cancel` stops one. The engine runs them
//! (`chorus_engine::character::conversation`); these handlers only translate.
//!
//! A conversation belongs to its session, not to the connection that started it: a client that
//! disconnects does not stop it, and every exchange is stored (`GET …/conversations/{id}`, or
//! the session's messages) and published as a `conversation.exchange` event.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use chorus_engine::character::conversation::{ConversationSpec, ConversationUpdate};
use chorus_engine::store::SessionId;
use chorus_proto::character::{Conversation, ConversationRequest, Exchange};
use chorus_proto::native::CancelResult;
use chorus_proto::openai::ErrorResponse;
use serde::Serialize;

use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

/// The first event of a streamed conversation.
#[derive(Debug, Serialize)]
struct Started<'a> {
    session_id: String,
    participants: &'a [String],
    topic: &'a str,
}

/// A named SSE event with a JSON body.
fn named<T: Serialize>(name: &'static str, value: &T) -> SseEvent {
    sse::json(value).event(name)
}

/// Start an AI-to-AI conversation
///
/// Two to eight participants, each a character of the characters directory (`character`) or
/// an ad-hoc personality (`name` and `personality`), talk about `topic`, one message each in
/// turn, `turns` messages in all (default 6, at most 100), each at most `max_tokens` tokens
/// (default 160, at most 2048). Each participant speaks with its `model`, else its card's,
/// else the server's default.
///
/// The conversation is stored in a new session (`Conversation: TOPIC`): its messages are the
/// opener (`Let's talk about: TOPIC`) and one `assistant` message per exchange with the
/// speaker in `metadata.name`. Every exchange is also published on the session's event stream
/// as `conversation.exchange`.
///
/// With `stream: true` the answer is server-sent events: first `event: conversation`
/// (`{session_id, participants, topic}`), then one `event: exchange` per message (an
/// `Exchange`), on failure an `event: error` (an `ErrorResponse`), then `event: done` with the
/// `Conversation`, and `data: [DONE]` last. Without it, the answer is the `Conversation` once it
/// ends. A client that disconnects does not stop the conversation (it goes on and is stored);
/// `POST /api/v1/conversations/{session_id}/cancel` does.
#[utoipa::path(
    post,
    path = "/api/v1/conversations",
    operation_id = "startConversation",
    tag = "conversations",
    request_body = ConversationRequest,
    responses(
        (status = 200, description = "The finished conversation (`application/json`), or with `stream: true` its \
            events (`text/event-stream`: `conversation`, `exchange`…, `done`)",
            content((Conversation = "application/json"), (Exchange = "text/event-stream"))),
        (status = 400, description = "Invalid body, naming the field (`participants[1].personality`, `topic`, \
            `turns`, an unknown `participants[0].character`, …)", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
        (status = 413, description = "The body is over the server's limit", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 503, description = "Without `stream`: the model cannot take work", body = ErrorResponse),
    )
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    AppJson(request): AppJson<ConversationRequest>,
) -> Result<Response, ApiError> {
    let stream = request.stream;
    let mut handle = state.engine.start_conversation(ConversationSpec::from(request)).await?;
    if !stream {
        // Dropping this future (the client left) leaves the conversation running.
        while let Some(update) = handle.updates.recv().await {
            if let ConversationUpdate::End { conversation, error } = update {
                return match error {
                    Some(e) => Err(e.into()),
                    None => Ok(Json(conversation).into_response()),
                };
            }
        }
        return Err(ApiError::internal("a conversation's task ended without its end"));
    }
    let abort = state.abort.clone();
    let events = async_stream::stream! {
        let started = Started {
            session_id: handle.session_id.to_string(),
            participants: &handle.participants,
            topic: &handle.topic,
        };
        yield named("conversation", &started);
        loop {
            let update = tokio::select! {
                biased;
                () = abort.cancelled() => {
                    yield sse::error(&sse::shutting_down());
                    break;
                }
                update = handle.updates.recv() => update,
            };
            match update {
                Some(ConversationUpdate::Exchange(exchange)) => yield named("exchange", &exchange),
                Some(ConversationUpdate::End { conversation, error }) => {
                    if let Some(e) = error {
                        yield sse::error(&ApiError::from(e)).event("error");
                    }
                    yield named("done", &conversation);
                    break;
                }
                None => {
                    yield sse::error(&ApiError::internal("a conversation's task ended without its end")).event("error");
                    break;
                }
            }
        }
        yield sse::done();
    };
    Ok(sse::response(events))
}

/// Retrieve a conversation
///
/// Read back from its session's messages; `status` is `running` while it runs, then
/// `completed`, `cancelled` or `error`.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{session_id}",
    operation_id = "retrieveConversation",
    tag = "conversations",
    params(("session_id" = String, Path, description = "The conversation's session")),
    responses(
        (status = 200, description = "The conversation so far", body = Conversation),
        (status = 404, description = "No such session (`session_not_found`), or it holds no conversation \
            (`not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    match state.engine.conversation(&SessionId::from_string(session_id.clone())).await? {
        Some(conversation) => Ok(Json(conversation)),
        None => Err(ApiError::not_found(
            "conversation",
            format!("session {session_id} holds no conversation (POST /api/v1/conversations starts one)"),
        )),
    }
}

/// Stop a conversation
///
/// The exchange in progress is dropped; the ones made stay stored, and the conversation's
/// status becomes `cancelled`. `cancelled` is false when none was running (it had ended).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{session_id}/cancel",
    operation_id = "cancelConversation",
    tag = "conversations",
    params(("session_id" = String, Path, description = "The conversation's session")),
    responses(
        (status = 200, description = "Whether it was running", body = CancelResult),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Result<Json<CancelResult>, ApiError> {
    let id = SessionId::from_string(session_id.clone());
    state.engine.session(&id).await?;
    let cancelled = state.engine.stop_conversation(&id);
    Ok(Json(CancelResult { session_id, cancelled, dropped: 0 }))
}
