//! The native models API: `GET /api/v1/models` (every registered model and where it stands
//! in the pool), `POST /api/v1/models/{id}/load` and `POST /api/v1/models/{id}/unload`
//! (`chorus models load|unload`).

use std::time::UNIX_EPOCH;

use axum::Json;
use axum::extract::{Path, State};
use chorus_engine::{ModelState, ModelStatus};
use chorus_proto::models::{self as wire, LoadRequest, ModelEntry, ModelEntryList, ModelSlots};
use chorus_proto::openai::ErrorResponse;

use crate::openai::keep_alive;
use crate::{ApiError, AppState};

/// A model's state on the wire, with its slots' use while it is loaded.
pub(crate) fn entry(engine: &chorus_engine::Engine, m: &ModelState) -> ModelEntry {
    let slots = engine.pool().loaded(&m.id).map(|backend| {
        let stats = backend.stats();
        ModelSlots { total: stats.slots_total, busy: stats.slots_busy }
    });
    ModelEntry {
        id: m.id.clone(),
        aliases: m.aliases.clone(),
        source: m.source.clone(),
        capabilities: m.capabilities.clone(),
        status: match m.status {
            ModelStatus::Unloaded => wire::ModelStatus::Unloaded,
            ModelStatus::Loading => wire::ModelStatus::Loading,
            ModelStatus::Loaded => wire::ModelStatus::Loaded,
            ModelStatus::Failed => wire::ModelStatus::Failed,
        },
        bytes: m.bytes,
        pinned: m.pinned,
        in_flight: m.in_flight as u32,
        slots,
        n_ctx: m.info.as_ref().map(|i| i.n_ctx),
        expires_at: m.expires_at.map(rfc3339),
        last_error: m.last_error.clone(),
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::<chrono::Utc>::from_timestamp(d.as_secs() as i64, d.subsec_nanos())
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// List the models and their state
///
/// Every registered model, loaded or not, with its status (`unloaded`, `loading`, `loaded`,
/// `failed`), the bytes it takes, its slots, when it unloads (`expires_at`) and its last
/// error; and the pool's memory budget and use.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    operation_id = "listModelStates",
    tag = "models",
    responses((status = 200, description = "The models", body = ModelEntryList))
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<ModelEntryList> {
    let engine = &state.engine;
    let data = engine.models().iter().map(|m| entry(engine, m)).collect();
    Json(ModelEntryList {
        object: "list".into(),
        data,
        memory_budget: engine.pool().config().memory_budget,
        memory_used: engine.pool().used_bytes(),
    })
}

/// Load a model
///
/// Loads it now (unloading idle models to make room) and answers when it is ready; it then
/// stays `keep_alive` once idle (its own keep_alive when absent).
#[utoipa::path(
    post,
    path = "/api/v1/models/{id}/load",
    operation_id = "loadModel",
    tag = "models",
    params(("id" = String, Path, description = "The model's id or alias")),
    request_body(content = LoadRequest, description = "Optional"),
    responses(
        (status = 200, description = "It is loaded", body = ModelEntry),
        (status = 404, description = "No such model", body = ErrorResponse),
        (status = 503, description = "No room now (`model_busy`, with `Retry-After`), or the load failed", body = ErrorResponse),
    )
)]
pub(crate) async fn load(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ModelEntry>, ApiError> {
    let request: LoadRequest =
        if body.iter().all(u8::is_ascii_whitespace) { LoadRequest::default() } else { crate::extract::parse(&body)? };
    let id = state.engine.resolve(Some(&id))?;
    state.engine.load_model(&id, keep_alive(request.keep_alive.as_ref())?).await?;
    one(&state, &id)
}

/// Unload a model
///
/// Unloads it now, or as soon as its requests in flight end, and answers when it is out of
/// memory.
#[utoipa::path(
    post,
    path = "/api/v1/models/{id}/unload",
    operation_id = "unloadModel",
    tag = "models",
    params(("id" = String, Path, description = "The model's id or alias")),
    responses(
        (status = 200, description = "It is unloaded", body = ModelEntry),
        (status = 404, description = "No such model", body = ErrorResponse),
    )
)]
pub(crate) async fn unload(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelEntry>, ApiError> {
    let id = state.engine.resolve(Some(&id))?;
    state.engine.unload_model(&id).await?;
    one(&state, &id)
}

fn one(state: &AppState, id: &str) -> Result<Json<ModelEntry>, ApiError> {
    let models = state.engine.models();
    let m = models.iter().find(|m| m.id == id).ok_or_else(|| ApiError::model_not_found(id))?;
    Ok(Json(entry(&state.engine, m)))
}
