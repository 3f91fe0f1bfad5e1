//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use chorus_engine::ModelInfo;
use chorus_proto::openai::{Model, ModelList, ObjectType};

use crate::{ApiError, AppState};

fn wire(m: &ModelInfo) -> Model {
    Model { id: m.id.clone(), object: ObjectType::Model, created: m.created, owned_by: "chorus".into() }
}

pub(super) async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let data = state.engine.models().iter().map(wire).collect();
    Json(ModelList { object: ObjectType::List, data })
}

pub(super) async fn retrieve(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Model>, ApiError> {
    let model = state.engine.model(Some(&id))?;
    Ok(Json(wire(model)))
}
