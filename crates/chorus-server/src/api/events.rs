//! The event streams: `GET /api/v1/events` (every session) and
//! `GET /api/v1/sessions/{id}/events` (one), as SSE with `id:` lines. A client
//! that sends `Last-Event-ID` (as EventSource does when it reconnects) first
//! gets every event it missed from the log, then the live ones.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chorus_engine::EventFilter;
use chorus_engine::store::SessionId;
use chorus_proto::native;
use chorus_proto::openai::ErrorResponse;
use futures::StreamExt;

use crate::{ApiError, AppState, sse};

/// The `Last-Event-ID` header as an event id.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(None) };
    value.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|id| *id >= 0).map(Some).ok_or_else(|| {
        ApiError::invalid(Some("Last-Event-ID".into()), "`Last-Event-ID` must be an event id (a non-negative integer)")
    })
}

fn stream(state: &AppState, filter: EventFilter, after: Option<i64>) -> Response {
    let events = state.engine.events().subscribe(filter, after).take_until(state.abort.clone().cancelled_owned());
    sse::response(events.map(|event| match event {
        Ok(event) => sse::logged(&event),
        Err(e) => sse::error(&ApiError::internal(e)),
    }))
}

/// Watch every session's events
///
/// Server-sent events, one per logged event: `id:` its log id, `event:` its type, `data:` the
/// `Event`. With `Last-Event-ID` (EventSource sends it when it reconnects) the events after
/// that id are replayed from the log first, then the live ones follow.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "streamEvents",
    tag = "events",
    params(("Last-Event-ID" = Option<i64>, Header, description = "Replay the events after this log id first")),
    responses(
        (status = 200, description = "The event stream", body = native::Event, content_type = "text/event-stream"),
        (status = 400, description = "`Last-Event-ID` is not an event id", body = ErrorResponse),
    )
)]
pub(crate) async fn all(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let after = last_event_id(&headers)?;
    Ok(stream(&state, EventFilter::All, after))
}

/// Watch one session's events
///
/// As `GET /api/v1/events`, for the events of one session.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/events",
    operation_id = "streamSessionEvents",
    tag = "events",
    params(
        ("id" = String, Path, description = "The session's id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Replay the events after this log id first"),
    ),
    responses(
        (status = 200, description = "The event stream", body = native::Event, content_type = "text/event-stream"),
        (status = 400, description = "`Last-Event-ID` is not an event id", body = ErrorResponse),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers)?;
    let id = SessionId::from_string(id);
    state.engine.session(&id).await?;
    Ok(stream(&state, EventFilter::Session(id), after))
}
