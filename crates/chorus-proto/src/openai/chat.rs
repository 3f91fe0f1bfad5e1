//! `POST /v1/chat/completions`: request, response and streamed chunk
//! (OpenAI: `CreateChatCompletionRequest`, `CreateChatCompletionResponse`,
//! `CreateChatCompletionStreamResponse`).

use serde::{Deserialize, Serialize};

use super::{FinishReason, ObjectType, SamplingFields, Stop, StreamOptions, Usage};

/// Body of `POST /v1/chat/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// An end-user id, for abuse monitoring upstream; recorded in logs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The author of a message (OpenAI: `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// `content` of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts; only `text` parts are supported.
    Parts(Vec<ContentPart>),
}

/// One content part of a message (OpenAI: `ChatCompletionRequestMessageContentPart*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        image_url: serde_json::Value,
    },
}

/// Body of a non-streamed chat completion (OpenAI: `CreateChatCompletionResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Position in `choices`.
    pub index: u32,
    /// The model's message.
    pub message: AssistantMessage,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Log probabilities: not computed, always `null`.
    pub logprobs: Option<serde_json::Value>,
}

/// The message of a [`ChatChoice`] (OpenAI: `ChatCompletionResponseMessage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: Role,
    /// The generated text.
    pub content: Option<String>,
    /// Refusal text: chorus models never refuse through this field, always `null`.
    pub refusal: Option<String>,
}

/// One server-sent event of a streamed chat completion (OpenAI: `CreateChatCompletionStreamResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub usage: ChunkUsage,
    /// As in [`ChatCompletion`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position in `choices`.
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Set on the last chunk of the choice, `null` before.
    pub finish_reason: Option<FinishReason>,
    /// Always `null`.
    pub logprobs: Option<serde_json::Value>,
}

/// `delta` of a [`ChunkChoice`] (OpenAI: `ChatCompletionStreamResponseDelta`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant` on the first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Text added by this chunk; never splits a UTF-8 character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}
