//! The OpenAI-compatible routes under `/v1`: chat completions, completions,
//! embeddings and models. Conversion from wire types to the engine's request type is in
//! [`convert`]; response shaping is in each route's module.

mod chat;
mod completions;
mod convert;
mod embeddings;
mod models;

pub(crate) use chat::usage_wire;
pub(crate) use convert::{keep_alive, max_tokens, messages, tool_choice};

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::AppState;

/// The OpenAPI description of [`routes`], merged into the server's document by `crate::openapi`.
#[derive(OpenApi)]
#[openapi(paths(chat::create, completions::create, embeddings::create, models::list, models::retrieve))]
pub(crate) struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::create))
        .route("/v1/completions", post(completions::create))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::retrieve))
}

/// Unix time in seconds, for `created`.
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `system_fingerprint`: changes when the server version or the model changes.
fn fingerprint(model: &str) -> String {
    format!("chorus-{}-{model}", env!("CARGO_PKG_VERSION"))
}

/// What every response and chunk of one request repeats: `id`, `created`,
/// `model` and `system_fingerprint`.
struct ResponseMeta {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

impl ResponseMeta {
    /// A fresh id with OpenAI's prefix (`chatcmpl`, `cmpl`), created now.
    fn new(prefix: &str, model: String) -> Self {
        Self {
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: unix_now(),
            fingerprint: fingerprint(&model),
            model,
        }
    }
}
