//! The error object every OpenAI-compatible endpoint answers with
//! (`{"error": {"message", "type", "param", "code"}}`, OpenAI: `ErrorResponse`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// The `error` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub message: String,
    /// Stable class: `invalid_request_error`, `authentication_error`, `not_found_error`, `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// Stable code for programs, such as `model_not_found`.
    pub code: Option<String>,
    /// With type `exceed_context_size_error` (llama-server's): the prompt's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_prompt_tokens: Option<u32>,
    /// With type `exceed_context_size_error`: the context of one slot, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_ctx: Option<u32>,
}
