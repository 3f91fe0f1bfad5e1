//! chorus's native API under `/api/v1`: health and info, sessions (CRUD,
//! prompt, cancel, clear, messages), their event streams, and agents.
//! Also the simple agent API for scripts (`POST /request`, `POST /clear`).
//! Session work is the engine's; these handlers only translate.

mod agents;
mod events;
mod sessions;
mod simple;

pub(crate) use sessions::prompt_options;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

/// Routes that need an API key when the server has one.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/info", get(agents::info))
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/{name}", get(agents::retrieve))
        .route("/api/v1/sessions", post(sessions::create).get(sessions::list))
        .route("/api/v1/sessions/{id}", get(sessions::retrieve).delete(sessions::delete))
        .route("/api/v1/sessions/{id}/messages", get(sessions::messages))
        .route("/api/v1/sessions/{id}/prompt", post(sessions::prompt))
        .route("/api/v1/sessions/{id}/cancel", post(sessions::cancel))
        .route("/api/v1/sessions/{id}/clear", post(sessions::clear))
        .route("/api/v1/sessions/{id}/events", get(events::session))
        .route("/api/v1/events", get(events::all))
        .route("/request", post(simple::request))
        .route("/clear", post(simple::clear))
}
