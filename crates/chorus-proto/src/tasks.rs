//! The task endpoints of TBot's Conductor (`POST /generate`, `/code/completion`,
//! `/code/generation`, `/translate`, `/math/solve`), which the AI Tester seed's `/generate`
//! (with `max_gen` and `from`) shares. Requests are read leniently (unknown fields such as
//! TBot's `extra_params` are ignored); answers carry both TBot's `response` and the seeds'
//! `text`.
//!
//! Streamed (`stream: true`), each is server-sent events: `data: {"chunk": "…", "category",
//! "model"}` per piece, then `data: {…the whole answer…, "done": true}`; an error is a
//! `data:` line holding OpenAI's error object.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::openai::Usage;

/// Sampling and length fields every task request takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskOptions {
    /// The model; absent: the router's choice for the endpoint's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// The AI Tester seed's name for `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gen: Option<i64>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Who is asking (the AI Tester seed's `from`); logged, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// TBot's conversation id; accepted and echoed, the endpoints keep no history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `POST /generate`: a prompt, routed by content unless `category` (or `model`) says where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenerateTaskRequest {
    /// The prompt (required, not empty).
    #[serde(default)]
    pub prompt: Option<String>,
    /// A category to force (name or alias, such as TBot's `code_generation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The rest.
    #[serde(flatten)]
    pub options: TaskOptions,
}

/// `POST /code/completion`: fill the gap between `prefix` and `suffix` with the code model's
/// fill-in-the-middle tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CodeCompletionRequest {
    /// The code before the gap (TBot's `prompt` is read as `prefix`).
    #[serde(default, alias = "prompt")]
    pub prefix: Option<String>,
    /// The code after the gap; may be empty.
    #[serde(default)]
    pub suffix: Option<String>,
    /// The rest.
    #[serde(flatten)]
    pub options: TaskOptions,
}

/// `POST /code/generation`: an instruction, answered with code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CodeGenerationRequest {
    /// What to write (TBot's `prompt`).
    #[serde(default, alias = "prompt")]
    pub instruction: Option<String>,
    /// The programming language, when it matters (TBot's `language`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The rest.
    #[serde(flatten)]
    pub options: TaskOptions,
}

/// `POST /translate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TranslateRequest {
    /// The text to translate (required, not empty; TBot's `prompt` is read as `text`).
    #[serde(default, alias = "prompt")]
    pub text: Option<String>,
    /// The language to translate into (required), such as `French` or `fr`.
    #[serde(default)]
    pub target_lang: Option<String>,
    /// The text's language; the model tells it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_lang: Option<String>,
    /// The rest.
    #[serde(flatten)]
    pub options: TaskOptions,
}

/// `POST /math/solve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MathSolveRequest {
    /// The problem (required, not empty; TBot's `prompt` is read as `problem`).
    #[serde(default, alias = "prompt")]
    pub problem: Option<String>,
    /// The rest.
    #[serde(flatten)]
    pub options: TaskOptions,
}

/// What every task answer carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskResponse {
    /// The model's text.
    pub text: String,
    /// The same text, under TBot's name.
    pub response: String,
    /// The model that answered.
    pub model: String,
    /// The router category that answered.
    pub category: String,
    /// Who answered: the model's id (the AI Tester seed's `from`).
    pub from: String,
    /// How the category was chosen.
    pub route: crate::route::Route,
    /// `stop` or `length`.
    pub finish_reason: String,
    /// Token counts.
    pub usage: Usage,
    /// Seconds from the request to the last token (TBot's `generation_time`).
    pub generation_time: f64,
    /// Tokens generated (TBot's `tokens_generated`).
    pub tokens_generated: u32,
    /// TBot's conversation id, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `/code/generation`: the first fenced code block of `text`, without its fence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `/translate`: the translation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<String>,
    /// `/translate`: the source language, as given or as the model named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_lang: Option<String>,
    /// `/translate`: the target language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_lang: Option<String>,
    /// `/math/solve`: the final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// `/math/solve`: the steps that lead to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
}

/// One streamed piece of a task answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskChunk {
    /// The text it adds.
    pub chunk: String,
    /// The category answering.
    pub category: String,
    /// The model answering.
    pub model: String,
}
