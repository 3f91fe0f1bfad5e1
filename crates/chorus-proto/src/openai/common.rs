//! Fields shared by chat completions and completions: sampling options,
//! `stop`, `stream_options`, `usage` and `finish_reason`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `stop`: up to 4 sequences where the API stops generating; the returned text
/// never contains them (OpenAI: `CreateChatCompletionRequest.stop`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list, in request order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// `stream_options` (OpenAI: `ChatCompletionStreamOptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// When true, one more chunk is streamed before `data: [DONE]` with an
    /// empty `choices` array and the request's `usage`; every other chunk then
    /// carries `"usage": null`.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling fields common to `/v1/chat/completions` and `/v1/completions`.
///
/// OpenAI's fields first, then llama.cpp's (`top_k`, `min_p`, `repeat_penalty`,
/// `ignore_eos`), with llama-server's meaning. Absent fields take llama-server's
/// defaults in the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SamplingFields {
    /// Sampling temperature, 0 to 2; 0 means greedy decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: keep the smallest set of tokens whose probability sum reaches `top_p` (0 to 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Keep only the `top_k` most likely tokens; 0 disables (llama.cpp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Drop tokens whose probability is below `min_p` times the most likely one's (llama.cpp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f64>,
    /// Seed of the sampler's random generator: the same seed and request give the same text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// -2 to 2: penalises tokens that already appeared, once each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// -2 to 2: penalises tokens in proportion to how often they appeared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Multiplicative repetition penalty over the last 64 tokens; 1.0 disables (llama.cpp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f64>,
    /// Map from token id (as a decimal string) to a bias from -100 to 100 added to its logit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    /// Keep generating past end-of-generation tokens (llama-server's `ignore_eos`; used by benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_eos: Option<bool>,
}

/// Why generation ended (OpenAI: `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token or a `stop` sequence.
    Stop,
    /// `max_tokens` or the context size was reached.
    Length,
    /// The model called tools.
    ToolCalls,
}

/// `usage` (OpenAI: `CompletionUsage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Tokens in the prompt (after the chat template).
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u32,
    /// Breakdown of the prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose KV cache was reused from an earlier request (prefix reuse).
    pub cached_tokens: u32,
}

/// Object type tag: serializes as a fixed string, used for the `object` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ObjectType {
    /// `"chat.completion"`.
    #[serde(rename = "chat.completion")]
    ChatCompletion,
    /// `"chat.completion.chunk"`.
    #[serde(rename = "chat.completion.chunk")]
    ChatCompletionChunk,
    /// `"text_completion"`.
    #[serde(rename = "text_completion")]
    TextCompletion,
    /// `"model"`.
    #[serde(rename = "model")]
    Model,
    /// `"list"`.
    #[serde(rename = "list")]
    List,
    /// `"embedding"`.
    #[serde(rename = "embedding")]
    Embedding,
}

/// Ollama's `keep_alive`: a number of seconds or a duration string (`"5m"`, `"1h"`, `"0"`,
/// `"-1"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum KeepAlive {
    /// Seconds; negative keeps the model loaded, 0 unloads it once answered.
    Seconds(f64),
    /// A duration such as `"10m"`, `"1h30m"`, `"45s"`, `"0"` or `"-1"`.
    Duration(String),
}
