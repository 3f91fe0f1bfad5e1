//! The content router on the wire: the decision (`x-chorus-route`, the `route` of a session's
//! message metadata and of the `route.decided` event) and `POST /api/v1/route`, the dry run.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the router decided for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Route {
    /// The category: `general`, `code`, `math`, `translation`, `image`, or one of the config's.
    pub category: String,
    /// The stage that decided: `endpoint`, `forced`, `rule`, `semantic`, `llm` or `default`.
    pub stage: String,
    /// The chosen category's semantic score (cosine similarity, -1 to 1), or 1 for a rule;
    /// `null` for the other stages.
    pub score: Option<f32>,
    /// How far the best semantic score led the second, when the semantic stage ran.
    pub margin: Option<f32>,
    /// The model that answers; `null` when no model serves the category (an `image` prompt
    /// on a server without an image model).
    pub model: Option<String>,
}

/// Body of `POST /api/v1/route`: `prompt`, or `messages` (the last user message is routed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteRequest {
    /// The text to route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A conversation, as in a chat completion request; its last `user` message is routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<crate::openai::ChatMessage>>,
    /// A category to force (name or alias): the answer shows where it would go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// Answer of `POST /api/v1/route` (and the MCP `route` tool's structured result): the decision a
/// request would get, and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
pub struct RouteResponse {
    /// The category.
    pub category: String,
    /// The stage that decided.
    pub stage: String,
    /// As [`Route::score`].
    pub score: Option<f32>,
    /// As [`Route::margin`].
    pub margin: Option<f32>,
    /// As [`Route::model`].
    pub model: Option<String>,
    /// Every category's semantic score by name, when the semantic stage ran (a category
    /// without examples has none).
    #[serde(default)]
    pub scores: std::collections::BTreeMap<String, f32>,
    /// Milliseconds the router took, measured in the server.
    pub elapsed_ms: f64,
    /// The `x-chorus-route` header a request routed this way gets.
    pub header: String,
}
