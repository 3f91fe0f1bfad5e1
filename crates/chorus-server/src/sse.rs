//! Server-sent events as OpenAI streams them: `data: {json}` events, an error
//! object as an event when a stream fails after it started, and `data: [DONE]`
//! last. Shared by the chat and completion routes; and the native API's
//! logged events with their ids.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Serialize;

use crate::ApiError;

/// One JSON event.
pub(crate) fn json<T: Serialize>(value: &T) -> Event {
    match Event::default().json_data(value) {
        Ok(event) => event,
        Err(e) => error(&ApiError::internal(e)),
    }
}

/// An error inside a started stream (the status line is already sent).
pub(crate) fn error(e: &ApiError) -> Event {
    Event::default().data(serde_json::to_string(&e.body()).unwrap_or_default())
}

/// A logged event of the native API: `id:` (its log id), `event:` (its type)
/// and `data:` the [`chorus_proto::native::Event`] as JSON, serialized here, once.
pub(crate) fn logged(event: &chorus_engine::LoggedEvent) -> Event {
    let sse = Event::default().event(event.event.kind());
    // An unlogged event has no id a client could resume from.
    let sse = if event.id == chorus_engine::events::UNLOGGED { sse } else { sse.id(event.id.to_string()) };
    match sse.json_data(&event.event) {
        Ok(sse) => sse,
        Err(e) => error(&ApiError::internal(e)),
    }
}

/// The terminator every OpenAI stream ends with.
pub(crate) fn done() -> Event {
    Event::default().data("[DONE]")
}

/// The error sent when the server ends a stream at shutdown.
pub(crate) fn shutting_down() -> ApiError {
    ApiError::unavailable()
}

/// An SSE response with keep-alive comments.
pub(crate) fn response(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    use futures::StreamExt;
    Sse::new(events.map(Ok::<_, Infallible>)).keep_alive(KeepAlive::default()).into_response()
}
