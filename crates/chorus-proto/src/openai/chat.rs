//! `POST /v1/chat/completions`: request, response and streamed chunk
//! (OpenAI: `CreateChatCompletionRequest`, `CreateChatCompletionResponse`,
//! `CreateChatCompletionStreamResponse`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FinishReason, ObjectType, SamplingFields, Stop, StreamOptions, Usage};

/// Body of `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// Model id from `GET /v1/models`; when absent the loaded model answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation so far; at least one message.
    pub messages: Vec<ChatMessage>,
    /// Deprecated by OpenAI in favour of `max_completion_tokens`; the most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// The most tokens to generate; wins over `max_tokens` when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    /// Sampling options.
    #[serde(flatten)]
    pub sampling: SamplingFields,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Stream the answer as server-sent events, ending with `data: [DONE]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Options of the stream; only with `stream: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// How many choices to generate; only 1 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// Return each output token's log-probability in `choices[].logprobs.content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// With `logprobs`, this many most likely tokens at each position, 0 to 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    /// An end-user id, for abuse monitoring upstream; recorded in logs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Functions the model may call (at most 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool the model must call; `auto` when tools are given, else `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may make several calls in one answer. Accepted; a forced call is
    /// always exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The shape of the answer: `text`, `json_object` or `json_schema`. The JSON formats are
    /// enforced by a grammar, so the answer always parses (unless cut by `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// What this prompt continues (OpenAI's `prompt_cache_key`, 1 to 256 bytes here): a free
    /// slot that last served the key is preferred, and the sequence's KV cache is kept on disk
    /// under it (`--cache-disk`), so the key's next prompt resumes, even after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// llama-server's `cache_prompt` (default true): reuse cached prompt tokens; false
    /// recomputes the whole prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prompt: Option<bool>,
    /// llama-server's `json_schema`: answer JSON following this schema (as `response_format`
    /// `json_schema` does; `response_format` wins when both are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub json_schema: Option<serde_json::Value>,
    /// llama-server's `grammar`: answer text of this GBNF grammar (llama.cpp's format, start
    /// rule `root`); not with `response_format` JSON or `json_schema`. An invalid grammar is a
    /// 400 on `grammar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
    /// How long the model stays loaded after this request (Ollama's `keep_alive`): a duration
    /// such as `"5m"`, seconds, `0` to unload it once answered, negative to keep it; the
    /// server's `--keep-alive-max` caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<super::KeepAlive>,
    /// chorus: with `model` absent or `"auto"`, the router's category for this request
    /// (`general`, `code`, `math`, `translation`, `image`, or an alias such as TBot's
    /// `code_generation`), instead of the one its classifier would choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// vLLM's and transformers' `add_generation_prompt` (default true): `false` renders the
    /// messages without the template's generation prompt. Not `true` together with
    /// `continue_final_message` (a 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_generation_prompt: Option<bool>,
    /// vLLM's `continue_final_message` (default false): the model continues the last message,
    /// which must be the assistant's (prefill), instead of answering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_final_message: Option<bool>,
    /// llama-server's `timings_per_token` (default false): with `stream: true`, every chunk
    /// that adds text also carries `timings` so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings_per_token: Option<bool>,
    /// OpenAI's `service_tier`: accepted and ignored (chorus has one tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// OpenAI's `store` (stored completions for evals and distillation): accepted; chorus
    /// stores no completions (sessions are its stored conversations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
}

/// `"function"`, the only tool type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolType {
    /// A function tool.
    Function,
}

/// One entry of `tools` (OpenAI: `ChatCompletionTool`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: ToolType,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function the model may call (OpenAI: `FunctionObject`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDefinition {
    /// 1 to 64 of `a-z A-Z 0-9 _ -`.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON schema object of the arguments; none means no arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// Follow the schema exactly (chorus constrains every forced call by its schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice` (OpenAI: `ChatCompletionToolChoiceOption`): a mode or a named function.
/// Anything else fails to deserialize with a message that lists the accepted forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged, expecting = r#""none", "auto", "required" or {"type": "function", "function": {"name": …}}"#)]
pub enum ToolChoice {
    /// `"none"`, `"auto"` or `"required"`.
    Mode(ToolChoiceMode),
    /// `{"type": "function", "function": {"name": …}}`.
    Named(NamedToolChoice),
}

/// The string forms of `tool_choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceMode {
    /// Never call a tool.
    None,
    /// The model decides.
    Auto,
    /// Call at least one tool.
    Required,
}

/// `tool_choice` naming a function (OpenAI: `ChatCompletionNamedToolChoice`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: ToolType,
    /// The function to call.
    pub function: FunctionName,
}

/// `{"name": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionName {
    /// The function's name.
    pub name: String,
}

/// `response_format` (OpenAI: `ResponseFormatText`, `ResponseFormatJsonObject`, `ResponseFormatJsonSchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object; with `schema` (llama-server's extension), JSON following it.
    JsonObject {
        /// A JSON schema (not OpenAI's: llama-server's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        schema: Option<serde_json::Value>,
    },
    /// JSON following a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// `response_format.json_schema` (OpenAI: `JSONSchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JsonSchemaFormat {
    /// The format's name, 1 to 64 of `a-z A-Z 0-9 _ -` (OpenAI requires it; chorus, as
    /// llama-server, takes a schema without one).
    #[serde(default)]
    pub name: String,
    /// What the format is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema; none means any JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// Follow the schema exactly (always the case in chorus: the grammar enforces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A call the model made (OpenAI: `ChatCompletionMessageToolCall`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    /// The call's id; the `role: tool` message with its result names it in `tool_call_id`.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: ToolType,
    /// The function and its arguments.
    pub function: FunctionCall,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
}

/// A streamed piece of a tool call (OpenAI: `ChatCompletionMessageToolCallChunk`). The first
/// piece of a call carries `id`, `type` and `function.name`; chorus sends each call whole, in
/// one piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallChunk {
    /// Position of the call in the answer's `tool_calls`.
    pub index: u32,
    /// The call's id (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Always `function` (first piece).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolType>,
    /// Name and arguments text added by this piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallChunk>,
}

/// The function part of a [`ToolCallChunk`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallChunk {
    /// The function's name (first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Arguments text to append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// The author of a message (OpenAI: `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// Instructions from the developer (OpenAI's newer name for `system`).
    Developer,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role as the chat template sees it (`developer` becomes `system`).
    pub fn template_name(self) -> &'static str {
        match self {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of `messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text: a string or an array of content parts. `null` is allowed for
    /// assistant messages (OpenAI allows it when `tool_calls` is set).
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `role: tool`, the id of the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `role: assistant`, the calls it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

impl ChatMessage {
    /// A message with a role and plain text.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(MessageContent::Text(text.into())),
            name: None,
            tool_call_id: None,
            tool_calls: None,
        }
    }
}

/// `content` of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts; only `text` parts are supported.
    Parts(Vec<ContentPart>),
}

/// One content part of a message (OpenAI: `ChatCompletionRequestMessageContentPart*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// `{"type": "text", "text": "…"}`.
    Text {
        /// The text.
        text: String,
    },
    /// `{"type": "image_url", …}`: not supported by text models; answered with a 400.
    ImageUrl {
        /// The image reference as sent.
        #[schema(value_type = Object)]
        image_url: serde_json::Value,
    },
}

/// Body of a non-streamed chat completion (OpenAI: `CreateChatCompletionResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-…`, unique per request.
    pub id: String,
    /// Always `"chat.completion"`.
    pub object: ObjectType,
    /// Unix time in seconds when the request was received.
    pub created: u64,
    /// Id of the model that answered.
    pub model: String,
    /// The answers; one, as `n` is 1.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: Usage,
    /// Identifies the backend configuration (chorus version and model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// How long it took (not OpenAI's: llama-server adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<crate::llama::Timings>,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    /// Position in `choices`.
    pub index: u32,
    /// The model's message.
    pub message: AssistantMessage,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// With `logprobs: true`, each output token's log-probability; `null` otherwise.
    pub logprobs: Option<ChoiceLogprobs>,
}

/// `choices[].logprobs` (OpenAI: the `logprobs` of `CreateChatCompletionResponse.choices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChoiceLogprobs {
    /// One entry per output token, in order (streamed: this chunk's tokens).
    pub content: Option<Vec<TokenLogprob>>,
    /// Refusal tokens: chorus models never refuse through this field, always `null`.
    pub refusal: Option<Vec<TokenLogprob>>,
}

/// One output token's log-probability (OpenAI: `ChatCompletionTokenLogprob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenLogprob {
    /// The token's text (its bytes, invalid UTF-8 replaced).
    pub token: String,
    /// Its log-probability (natural log, at most 0) under the model's distribution.
    pub logprob: f64,
    /// Its UTF-8 bytes (a token may hold part of a character).
    pub bytes: Option<Vec<u8>>,
    /// The most likely tokens at this position, most likely first (`top_logprobs` of them).
    pub top_logprobs: Vec<TopLogprob>,
}

/// One of the most likely tokens at a position (OpenAI: `ChatCompletionTokenLogprob.top_logprobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f64,
    /// Its UTF-8 bytes.
    pub bytes: Option<Vec<u8>>,
}

/// The message of a [`ChatChoice`] (OpenAI: `ChatCompletionResponseMessage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: Role,
    /// The generated text.
    pub content: Option<String>,
    /// Refusal text: chorus models never refuse through this field, always `null`.
    pub refusal: Option<String>,
    /// The calls the model made; absent when it made none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One server-sent event of a streamed chat completion (OpenAI: `CreateChatCompletionStreamResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    /// The same for every chunk of one request.
    pub id: String,
    /// Always `"chat.completion.chunk"`.
    pub object: ObjectType,
    /// Unix time in seconds, the same for every chunk.
    pub created: u64,
    /// Id of the model that answers.
    pub model: String,
    /// Deltas; empty in the final usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// `null` on every chunk but the last when `stream_options.include_usage`
    /// is set; absent otherwise.
    #[serde(default, skip_serializing_if = "ChunkUsage::is_absent")]
    #[schema(value_type = Option<Usage>)]
    pub usage: ChunkUsage,
    /// As in [`ChatCompletion`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// On the chunk with `finish_reason` and the usage chunk: as in [`ChatCompletion`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<crate::llama::Timings>,
}

/// `usage` of a streamed chunk: absent, `null`, or the counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Option<Usage>", into = "Option<Usage>")]
pub enum ChunkUsage {
    /// The field is left out (no `include_usage`).
    #[default]
    Absent,
    /// `"usage": null` (`include_usage`, not the last chunk).
    Null,
    /// The final counts.
    Counts(Usage),
}

impl ChunkUsage {
    /// True when the field is left out of the JSON.
    pub fn is_absent(&self) -> bool {
        matches!(self, ChunkUsage::Absent)
    }
}

impl From<Option<Usage>> for ChunkUsage {
    fn from(value: Option<Usage>) -> Self {
        value.map_or(ChunkUsage::Null, ChunkUsage::Counts)
    }
}

impl From<ChunkUsage> for Option<Usage> {
    fn from(value: ChunkUsage) -> Self {
        match value {
            ChunkUsage::Counts(u) => Some(u),
            ChunkUsage::Absent | ChunkUsage::Null => None,
        }
    }
}

/// One choice of a [`ChatCompletionChunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    /// Position in `choices`.
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Set on the last chunk of the choice, `null` before.
    pub finish_reason: Option<FinishReason>,
    /// With `logprobs: true`, the log-probabilities of this chunk's tokens; `null` otherwise.
    pub logprobs: Option<ChoiceLogprobs>,
}

/// `delta` of a [`ChunkChoice`] (OpenAI: `ChatCompletionStreamResponseDelta`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
pub struct Delta {
    /// `assistant` on the first chunk only.
    #[serde(default)]
    pub role: Option<Role>,
    /// Text added by this chunk; never splits a UTF-8 character. `null` on the first chunk
    /// (the one with `role`), as llama-server sends it; absent on others without text.
    #[serde(default)]
    pub content: Option<String>,
    /// Tool calls added by this chunk.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallChunk>>,
}

impl Serialize for Delta {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if let Some(role) = &self.role {
            map.serialize_entry("role", role)?;
        }
        if self.content.is_some() || self.role.is_some() {
            map.serialize_entry("content", &self.content)?;
        }
        if let Some(calls) = &self.tool_calls {
            map.serialize_entry("tool_calls", calls)?;
        }
        map.end()
    }
}
