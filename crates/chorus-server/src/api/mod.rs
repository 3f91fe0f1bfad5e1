//! chorus's native API under `/api/v1`: health and info, sessions (CRUD,
//! prompt, cancel, clear, messages), their event streams, agents, tools
//! (list, execute, permission answers), the MCP servers whose tools join them, and the
//! model pool (`models`: states, load, unload; `pull`: downloads with progress), and the
//! mobile API (`mobile`: one conversation per device).
//! Also the simple agent API for scripts (`POST /request`, `POST /clear`).
//! Session work is the engine's; these handlers only translate.

mod agents;
mod events;
mod mcp;
mod mobile;
mod models;
mod pull;
mod sessions;
mod simple;
mod tools;

pub(crate) use sessions::prompt_options;

use axum::Router;
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::AppState;

/// The OpenAPI description of [`routes`], merged into the server's document by `crate::openapi`.
#[derive(OpenApi)]
#[openapi(paths(
    agents::info,
    agents::list,
    agents::retrieve,
    sessions::create,
    sessions::list,
    sessions::retrieve,
    sessions::update,
    sessions::delete,
    sessions::messages,
    sessions::prompt,
    sessions::cancel,
    sessions::clear,
    events::session,
    events::all,
    simple::request,
    simple::clear,
    tools::list,
    tools::execute,
    tools::reply,
    mcp::list,
    models::list,
    models::load,
    models::unload,
    pull::pull,
    mobile::chat,
    mobile::history,
))]
pub(crate) struct ApiDoc;

/// Routes that need an API key when the server has one.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/info", get(agents::info))
        .route("/info", get(agents::info))
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/{name}", get(agents::retrieve))
        .route("/api/v1/sessions", post(sessions::create).get(sessions::list))
        .route("/api/v1/sessions/{id}", get(sessions::retrieve).patch(sessions::update).delete(sessions::delete))
        .route("/api/v1/sessions/{id}/messages", get(sessions::messages))
        .route("/api/v1/sessions/{id}/prompt", post(sessions::prompt))
        .route("/api/v1/sessions/{id}/cancel", post(sessions::cancel))
        .route("/api/v1/sessions/{id}/clear", post(sessions::clear))
        .route("/api/v1/sessions/{id}/events", get(events::session))
        .route("/api/v1/events", get(events::all))
        .route("/api/v1/tools", get(tools::list))
        .route("/api/v1/tools/{name}/execute", post(tools::execute))
        .route("/api/v1/sessions/{id}/permissions/{request_id}", post(tools::reply))
        .route("/api/v1/mcp/servers", get(mcp::list))
        .route("/api/v1/models", get(models::list))
        .route("/api/v1/models/{id}/load", post(models::load))
        .route("/api/v1/models/{id}/unload", post(models::unload))
        .route("/api/v1/models/pull", post(pull::pull))
        .route("/api/v1/mobile/chat", post(mobile::chat))
        .route("/api/v1/mobile/history", get(mobile::history))
        .route("/request", post(simple::request))
        .route("/clear", post(simple::clear))
}
