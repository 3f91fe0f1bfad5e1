//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use chorus_engine::ModelState;
use chorus_proto::openai::{ErrorResponse, Model, ModelList, ObjectType};

use crate::{ApiError, AppState};

fn wire(m: &ModelState) -> Model {
    let created = m.info.as_ref().map_or(0, |i| i.created);
    Model {
        id: m.id.clone(),
        object: ObjectType::Model,
        created,
        owned_by: "chorus".into(),
        aliases: m.aliases.clone(),
    }
}

/// List the models
///
/// Every model this server answers with, loaded or not (the first request for one loads
/// it); pass an `id` as `model`. `created` is when it was loaded (0 while not loaded).
#[utoipa::path(
    get,
    path = "/v1/models",
    operation_id = "listModels",
    tag = "openai",
    responses((status = 200, description = "The registered models", body = ModelList))
)]
pub(super) async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let data = state.engine.models().iter().map(wire).collect();
    Json(ModelList { object: ObjectType::List, data })
}

/// Retrieve a model
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    operation_id = "retrieveModel",
    tag = "openai",
    params(("id" = String, Path, description = "The model's id, as `GET /v1/models` lists it")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
    )
)]
pub(super) async fn retrieve(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Model>, ApiError> {
    let id = state.engine.resolve(Some(&id))?;
    let models = state.engine.models();
    let model = models.iter().find(|m| m.id == id).ok_or(chorus_engine::EngineError::ModelNotFound(id.clone()))?;
    Ok(Json(wire(model)))
}
