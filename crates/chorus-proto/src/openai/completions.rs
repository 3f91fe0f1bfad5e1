//! `POST /v1/completions`: the legacy text completion API (OpenAI:
//! `CreateCompletionRequest`, `CreateCompletionResponse`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FinishReason, ObjectType, SamplingFields, Stop, StreamOptions, Usage};

/// Body of `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionRequest {
    /// Model id from `GET /v1/models`; when absent the loaded model answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The prompt: a string, or an array of strings (one choice per string, decoded together).
    pub prompt: Prompt,
    /// The most tokens to generate (OpenAI's default is 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
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
    /// Echo the prompt before the completion; with `logprobs`, its tokens come first in
    /// `logprobs` too, each scored after the ones before it (the first has `null`), and with
    /// `max_tokens: 0` only the prompt is answered (scoring a text, as lm-evaluation-harness
    /// does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// Choices per prompt, 1 (default) to 128; the choices of one prompt share its KV cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// The log-probability of each generated token and of this many most likely tokens at its
    /// place, 0 to 20 (OpenAI allows 5), in each choice's `logprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<i64>,
    /// The text after the completion: the model fills the gap between `prompt` and `suffix`
    /// with its fill-in-the-middle tokens (a 400 for a model without them, such as a chat
    /// model that is not a code model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// An end-user id; recorded in logs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// llama-server's `cache_prompt` (default true): reuse cached prompt tokens; false
    /// recomputes the whole prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prompt: Option<bool>,
    /// llama-server's `grammar`: continue with text of this GBNF grammar (llama.cpp's format,
    /// start rule `root`). An invalid grammar is a 400 on `grammar`.
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
}

/// `prompt` of a [`CompletionRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    One(String),
    /// Several prompts, answered as `choices[i]` in order.
    Many(Vec<String>),
}

/// Body of a completion, and of each streamed completion event (OpenAI: `CreateCompletionResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Completion {
    /// `cmpl-…`, the same for every streamed event of one request.
    pub id: String,
    /// Always `"text_completion"`.
    pub object: ObjectType,
    /// Unix time in seconds when the request was received.
    pub created: u64,
    /// Id of the model that answered.
    pub model: String,
    /// One choice per prompt (streamed: the choices this event adds to).
    pub choices: Vec<CompletionChoice>,
    /// Token counts over all prompts; on streamed events only in the usage event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Identifies the backend configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// With `usage`, how long it took, over all prompts (not OpenAI's: llama-server adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<crate::llama::Timings>,
}

/// One choice of a [`Completion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionChoice {
    /// The generated text (streamed: the text this event adds).
    pub text: String,
    /// Which choice this is (prompt `p`'s `j`th of `n` is `p * n + j`).
    pub index: u32,
    /// With `logprobs`: the generated tokens and their log-probabilities (streamed: this
    /// event's tokens); otherwise `null`.
    pub logprobs: Option<CompletionLogprobs>,
    /// Why generation ended; `null` on streamed events before the last.
    pub finish_reason: Option<FinishReason>,
}

/// `logprobs` of a [`CompletionChoice`] (OpenAI: `CreateCompletionResponse.choices[].logprobs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionLogprobs {
    /// Each generated token's text (bytes that are not UTF-8 on their own are replaced).
    pub tokens: Vec<String>,
    /// Each token's log-probability (natural log); `null` for an echoed prompt's first token,
    /// which nothing before it scores.
    pub token_logprobs: Vec<Option<f64>>,
    /// At each token, the `logprobs` most likely tokens and their log-probabilities (`null`
    /// where `token_logprobs` is).
    pub top_logprobs: Vec<Option<std::collections::BTreeMap<String, f64>>>,
    /// Each token's offset in characters from the start of the prompt (so the first
    /// generated token's is the prompt's length).
    pub text_offset: Vec<u32>,
}
