//! chorus's native API under `/api/v1`: health and info, sessions (CRUD,
//! prompt, cancel, clear, messages), their event streams, agents, tools
//! (list, execute, permission answers), the MCP servers whose tools join them, and the
//! model pool (`models`: states, load, unload; `pull`: downloads with progress), and the
//! mobile API (`mobile`: one conversation per device), and AI-to-AI conversations
//! (`conversations`), and characters (`characters`: cards, chat turns, vitals, snapshots,
//! memories).
//! Also the simple agent API for scripts (`POST /request`, `POST /clear`).
//! Session work is the engine's; these handlers only translate.

mod agents;
pub(crate) mod characters;
mod conversations;
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
use axum::routing::{get, post, put};
use utoipa::OpenApi;

use crate::AppState;

/// The OpenAPI description of [`routes`], merged into the server's document by `crate::openapi`.
#[derive(OpenApi)]
#[openapi(
    paths(
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
        conversations::start,
        conversations::retrieve,
        conversations::cancel,
        characters::list,
        characters::import,
        characters::retrieve,
        characters::export,
        characters::delete,
        characters::chat,
        characters::status,
        characters::set_vital,
        characters::save,
        characters::load,
        characters::reset,
        characters::snapshots,
        characters::snapshot,
        characters::memories,
        characters::search,
        characters::edit_memory,
        characters::forget_memory,
        characters::create_session,
    ),
    components(schemas(chorus_proto::character::CharacterWsResponse, chorus_proto::character::CharacterInit,))
)]
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
        .route("/api/v1/conversations", post(conversations::start))
        .route("/api/v1/conversations/{session_id}", get(conversations::retrieve))
        .route("/api/v1/conversations/{session_id}/cancel", post(conversations::cancel))
        .route("/api/v1/characters", get(characters::list).post(characters::import))
        .route("/api/v1/characters/{id}", get(characters::retrieve).delete(characters::delete))
        .route("/api/v1/characters/{id}/export", get(characters::export))
        .route("/api/v1/characters/{id}/chat", post(characters::chat))
        .route("/api/v1/characters/{id}/status", get(characters::status))
        .route("/api/v1/characters/{id}/vitals/{name}", put(characters::set_vital))
        .route("/api/v1/characters/{id}/save", post(characters::save))
        .route("/api/v1/characters/{id}/load", post(characters::load))
        .route("/api/v1/characters/{id}/reset", post(characters::reset))
        .route("/api/v1/characters/{id}/snapshots", get(characters::snapshots))
        .route("/api/v1/characters/{id}/snapshots/{name}", get(characters::snapshot))
        .route("/api/v1/characters/{id}/memories", get(characters::memories))
        .route("/api/v1/characters/{id}/memories/search", post(characters::search))
        .route(
            "/api/v1/characters/{id}/memories/{memory_id}",
            axum::routing::patch(characters::edit_memory).delete(characters::forget_memory),
        )
        .route("/api/v1/characters/{id}/sessions", post(characters::create_session))
        .route("/request", post(simple::request))
        .route("/clear", post(simple::clear))
}
