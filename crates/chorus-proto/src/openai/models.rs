//! `GET /v1/models` and `GET /v1/models/{id}` (OpenAI: `ListModelsResponse`, `Model`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ObjectType;

/// A model the server can answer with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    /// The id to pass as `model`.
    pub id: String,
    /// Always `"model"`.
    pub object: ObjectType,
    /// Unix time in seconds when the model was loaded.
    pub created: u64,
    /// Always `"chorus"`.
    pub owned_by: String,
    /// The model's other names, each also accepted as `model` (not OpenAI's: llama-server
    /// lists its `--alias` names here); omitted when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Body of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Always `"list"`.
    pub object: ObjectType,
    /// The models.
    pub data: Vec<Model>,
}
