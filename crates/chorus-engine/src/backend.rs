//! The [`Backend`] trait between the engine and a model runtime (llama.cpp in
//! `chorus-llama`), the facts a backend reports about its model
//! ([`ModelInfo`]) and its scheduler ([`BackendStats`]), what a model file says of itself
//! before it is loaded ([`ModelFacts`]), and its errors.

use std::path::PathBuf;

use crate::embed::{EmbedReply, EmbedRequest};
use crate::tools::ToolFormat;
use crate::{GenerationStream, ValidGenerateRequest};

/// What a model file says of itself, read when the model is registered, without loading its
/// weights (a GGUF file's metadata): the model's description in Ollama's `/api/tags`,
/// `/api/show` and `/api/ps` (`details`, `model_info`, `template`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelFacts {
    /// The file format: `gguf`.
    pub format: String,
    /// GGUF `general.architecture` (`qwen2`, `llama`, `gemma3`, …), Ollama's `family`.
    pub architecture: String,
    /// GGUF `general.parameter_count`, when the file states it.
    pub parameter_count: Option<u64>,
    /// The weights' quantization (`Q4_K_M`, `Q8_0`, `F16`, …) from GGUF `general.file_type`
    /// (llama.cpp's `llama_ftype`), when the file states it.
    pub quantization: Option<String>,
    /// The context length it was trained with, in tokens (`{arch}.context_length`).
    pub context_length: Option<u32>,
    /// Its Jinja chat template (`tokenizer.chat_template`), when it has one.
    pub chat_template: Option<String>,
    /// The file's size in bytes.
    pub size: u64,
    /// When the file was last modified.
    pub modified: Option<std::time::SystemTime>,
    /// The file's scalar metadata (strings, numbers, booleans; not the tokenizer's arrays),
    /// each as the text llama.cpp gives, in file order.
    pub metadata: Vec<(String, String)>,
}

/// What the server knows about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The id clients pass as `model` (the file stem unless an alias is set).
    pub id: String,
    /// Where the GGUF file is.
    pub path: PathBuf,
    /// Unix time in seconds when it was loaded.
    pub created: u64,
    /// GGUF `general.architecture`, such as `llama` or `qwen2`.
    pub architecture: String,
    /// Context size of the loaded context, in tokens, all slots together.
    pub n_ctx: u32,
    /// Tokens one slot's sequence can hold, prompt and answer together
    /// (llama-server's `n_ctx_slot`): `n_ctx / n_parallel`, or `n_ctx` with a
    /// unified KV cache.
    pub n_ctx_slot: u32,
    /// Context length the model was trained with.
    pub n_ctx_train: u32,
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Slots: the most sequences decoded at once.
    pub n_parallel: u32,
    /// Parameter count.
    pub n_params: u64,
    /// File size in bytes.
    pub size: u64,
    /// How the model writes tool calls, from its chat template.
    pub tool_format: ToolFormat,
    /// Whether all slots share one KV cache (`--kv-unified`).
    pub kv_unified: bool,
    /// Bytes of the KV cache (`n_ctx` tokens at its cache type).
    pub kv_bytes: u64,
    /// Why `n_ctx` is what it is: `--ctx-size`, or what the fit chose and why.
    pub context_choice: String,
    /// Whether the model (or `--chat-template`) has a chat template. A base model without one
    /// serves `/v1/completions`; chat requests to it are refused.
    pub has_chat_template: bool,
    /// The Jinja source of its chat template (llama-server's `/props` `chat_template`), when
    /// it has one and chorus renders it.
    pub chat_template: Option<String>,
    /// Size of its embedding vectors (`n_embd`; a BERT model's `hidden_size`).
    pub n_embd: u32,
    /// What it serves: generation (chat, completions), embeddings, or both.
    pub serves: Serves,
    /// Whether its vocabulary has fill-in-the-middle tokens (code models such as
    /// Qwen2.5-Coder and CodeLlama), so it takes [`crate::Prompt::Infill`].
    pub fim: bool,
}

/// What a backend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Serves {
    /// `/v1/chat/completions` and `/v1/completions`.
    pub generation: bool,
    /// `/v1/embeddings`.
    pub embeddings: bool,
}

impl Serves {
    /// A generative model.
    pub const GENERATION: Self = Self { generation: true, embeddings: false };
    /// An embedding model.
    pub const EMBEDDINGS: Self = Self { generation: false, embeddings: true };
}

impl ModelInfo {
    /// A model description for unit tests that need no real model.
    pub fn for_tests(id: &str, n_vocab: u32, n_ctx: u32) -> Self {
        Self {
            id: id.to_owned(),
            path: PathBuf::from(format!("{id}.gguf")),
            created: 0,
            architecture: "llama".into(),
            n_ctx,
            n_ctx_slot: n_ctx,
            n_ctx_train: n_ctx,
            n_vocab,
            n_parallel: 1,
            n_params: 0,
            tool_format: ToolFormat::default(),
            size: 0,
            kv_unified: false,
            kv_bytes: 0,
            context_choice: "--ctx-size".into(),
            has_chat_template: true,
            chat_template: None,
            n_embd: 64,
            serves: Serves::GENERATION,
            fim: false,
        }
    }
}

/// A snapshot of a backend's scheduler.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendStats {
    /// Slots in all.
    pub slots_total: u32,
    /// Slots decoding a sequence.
    pub slots_busy: u32,
    /// Requests waiting for a slot.
    pub queued: u32,
    /// Sequences held by each of the most recent decode steps, oldest first.
    pub last_steps_sequences: Vec<u32>,
    /// The most sequences one decode step held since start.
    pub max_sequences: u32,
    /// Decode steps since start.
    pub steps: u64,
    /// The prompt cache beyond the slots: budgets and use.
    pub cache: CacheStats,
    /// Each slot, by id (llama-server's `GET /slots`); empty for a backend without slots here.
    pub slots: Vec<SlotStats>,
}

/// One slot's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// Its id, 0 to `slots_total - 1`.
    pub id: u32,
    /// Whether it is decoding a sequence.
    pub is_processing: bool,
    /// Tokens generated so far by the sequence it decodes (0 when idle).
    pub n_decoded: u32,
}

/// The prompt cache's budgets and use, in bytes (`/health`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `--cache-ram`: the most bytes of sequence state kept in host RAM; 0 is off.
    pub ram_budget: u64,
    /// Bytes of sequence state in host RAM now.
    pub ram_bytes: u64,
    /// Tokens those states hold.
    pub ram_tokens: u64,
    /// `--cache-disk`: the most bytes of snapshots on disk; 0 is off.
    pub disk_budget: u64,
    /// Bytes of snapshots on disk now.
    pub disk_bytes: u64,
}

/// A llama-server slot action, `POST /slots/{id_slot}?action=save|restore|erase` (llama.cpp
/// `tools/server/README.md`, "POST /slots/{id_slot}").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAction {
    /// Write the slot's KV cache and tokens to `--slot-save-path`/`filename`
    /// (llama.cpp's `llama_state_seq_save_file` format).
    Save {
        /// A plain file name, no directories.
        filename: String,
    },
    /// Load a file written by `Save` (by chorus or llama-server) into the slot.
    Restore {
        /// A plain file name, no directories.
        filename: String,
    },
    /// Clear the slot's KV cache.
    Erase,
}

/// What a slot action did (llama-server's response fields).
#[derive(Debug, Clone, PartialEq)]
pub struct SlotActionResult {
    /// The slot.
    pub id_slot: u32,
    /// The file, for save and restore.
    pub filename: Option<String>,
    /// Tokens saved, restored or erased.
    pub n_tokens: usize,
    /// Bytes written or read (save, restore).
    pub n_bytes: usize,
    /// How long the action took, in milliseconds.
    pub ms: f64,
}

/// One token of a tokenized text (llama-server's `/tokenize` with `with_pieces`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Its id in the vocabulary.
    pub id: i32,
    /// Its bytes as the vocabulary spells it (special tokens as their text); not always
    /// valid UTF-8 on its own (a byte of a multi-byte character).
    pub piece: Vec<u8>,
}

/// The answer to a slot action, from the model thread.
pub type SlotActionReply = tokio::sync::oneshot::Receiver<Result<SlotActionResult, BackendError>>;

/// A model runtime: takes validated requests, streams their text.
///
/// Implementations own their model on threads of their own; every method here
/// returns promptly and never blocks on decoding.
pub trait Backend: Send + Sync + 'static {
    /// The loaded model.
    fn info(&self) -> &ModelInfo;

    /// Render and tokenize the prompt, check it fits, and queue it for
    /// decoding. Dropping the returned stream cancels the generation.
    ///
    /// # Errors
    /// [`BackendError::PromptTooLong`], [`BackendError::Template`] and
    /// [`BackendError::InvalidPrompt`] are the client's fault;
    /// [`BackendError::Unavailable`] means the model thread is gone.
    fn generate(&self, request: ValidGenerateRequest) -> Result<GenerationStream, BackendError>;

    /// `n` answers to one request (OpenAI's `n`), choice `i` sampled as
    /// [`ValidGenerateRequest::for_choice`]`(i)`; one stream each, in order. The default
    /// schedules `n` requests; a backend that can computes the prompt once for all of them.
    ///
    /// # Errors
    /// As [`Backend::generate`].
    fn generate_choices(&self, request: ValidGenerateRequest, n: u32) -> Result<Vec<GenerationStream>, BackendError> {
        (0..n).map(|i| self.generate(request.for_choice(i))).collect()
    }

    /// The prompt's length in tokens, rendered and tokenized exactly as [`Backend::generate`]
    /// would; nothing is queued.
    ///
    /// # Errors
    /// [`BackendError::Template`] and [`BackendError::InvalidPrompt`], as for `generate`.
    fn prompt_tokens(&self, request: &ValidGenerateRequest) -> Result<u32, BackendError>;

    /// What the scheduler is doing.
    fn stats(&self) -> BackendStats;

    /// Run a llama-server slot action on slot `id_slot` between decode steps.
    ///
    /// # Errors
    /// [`BackendError::SlotActionsDisabled`] without `--slot-save-path`,
    /// [`BackendError::InvalidSlot`], [`BackendError::InvalidFilename`]; the reply carries
    /// [`BackendError::SlotBusy`] and [`BackendError::SlotFile`].
    fn slot_action(&self, id_slot: u32, action: SlotAction) -> Result<SlotActionReply, BackendError> {
        let _ = (id_slot, action);
        Err(BackendError::SlotActionsDisabled)
    }

    /// Forget every cached state kept under `prompt_cache_key` (its disk snapshots); the
    /// session it belonged to is gone.
    fn forget(&self, prompt_cache_key: &str) {
        let _ = prompt_cache_key;
    }

    /// Embed the inputs: one L2-normalised vector of `info().n_embd` floats per input, in
    /// order. Inputs are batched together as the backend allows.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] for a model that serves no embeddings (the default);
    /// [`BackendError::InputTooLong`] for an input over the model's limit without `truncate`;
    /// [`BackendError::InvalidPrompt`] for a token id outside the vocabulary.
    fn embed(&self, request: EmbedRequest) -> Result<EmbedReply, BackendError> {
        let _ = request;
        Err(BackendError::Unsupported { model: self.info().id.clone(), what: "embeddings" })
    }

    /// Bytes of memory the loaded model holds (weights, KV cache, compute buffers), as the
    /// runtime reports them; 0 for a backend that holds none here (an upstream).
    fn memory_bytes(&self) -> u64 {
        0
    }

    /// Tokenize `text` with the model's vocabulary (llama-server's `/tokenize`): with
    /// `add_special`, the BOS token the model wants first; with `parse_special`, special
    /// tokens written in the text (`<|im_start|>`) become those tokens.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] for a backend without a vocabulary here (the default).
    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<Token>, BackendError> {
        let _ = (text, add_special, parse_special);
        Err(BackendError::Unsupported { model: self.info().id.clone(), what: "tokenization" })
    }

    /// The text of `tokens` (llama-server's `/detokenize`); special tokens are written as
    /// their text, invalid UTF-8 is replaced.
    ///
    /// # Errors
    /// [`BackendError::InvalidPrompt`] for a token id outside the vocabulary;
    /// [`BackendError::Unsupported`] for a backend without a vocabulary here (the default).
    fn detokenize(&self, tokens: &[i32]) -> Result<String, BackendError> {
        let _ = tokens;
        Err(BackendError::Unsupported { model: self.info().id.clone(), what: "tokenization" })
    }

    /// The prompt text the model's chat template renders for `request` (a
    /// [`crate::Prompt::Chat`] with its tools), the generation prompt added, as
    /// [`Backend::generate`] would render it (llama-server's `/apply-template`).
    ///
    /// # Errors
    /// [`BackendError::Template`]; [`BackendError::Unsupported`] for a backend that renders
    /// no templates here (the default) or a request that is not a chat.
    fn apply_template(&self, request: &ValidGenerateRequest) -> Result<String, BackendError> {
        let _ = request;
        Err(BackendError::Unsupported { model: self.info().id.clone(), what: "chat templates" })
    }
}

/// What can go wrong in a backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The prompt does not leave room for one generated token in the context.
    #[error(
        "the prompt has {n_prompt} tokens but a slot's context holds {n_ctx}; shorten the messages, or start the server with a larger --ctx-size (shared by --parallel slots) or --kv-unified"
    )]
    PromptTooLong {
        /// Tokens in the prompt.
        n_prompt: u32,
        /// Context size of one slot.
        n_ctx: u32,
    },
    /// The chat template refused the conversation (its own message).
    #[error("{0}")]
    Template(String),
    /// The prompt cannot be used, such as an unsupported content part.
    #[error("{0}")]
    InvalidPrompt(String),
    /// A JSON schema (of a tool or of `response_format`) cannot be turned into a grammar.
    #[error("{message}")]
    InvalidSchema {
        /// The request field the schema came from (OpenAI's `param`).
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The model thread stopped.
    #[error("the model is not running")]
    Unavailable,
    /// llama.cpp failed during decoding.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// Slot actions need `--slot-save-path` (llama-server's 501).
    #[error("this server does not support slot actions; start it with --slot-save-path DIR")]
    SlotActionsDisabled,
    /// No slot has that id.
    #[error("invalid slot id {id_slot}: the slots are 0 to {last}")]
    InvalidSlot {
        /// The id asked for.
        id_slot: u32,
        /// The last slot's id.
        last: u32,
    },
    /// The slot is decoding a sequence (llama-server's 503 "slot is busy").
    #[error("slot {0} is busy; try again when its request has finished")]
    SlotBusy(u32),
    /// A slot file name with a directory, `..` or characters llama-server refuses.
    #[error("invalid filename `{0}`: give a plain file name (letters, digits, `._-`), no directories")]
    InvalidFilename(String),
    /// Saving or restoring a slot file failed (missing file, not a slot file, no room).
    #[error("{0}")]
    SlotFile(String),
    /// The model does not serve this kind of request (embeddings from a chat model, chat
    /// from an embedding model).
    #[error("the model `{model}` does not serve {what}; GET /api/v1/models lists each model's capabilities")]
    Unsupported {
        /// The model asked.
        model: String,
        /// What it was asked for: `embeddings`, `chat completions`, `completions`.
        what: &'static str,
    },
    /// An embedding input holds more tokens than the model reads.
    #[error(
        "input {index} is too large: it has {n_tokens} tokens, and the model reads at most {limit}; shorten it, or pass \"truncate\": true to cut it"
    )]
    InputTooLong {
        /// Which input (0-based).
        index: usize,
        /// Its tokens.
        n_tokens: usize,
        /// The model's limit.
        limit: usize,
    },
    /// An OpenAI-compatible upstream answered with an error, or could not be reached
    /// (`status` 0 then).
    #[error("{message}")]
    Upstream {
        /// The upstream's HTTP status; 0 when it could not be reached or its answer broke off.
        status: u16,
        /// Its error's `message` (or what went wrong reaching it).
        message: String,
        /// Its error's `param`.
        param: Option<String>,
    },
}

impl BackendError {
    /// `model`'s refusal of a generation request it cannot serve (an embedding model):
    /// `chat completions` for a chat prompt, `completions` for raw text.
    pub fn generation_unsupported(model: &str, prompt: &crate::Prompt) -> Self {
        let what = match prompt {
            crate::Prompt::Chat(_) => "chat completions",
            crate::Prompt::Text(_) | crate::Prompt::Tokens(_) => "completions",
            crate::Prompt::Infill { .. } => "fill-in-the-middle",
        };
        Self::Unsupported { model: model.to_owned(), what }
    }

    /// True when the request was at fault (a 4xx), false for server faults.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::PromptTooLong { .. }
                | Self::Template(_)
                | Self::InvalidPrompt(_)
                | Self::InvalidSchema { .. }
                | Self::InvalidSlot { .. }
                | Self::InvalidFilename(_)
                | Self::SlotFile(_)
                | Self::Unsupported { .. }
                | Self::InputTooLong { .. }
        ) || matches!(self, Self::Upstream { status, .. } if (400..500).contains(status))
    }
}
