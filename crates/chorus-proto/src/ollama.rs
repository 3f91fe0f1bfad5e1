//! Ollama's API (Ollama `docs/api.md`), the subset its clients use: `GET /api/version`,
//! `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `POST /api/chat`, `POST /api/generate`,
//! `POST /api/embed`, the legacy `POST /api/embeddings`, `POST /api/pull`, `DELETE
//! /api/delete` and `POST /api/copy`, with Ollama's field names. Streams are NDJSON (one JSON
//! object per line); durations are in nanoseconds; times are RFC 3339 strings; errors are
//! `{"error": "…"}` ([`ErrorResponse`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::openai::{KeepAlive, Tool};

/// `GET /api/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Version {
    /// The Ollama API version these routes follow (not chorus's own version).
    pub version: String,
}

/// An error on an Ollama route, and a failure inside an NDJSON stream (its last line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// What went wrong, for a person.
    pub error: String,
}

/// A model's description (`details` in `/api/tags`, `/api/show`, `/api/ps`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct ModelDetails {
    /// The model it was made from; empty.
    pub parent_model: String,
    /// The file format: `gguf`.
    pub format: String,
    /// GGUF `general.architecture` (`qwen2`, `llama`, `gemma3`, …).
    pub family: String,
    /// `[family]`.
    pub families: Option<Vec<String>>,
    /// Parameters, as Ollama writes them: `494.03M`, `7.6B`; empty when the file does not say.
    pub parameter_size: String,
    /// The weights' quantization: `Q4_K_M`, `Q8_0`, `F16`, …; empty when the file does not say.
    pub quantization_level: String,
}

/// One model of `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListModel {
    /// Its Ollama name, `NAME:TAG` (chorus ids without a tag get `:latest`).
    pub name: String,
    /// The same as `name`.
    pub model: String,
    /// When its file was last modified (RFC 3339).
    pub modified_at: String,
    /// Its file's size in bytes.
    pub size: u64,
    /// A SHA-256 (64 hex digits) that names this model's registration: its source, file size
    /// and modification time (not the file's content hash, which would mean reading gigabytes).
    pub digest: String,
    /// Its description.
    pub details: ModelDetails,
}

/// `GET /api/tags`: every model the server answers with, loaded or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListResponse {
    /// The models.
    pub models: Vec<ListModel>,
}

/// One loaded model of `GET /api/ps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunningModel {
    /// Its Ollama name.
    pub name: String,
    /// The same as `name`.
    pub model: String,
    /// Bytes it takes in memory (weights, KV cache, compute buffers).
    pub size: u64,
    /// As in [`ListModel::digest`].
    pub digest: String,
    /// Its description.
    pub details: ModelDetails,
    /// When it unloads unless used before (RFC 3339); far in the future when it stays.
    pub expires_at: String,
    /// Bytes of it in GPU memory (0 on a CPU build).
    pub size_vram: u64,
    /// Tokens one request can hold (its slot's context, `n_ctx_slot`).
    pub context_length: u32,
}

/// `GET /api/ps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProcessResponse {
    /// The loaded models.
    pub models: Vec<RunningModel>,
}

/// `POST /api/show`, `DELETE /api/delete`, `POST /api/pull`: a model named by `model` or the
/// older `name`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ModelRequest {
    /// The model's name.
    #[serde(default)]
    pub model: Option<String>,
    /// The older name of `model`.
    #[serde(default)]
    pub name: Option<String>,
    /// `/api/show`: include the tokenizer's arrays in `model_info` (they are always left
    /// out here).
    #[serde(default)]
    pub verbose: Option<bool>,
    /// `/api/pull`: stream progress lines (default true).
    #[serde(default)]
    pub stream: Option<bool>,
    /// `/api/pull`: allow plain HTTP to the registry (the hub endpoint decides that here).
    #[serde(default)]
    pub insecure: Option<bool>,
}

/// `POST /api/show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShowResponse {
    /// A Modelfile that describes the model (`FROM`, `PARAMETER` lines).
    pub modelfile: String,
    /// The server's default sampling parameters, one `name value` per line.
    pub parameters: String,
    /// The model's chat template (Jinja, as in the GGUF file; Ollama's own models carry Go
    /// templates).
    pub template: String,
    /// Its description.
    pub details: ModelDetails,
    /// The GGUF metadata (`general.architecture`, `general.parameter_count`,
    /// `{arch}.context_length`, …), without the tokenizer's arrays.
    pub model_info: serde_json::Map<String, Value>,
    /// What it can do: `completion`, `tools`, `insert`, `embedding`.
    pub capabilities: Vec<String>,
    /// When its file was last modified (RFC 3339).
    pub modified_at: String,
}

/// A tool call in a chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    /// The function and its arguments.
    pub function: ToolCallFunction,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallFunction {
    /// Its position among the message's calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The function's name.
    pub name: String,
    /// Its arguments, as a JSON object (not a string, unlike OpenAI's).
    #[serde(default)]
    pub arguments: Value,
}

/// A message of `/api/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Its text (in a stream: this chunk's text).
    #[serde(default)]
    pub content: String,
    /// Thinking text (thinking models only; chorus serves none, so it is never sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Base64 images (multimodal models; refused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// The calls an assistant message makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// A `tool` message: the function whose result it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

/// `format`: `"json"` or a JSON schema the answer must follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Format {
    /// `"json"` (any JSON object), or `""` (no constraint).
    Named(String),
    /// A JSON schema.
    Schema(serde_json::Map<String, Value>),
}

/// `options`: Ollama's runtime parameters (Modelfile `PARAMETER`s). The load-time ones
/// (`num_gpu`, `num_thread`, `use_mmap`, …) and those the sampler lacks (`mirostat`,
/// `tfs_z`, `typical_p`) are accepted and have no effect.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Options {
    /// Sampling temperature; 0 is greedy.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Top-k; 0 disables.
    #[serde(default)]
    pub top_k: Option<i32>,
    /// Nucleus threshold.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Min-p.
    #[serde(default)]
    pub min_p: Option<f32>,
    /// Most tokens to generate; -1: no limit, -2: until the context is full.
    #[serde(default)]
    pub num_predict: Option<i64>,
    /// The context window of this request, in tokens: the prompt and answer together stay
    /// within it (and within the model's slot).
    #[serde(default)]
    pub num_ctx: Option<i64>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    /// RNG seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Repeat penalty; 1 disables.
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Tokens the penalties look back over; 0 disables, -1 is the whole context.
    #[serde(default)]
    pub repeat_last_n: Option<i32>,
    /// Presence penalty.
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Every other option, accepted without effect.
    #[serde(flatten)]
    #[schema(ignore)]
    pub other: serde_json::Map<String, Value>,
}

/// `POST /api/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// The model's name.
    pub model: String,
    /// The conversation; none only loads (or, with `keep_alive: 0`, unloads) the model.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Functions the model may call.
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// The answer's shape.
    #[serde(default)]
    pub format: Option<Format>,
    /// Runtime parameters.
    #[serde(default)]
    pub options: Option<Options>,
    /// Stream NDJSON chunks (default true).
    #[serde(default)]
    pub stream: Option<bool>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
    /// Thinking (thinking models only: `true` is refused here, `false` accepted).
    #[serde(default)]
    pub think: Option<Value>,
}

/// `POST /api/chat`'s answer, or one line of its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatResponse {
    /// The model's name as requested.
    pub model: String,
    /// When this chunk was made (RFC 3339).
    pub created_at: String,
    /// The answer (in a stream: this chunk's part of it).
    pub message: Message,
    /// Whether this is the last line.
    pub done: bool,
    /// The last line's counters.
    #[serde(flatten)]
    pub end: Option<Done>,
}

/// The last line's reason and counters; durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Done {
    /// `stop`, `length`, `load` (no messages: the model was loaded) or `unload`.
    pub done_reason: String,
    /// The whole request.
    pub total_duration: u64,
    /// Waiting for the model to load.
    pub load_duration: u64,
    /// Prompt tokens evaluated (cached ones included).
    pub prompt_eval_count: u32,
    /// Evaluating the prompt.
    pub prompt_eval_duration: u64,
    /// Tokens generated.
    pub eval_count: u32,
    /// Generating them.
    pub eval_duration: u64,
}

/// `POST /api/generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenerateRequest {
    /// The model's name.
    pub model: String,
    /// The prompt; none or empty only loads (or unloads) the model.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Text after the answer: fill-in-the-middle (models with FIM tokens).
    #[serde(default)]
    pub suffix: Option<String>,
    /// A system message for the chat template.
    #[serde(default)]
    pub system: Option<String>,
    /// A prompt template; only the model's own is used here, so a non-empty one is refused.
    #[serde(default)]
    pub template: Option<String>,
    /// The `context` of an earlier answer: the tokens it continues.
    #[serde(default)]
    pub context: Option<Vec<i32>>,
    /// Send the prompt as it is, without the chat template.
    #[serde(default)]
    pub raw: Option<bool>,
    /// The answer's shape.
    #[serde(default)]
    pub format: Option<Format>,
    /// Runtime parameters.
    #[serde(default)]
    pub options: Option<Options>,
    /// Stream NDJSON chunks (default true).
    #[serde(default)]
    pub stream: Option<bool>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
    /// Base64 images (multimodal models; refused here).
    #[serde(default)]
    pub images: Option<Vec<String>>,
    /// As in [`ChatRequest::think`].
    #[serde(default)]
    pub think: Option<Value>,
}

/// `POST /api/generate`'s answer, or one line of its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenerateResponse {
    /// The model's name as requested.
    pub model: String,
    /// When this chunk was made (RFC 3339).
    pub created_at: String,
    /// The answer (in a stream: this chunk's part).
    pub response: String,
    /// Whether this is the last line.
    pub done: bool,
    /// The last line: the prompt's and answer's tokens, to pass as the next request's
    /// `context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<i32>>,
    /// The last line's counters.
    #[serde(flatten)]
    pub end: Option<Done>,
}

/// `input` of `/api/embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbedInput {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `POST /api/embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbedRequest {
    /// The model's name.
    pub model: String,
    /// The text or texts.
    pub input: EmbedInput,
    /// Cut inputs longer than the model's context (default true); false makes them an error.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Keep only this many leading dimensions (then normalized again).
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// Runtime parameters (none affects embeddings).
    #[serde(default)]
    pub options: Option<Options>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
}

/// `POST /api/embed`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbedResponse {
    /// The model's name as requested.
    pub model: String,
    /// One L2-normalized vector per input, in order.
    pub embeddings: Vec<Vec<f32>>,
    /// The whole request, in nanoseconds.
    pub total_duration: u64,
    /// Waiting for the model to load, in nanoseconds.
    pub load_duration: u64,
    /// Tokens of all inputs.
    pub prompt_eval_count: u32,
}

/// `POST /api/embeddings` (the older route).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// The model's name.
    pub model: String,
    /// The text.
    #[serde(default)]
    pub prompt: String,
    /// Runtime parameters (none affects embeddings).
    #[serde(default)]
    pub options: Option<Options>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
}

/// `POST /api/embeddings`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// The vector (L2-normalized, as `/api/embed`'s).
    pub embedding: Vec<f32>,
}

/// `POST /api/copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CopyRequest {
    /// The model copied.
    pub source: String,
    /// The new name.
    pub destination: String,
}

/// One line of `/api/pull`'s progress: `pulling manifest`, `pulling DIGEST` with `digest`,
/// `total` and `completed` bytes, `verifying sha256 digest`, `writing manifest`, `success`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgressResponse {
    /// What is happening.
    pub status: String,
    /// The file being downloaded (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Bytes of it downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}
