//! llama-server's own endpoints that chorus serves as a drop-in, with
//! llama-server's field names (llama.cpp `tools/server/README.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /slots/{id_slot}?action=save|restore` (none for `erase`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlotActionRequest {
    /// A plain file name in the server's `--slot-save-path`.
    pub filename: String,
}

/// The answer to a slot action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SlotActionResponse {
    /// `action=save`.
    Save {
        /// The slot.
        id_slot: u32,
        /// The file written.
        filename: String,
        /// Tokens saved.
        n_saved: usize,
        /// Bytes written.
        n_written: usize,
        /// How long it took.
        timings: SaveTimings,
    },
    /// `action=restore`.
    Restore {
        /// The slot.
        id_slot: u32,
        /// The file read.
        filename: String,
        /// Tokens restored.
        n_restored: usize,
        /// Bytes read.
        n_read: usize,
        /// How long it took.
        timings: RestoreTimings,
    },
    /// `action=erase`.
    Erase {
        /// The slot.
        id_slot: u32,
        /// Tokens erased from its KV cache.
        n_erased: usize,
    },
}

/// `timings` of a save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SaveTimings {
    /// Milliseconds.
    pub save_ms: f64,
}

/// `timings` of a restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreTimings {
    /// Milliseconds.
    pub restore_ms: f64,
}

/// Body of `POST /tokenize` (llama-server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenizeRequest {
    /// The text to tokenize.
    pub content: String,
    /// Insert the special tokens the model wants around a text (its BOS token). Default false.
    #[serde(default)]
    pub add_special: bool,
    /// Turn special tokens written in the text (`<|im_start|>`) into those tokens; false
    /// tokenizes them as plain text. Default true.
    #[serde(default = "yes")]
    pub parse_special: bool,
    /// Answer `{id, piece}` objects instead of bare ids. Default false.
    #[serde(default)]
    pub with_pieces: bool,
    /// The model whose vocabulary to use (chorus: default, the server's default model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

fn yes() -> bool {
    true
}

/// The answer of `POST /tokenize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenizeResponse {
    /// The tokens, in order.
    pub tokens: Vec<TokenizedToken>,
}

/// One token of [`TokenizeResponse`]: its id, or with `with_pieces` its id and piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TokenizedToken {
    /// Without `with_pieces`.
    Id(i32),
    /// With `with_pieces`.
    WithPiece {
        /// Its id.
        id: i32,
        /// Its text.
        piece: Piece,
    },
}

/// A token's piece: a string when its bytes are valid UTF-8 on their own, else the bytes
/// (one byte of a multi-byte character, as llama-server answers for `á` split in two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Piece {
    /// Valid UTF-8.
    Text(String),
    /// Not valid UTF-8 on its own.
    Bytes(Vec<u8>),
}

/// Body of `POST /detokenize` (llama-server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetokenizeRequest {
    /// Token ids.
    pub tokens: Vec<i32>,
    /// The model whose vocabulary to use (chorus: default, the server's default model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The answer of `POST /detokenize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetokenizeResponse {
    /// The text of the tokens, special tokens written as their text.
    pub content: String,
}

/// The answer of `POST /apply-template` (llama-server): its body is a chat completion
/// request (`messages`, `tools`, `model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyTemplateResponse {
    /// The prompt the model's chat template renders, the generation prompt added.
    pub prompt: String,
}

/// The answer of `GET /props` (llama-server's global properties), for the default model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Props {
    /// The settings a `/completion` without options gets.
    pub default_generation_settings: GenerationSettings,
    /// Slots (`--parallel`).
    pub total_slots: u32,
    /// The model file (`--model`).
    pub model_path: String,
    /// The model's id (`--alias`, or the file stem).
    pub model_alias: String,
    /// The Jinja source of the model's chat template; empty for a base model without one.
    pub chat_template: String,
    /// Input kinds besides text: `{"vision": false, "audio": false}`.
    pub modalities: Modalities,
    /// `chorus-VERSION`.
    pub build_info: String,
    /// Always false: chorus unloads idle models instead (`--keep-alive`).
    pub is_sleeping: bool,
}

/// Input kinds besides text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Modalities {
    /// Images.
    pub vision: bool,
    /// Audio.
    pub audio: bool,
}

/// A slot's generation settings (`/props` `default_generation_settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenerationSettings {
    /// Tokens a slot holds, prompt and answer together.
    pub n_ctx: u32,
    /// Whether the slot is decoding.
    pub is_processing: bool,
    /// The sampling defaults.
    pub params: SamplingSettings,
}

/// Sampling settings with llama-server's names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SamplingSettings {
    /// Most tokens to generate; -1: until the context is full.
    pub n_predict: i64,
    /// The sampler seed; 4294967295 (`LLAMA_DEFAULT_SEED`): a random one per request.
    pub seed: u32,
    /// Temperature.
    pub temperature: f32,
    /// Top-k (0 disables).
    pub top_k: i32,
    /// Top-p (1 disables).
    pub top_p: f32,
    /// Min-p (0 disables).
    pub min_p: f32,
    /// Tokens the repeat penalty looks back over.
    pub repeat_last_n: i32,
    /// Repeat penalty (1 disables).
    pub repeat_penalty: f32,
    /// Presence penalty.
    pub presence_penalty: f32,
    /// Frequency penalty.
    pub frequency_penalty: f32,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens.
    pub ignore_eos: bool,
}

/// How long a generation took (llama-server's `timings`, added to its `/completion` answers
/// and to OpenAI responses: the body, the streamed chunk with `finish_reason`, and the usage
/// chunk).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Timings {
    /// Prompt tokens whose KV cache was reused.
    pub cache_n: u32,
    /// Prompt tokens evaluated (the prompt less `cache_n`).
    pub prompt_n: u32,
    /// Milliseconds evaluating them, up to the first sampled token.
    pub prompt_ms: f64,
    /// `prompt_ms / prompt_n`.
    pub prompt_per_token_ms: f64,
    /// Prompt tokens per second.
    pub prompt_per_second: f64,
    /// Tokens generated.
    pub predicted_n: u32,
    /// Milliseconds from the first sampled token to the last.
    pub predicted_ms: f64,
    /// `predicted_ms / predicted_n`.
    pub predicted_per_token_ms: f64,
    /// Tokens generated per second.
    pub predicted_per_second: f64,
}

impl Timings {
    /// The timings of `prompt_n` evaluated prompt tokens in `prompt_ms` and `predicted_n`
    /// generated ones in `predicted_ms`; rates are 0 where nothing was measured.
    pub fn new(cache_n: u32, prompt_n: u32, prompt_ms: f64, predicted_n: u32, predicted_ms: f64) -> Self {
        let per_token = |ms: f64, n: u32| if n == 0 { 0.0 } else { ms / f64::from(n) };
        let per_second = |ms: f64, n: u32| if ms <= 0.0 { 0.0 } else { 1000.0 * f64::from(n) / ms };
        Self {
            cache_n,
            prompt_n,
            prompt_ms,
            prompt_per_token_ms: per_token(prompt_ms, prompt_n),
            prompt_per_second: per_second(prompt_ms, prompt_n),
            predicted_n,
            predicted_ms,
            predicted_per_token_ms: per_token(predicted_ms, predicted_n),
            predicted_per_second: per_second(predicted_ms, predicted_n),
        }
    }
}

/// Body of `POST /completion` (llama-server's native completion). Fields absent take the
/// server's defaults, which are llama-server's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NativeCompletionRequest {
    /// A string; token ids; a sequence mixing both (`[12, 34, "text", 56]`); an object
    /// `{"prompt_string": …}`; or an array of such prompts, answered as an array. Required
    /// (for `/infill`: optional, a string, the text before the cursor on its line).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub prompt: serde_json::Value,
    /// Most tokens to generate; -1 (or absent): until the context is full or `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_predict: Option<i64>,
    /// Read when `n_predict` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Server-sent events: one per piece of text with `stop: false`, the last with `stop: true`.
    #[serde(default)]
    pub stream: bool,
    /// Temperature (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Top-k (default 40; 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    /// Top-p (default 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Min-p (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    /// The sampler's seed; -1 or 4294967295 draws one at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Repeat penalty (default 1.0, off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f32>,
    /// Tokens the penalties look back over (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_last_n: Option<i32>,
    /// Presence penalty (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Frequency penalty (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Stop strings; generation ends before the first, which is not returned.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens.
    #[serde(default)]
    pub ignore_eos: bool,
    /// Biases: `[[token id, bias], …]`, `[["text", bias], …]` (each of its tokens) or
    /// `{"id": bias}`; a bias of `false` bans the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub logit_bias: Option<serde_json::Value>,
    /// Reuse the cached prompt (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prompt: Option<bool>,
    /// Answer `tokens` (the generated ids) in a non-streamed response.
    #[serde(default)]
    pub return_tokens: bool,
    /// With each token, its log-probability and this many most likely tokens
    /// (`completion_probabilities`), 0 (default, none) to 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_probs: Option<u32>,
    /// Constrain the answer to JSON following this schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub json_schema: Option<serde_json::Value>,
    /// Constrain the answer to this GBNF grammar (llama.cpp's format, start rule `root`); not
    /// with `json_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
    /// The model (chorus: default, the server's default model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The slot to run in, 0 to `n_parallel - 1` (`GET /slots`); -1 or absent lets the server
    /// choose. The request waits for a busy slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_slot: Option<i64>,
    /// Which samplers run and in what order: names (`["top_k", "top_p", "temperature"]`) or
    /// one letter each (`"kpt"`). chorus has `penalties`, `top_k` (`k`), `top_p` (`p`),
    /// `min_p` (`m`) and `temperature` (`t`); llama-server's others (`dry`, `typ_p`, `xtc`,
    /// `top_n_sigma`, `infill`) are skipped, as llama-server skips names it does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub samplers: Option<serde_json::Value>,
}

/// Body of `POST /infill` (llama-server's fill-in-the-middle, as llama.vscode sends it): the
/// code around the cursor, files for context, and `/completion`'s fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InfillRequest {
    /// The code before the cursor's line (the line's start up to the cursor is `prompt`).
    #[serde(default)]
    pub input_prefix: String,
    /// The code after the cursor.
    #[serde(default)]
    pub input_suffix: String,
    /// Other files for context, least relevant first: `[{"filename": …, "text": …}]`.
    #[serde(default)]
    pub input_extra: Vec<InfillExtra>,
    /// `prompt` (a string here), `n_predict`, `stream`, the sampling fields and the rest.
    #[serde(flatten)]
    pub completion: NativeCompletionRequest,
}

/// One item of [`InfillRequest::input_extra`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InfillExtra {
    /// The file's name (default `tmp`).
    #[serde(default = "InfillExtra::default_filename")]
    pub filename: String,
    /// The file's text (required).
    pub text: String,
}

impl InfillExtra {
    fn default_filename() -> String {
        "tmp".to_owned()
    }
}

/// The answer of `POST /completion`, and each of its streamed events (where only `content`,
/// `tokens`, `stop` and `index` are set until the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NativeCompletion {
    /// Which prompt this answers.
    pub index: u32,
    /// The text (streamed: this event's piece), without the stop word.
    pub content: String,
    /// The generated token ids (streamed: this event's; otherwise with `return_tokens`).
    pub tokens: Vec<i32>,
    /// True on the last event of a stream and on a whole answer.
    pub stop: bool,
    /// With `n_probs`: each token's probabilities (streamed: this event's tokens').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_probabilities: Option<Vec<TokenProbability>>,
    /// On the last: the rest.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub end: Option<NativeCompletionEnd>,
}

/// What the last event of a `/completion` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NativeCompletionEnd {
    /// The model's id.
    pub model: String,
    /// Tokens generated.
    pub tokens_predicted: u32,
    /// Prompt tokens.
    pub tokens_evaluated: u32,
    /// Prompt tokens reused from the KV cache.
    pub tokens_cached: u32,
    /// The settings it ran with.
    pub generation_settings: SamplingSettings,
    /// The prompt as text (token ids detokenized).
    pub prompt: String,
    /// Whether the text holds a newline.
    pub has_new_line: bool,
    /// Whether the context filled before `n_predict` or the end.
    pub truncated: bool,
    /// `eos` (end of generation), `word` (a stop string), `limit` (`n_predict` reached).
    pub stop_type: String,
    /// The stop string that ended it, or "".
    pub stopping_word: String,
    /// How long it took.
    pub timings: Timings,
}

/// One slot of `GET /slots` (llama-server's slot monitoring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlotInfo {
    /// The slot, 0 to `--parallel` - 1.
    pub id: u32,
    /// Tokens the slot's sequence can hold, prompt and answer together.
    pub n_ctx: u32,
    /// Always false: chorus does not decode speculatively.
    pub speculative: bool,
    /// Whether it is decoding a sequence.
    pub is_processing: bool,
    /// The sequence's progress, one entry.
    pub next_token: Vec<NextToken>,
}

/// A slot's generation progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NextToken {
    /// Whether it is still generating.
    pub has_next_token: bool,
    /// Tokens generated so far.
    pub n_decoded: u32,
}

/// A generated token's log-probability and the most likely tokens at its position
/// (`completion_probabilities` of `/completion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenProbability {
    /// Its id.
    pub id: i32,
    /// Its text (invalid UTF-8 replaced).
    pub token: String,
    /// Its log-probability (natural log, at most 0).
    pub logprob: f64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The `n_probs` most likely tokens, most likely first.
    pub top_logprobs: Vec<TopProbability>,
}

/// One of the most likely tokens at a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopProbability {
    /// Its id.
    pub id: i32,
    /// Its text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f64,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The answer of `POST /v1/chat/completions/input_tokens` (llama-server's token count of a chat
/// completion request, after OpenAI's Responses `input_tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputTokens {
    /// Always `response.input_tokens`.
    pub object: String,
    /// Tokens the request's prompt takes, rendered by the chat template with its tools.
    pub input_tokens: u32,
}

/// Body of `POST /embedding` and `POST /embeddings` (llama-server's native embeddings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NativeEmbeddingRequest {
    /// What to embed: a string, strings, token ids or arrays of token ids (`input` is read
    /// when it is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<crate::openai::EmbeddingInput>,
    /// OpenAI's name for `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<crate::openai::EmbeddingInput>,
    /// How each vector is scaled: 2 (default) Euclidean unit length, 1 taxicab, p > 2 the
    /// p-norm, 0 the largest value at 32760 (llama-server's int16 scale). -1 (none) is a 400:
    /// chorus's backends pool and normalise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embd_normalize: Option<i32>,
    /// Cut inputs longer than the model reads instead of refusing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// The model (chorus: default, the first that serves embeddings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// One item of the answer of `POST /embedding`: an array of these, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NativeEmbedding {
    /// Which input this is.
    pub index: u32,
    /// The pooled vector, as llama-server nests it: one array of `n_embd` floats inside.
    pub embedding: Vec<Vec<f32>>,
}
