//! The request stages of generation: [`GenerateRequest`] as converted from any
//! wire format, and [`ValidGenerateRequest`], the only type a [`Backend`]
//! accepts, produced by [`GenerateRequest::validate`].
//!
//! [`Backend`]: crate::Backend

use crate::ModelInfo;
use crate::tools::{FunctionDefinition, ResponseFormat, ToolCall, ToolChoice};

/// Author of a chat message, as chat templates name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions (`system`; OpenAI's `developer` maps here).
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role string chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Parse [`Role::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => return None,
        })
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Optional participant name.
    pub name: Option<String>,
    /// For [`Role::Tool`]: the id of the call it answers.
    pub tool_call_id: Option<String>,
    /// For [`Role::Assistant`]: the calls it made.
    pub tool_calls: Vec<ToolCall>,
}

impl ChatMessage {
    /// A message with just a role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), name: None, tool_call_id: None, tool_calls: Vec::new() }
    }
}

/// What the model continues.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A conversation, rendered by the model's chat template with the generation prompt added.
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenized as is (special tokens in it are parsed).
    Text(String),
    /// Token ids, given to the model as they are (llama-server's `/completion` with a token
    /// array); validated against the vocabulary.
    Tokens(Vec<i32>),
    /// Fill in the middle (llama-server's `/infill`): the model's own tokens around the code
    /// before and after the gap, `FIM_PRE prefix FIM_SUF suffix FIM_MID`, after the `extra`
    /// files (as llama-server lays them out: for a model with repository tokens, Qwen2.5-Coder's
    /// `<|repo_name|>myproject` then `<|file_sep|>filename` and the text of each). Code is
    /// tokenized as plain text (special tokens in it are not parsed). Only for a model with
    /// those tokens ([`crate::ModelInfo::fim`]). What does not fit in a slot's context with
    /// room for the answer is left out: the earliest extra files first, then the prefix's start
    /// and the suffix's end (three parts prefix to one of suffix).
    Infill {
        /// The code before the gap.
        prefix: String,
        /// The code after it.
        suffix: String,
        /// Other files for context (llama-server's `input_extra`), least relevant first.
        extra: Vec<InfillChunk>,
    },
}

/// One file of context for [`Prompt::Infill`] (llama-server's `input_extra` item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfillChunk {
    /// Its name (llama-server's default: `tmp`).
    pub filename: String,
    /// Its text.
    pub text: String,
}

/// Sampling parameters of one request. Defaults are llama-server's.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Temperature; 0 means greedy. Range 0 to 2.
    pub temperature: f32,
    /// Nucleus sampling threshold, 0 to 1 (1 disables).
    pub top_p: f32,
    /// Top-k; 0 disables.
    pub top_k: i32,
    /// Min-p, 0 to 1 (0 disables).
    pub min_p: f32,
    /// Seed of the sampler's RNG; `None` draws one at random.
    pub seed: Option<u32>,
    /// OpenAI presence penalty, -2 to 2.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty, -2 to 2.
    pub frequency_penalty: f32,
    /// llama.cpp repeat penalty; 1 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: i32,
    /// Logit biases: (token id, bias). Validated against the vocabulary.
    pub logit_bias: Vec<(i32, f32)>,
    /// Keep generating past end-of-generation tokens.
    pub ignore_eos: bool,
    /// llama-server's `samplers`: which of the samplers run, in this order, before the seeded
    /// draw; `None` is llama.cpp's order (penalties, top-k, top-p, min-p, temperature). A
    /// sampler left out does not run (without `temperature`, the draw is at temperature 1).
    pub samplers: Option<Vec<SamplerKind>>,
}

/// One sampler of [`SamplingParams::samplers`], by llama-server's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// `penalties`: the repeat, frequency and presence penalties.
    Penalties,
    /// `top_k`.
    TopK,
    /// `top_p`.
    TopP,
    /// `min_p`.
    MinP,
    /// `temperature`.
    Temperature,
}

impl SamplerKind {
    /// The sampler llama-server calls `name` (its short names too: `k`, `p`, `m`, `t`); `None`
    /// for a name chorus has no sampler for.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "penalties" | "penalty" => Self::Penalties,
            "top_k" | "top-k" | "k" => Self::TopK,
            "top_p" | "top-p" | "nucleus" | "p" => Self::TopP,
            "min_p" | "min-p" | "m" => Self::MinP,
            "temperature" | "temp" | "t" => Self::Temperature,
            _ => return None,
        })
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repeat_penalty: 1.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            ignore_eos: false,
            samplers: None,
        }
    }
}

/// A generation request in the engine's terms, not yet validated.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// What to continue.
    pub prompt: Prompt,
    /// How to sample.
    pub sampling: SamplingParams,
    /// Stop sequences: generation ends before the first one, which is never returned.
    pub stop: Vec<String>,
    /// The most tokens to generate; `None` means until the context is full.
    pub max_tokens: Option<u32>,
    /// Functions the model may call (chat prompts only); given to the chat template.
    pub tools: Vec<FunctionDefinition>,
    /// Whether and which tool must be called.
    pub tool_choice: ToolChoice,
    /// The shape of the answer.
    pub response_format: ResponseFormat,
    /// What this prompt continues (OpenAI's `prompt_cache_key`; sessions use
    /// [`session_cache_key`]): a free slot that last served the key is preferred, and the
    /// sequence's KV cache is snapshotted to disk under it when the generation ends.
    pub prompt_cache_key: Option<String>,
    /// llama-server's `cache_prompt`: reuse cached prompt tokens (slot, RAM or disk). `false`
    /// recomputes the whole prompt.
    pub cache_prompt: bool,
    /// How long the model stays loaded after this request (Ollama's `keep_alive`); `None`
    /// keeps the model's own.
    pub keep_alive: Option<crate::pool::KeepAlive>,
    /// Send each sampled token and the stop word as [`crate::GenerationEvent::Detail`]s
    /// (llama-server's `return_tokens`, its streamed `tokens`, and `stopping_word`).
    pub return_tokens: bool,
    /// Report each sampled token's log-probability and this many most likely alternatives
    /// (OpenAI's `logprobs` and `top_logprobs`, 0 to 20; llama-server's `n_probs`), on the
    /// [`crate::GenerationEvent::Detail`] tokens (so [`Self::return_tokens`] is implied).
    pub logprobs: Option<u32>,
    /// How a chat prompt ends (chat prompts only).
    pub chat_ending: ChatEnding,
    /// llama-server's `id_slot`: run in this slot (0 to `n_parallel - 1`), waiting for it
    /// when it is busy; `None` lets the scheduler choose.
    pub id_slot: Option<u32>,
    /// Report every prompt token's log-probability after the tokens before it, with this
    /// many most likely alternatives, as [`crate::Detail::PromptToken`]s (OpenAI completions'
    /// `echo` with `logprobs`). The prompt is then computed whole, no cached prefix reused.
    pub prompt_logprobs: Option<u32>,
}

/// How the rendering of a chat prompt ends (vLLM's and transformers' `add_generation_prompt`
/// and `continue_final_message`, which llama-server also reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChatEnding {
    /// The template's generation prompt opens the model's next message (the default).
    #[default]
    GenerationPrompt,
    /// No generation prompt: the rendering stops after the last message
    /// (`add_generation_prompt: false`).
    None,
    /// The last message, the assistant's, is left open and the model continues it (prefill;
    /// `continue_final_message: true`): the messages before it are rendered with the
    /// generation prompt and its content is appended, as llama-server does.
    ContinueFinalMessage,
}

/// The most alternatives [`GenerateRequest::logprobs`] reports (OpenAI's `top_logprobs` limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// The most choices one request may ask for (OpenAI's `n`: 1 to 128).
pub const MAX_CHOICES: u32 = 128;

/// The longest `prompt_cache_key`, in bytes.
pub const MAX_PROMPT_CACHE_KEY: usize = 256;

/// The prompt cache key of a session's prompts.
pub fn session_cache_key(session: &str) -> String {
    format!("session/{session}")
}

impl GenerateRequest {
    /// A request with default sampling and no limits.
    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            max_tokens: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            response_format: ResponseFormat::Text,
            prompt_cache_key: None,
            cache_prompt: true,
            keep_alive: None,
            return_tokens: false,
            logprobs: None,
            chat_ending: ChatEnding::GenerationPrompt,
            id_slot: None,
            prompt_logprobs: None,
        }
    }

    /// True when the answer is to be parsed for tool calls: tools are given and
    /// `tool_choice` is not `none`.
    pub fn parses_tool_calls(&self) -> bool {
        !self.tools.is_empty() && self.tool_choice != ToolChoice::None
    }

    /// Check every field against its range and the model.
    ///
    /// # Errors
    /// [`ValidationError`] naming the field (OpenAI's `param`) and the rule it breaks.
    pub fn validate(self, model: &ModelInfo) -> Result<ValidGenerateRequest, ValidationError> {
        let s = &self.sampling;
        range("temperature", s.temperature, 0.0, 2.0)?;
        range("top_p", s.top_p, 0.0, 1.0)?;
        range("min_p", s.min_p, 0.0, 1.0)?;
        range("presence_penalty", s.presence_penalty, -2.0, 2.0)?;
        range("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?;
        range("repeat_penalty", s.repeat_penalty, 0.0, 10.0)?;
        if s.top_k < 0 {
            return Err(ValidationError::new("top_k", "top_k must be 0 or more"));
        }
        for &(token, bias) in &s.logit_bias {
            if token < 0 || token as u32 >= model.n_vocab {
                return Err(ValidationError::new(
                    "logit_bias",
                    format!("logit_bias token {token} is not in the vocabulary (0..{})", model.n_vocab),
                ));
            }
            range("logit_bias", bias, -100.0, 100.0)?;
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(ValidationError::new("stop", "stop sequences must not be empty"));
        }
        if self.prompt_cache_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > MAX_PROMPT_CACHE_KEY) {
            return Err(ValidationError::new(
                "prompt_cache_key",
                format!("prompt_cache_key must be 1 to {MAX_PROMPT_CACHE_KEY} bytes"),
            ));
        }
        if self.logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
            return Err(ValidationError::new(
                "top_logprobs",
                format!("top_logprobs must be from 0 to {MAX_TOP_LOGPROBS}"),
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(ValidationError::new("max_tokens", "max_tokens must be at least 1"));
        }
        if let Some(id) = self.id_slot
            && id >= model.n_parallel
        {
            return Err(ValidationError::new(
                "id_slot",
                format!(
                    "id_slot must be from 0 to {} (the model has {} slots)",
                    model.n_parallel.max(1) - 1,
                    model.n_parallel
                ),
            ));
        }
        match &self.prompt {
            Prompt::Chat(messages) if messages.is_empty() => {
                return Err(ValidationError::new("messages", "messages must hold at least one message"));
            }
            Prompt::Chat(messages)
                if self.chat_ending == ChatEnding::ContinueFinalMessage
                    && messages.last().is_none_or(|m| m.role != Role::Assistant) =>
            {
                return Err(ValidationError::new(
                    "continue_final_message",
                    "continue_final_message continues the last message, which must be the assistant's",
                ));
            }
            // A base model never learnt a chat format: ChatML would make it babble.
            Prompt::Chat(_) if !model.has_chat_template => {
                return Err(ValidationError::new(
                    "messages",
                    format!(
                        "the model `{}` has no chat template (a base model): send a prompt to /v1/completions, \
                         or start the server with --chat-template FILE",
                        model.id
                    ),
                ));
            }
            Prompt::Tokens(tokens) if tokens.is_empty() => {
                return Err(ValidationError::new("prompt", "prompt must hold at least one token"));
            }
            Prompt::Tokens(tokens) => {
                if let Some(t) = tokens.iter().find(|&&t| t < 0 || t as u32 >= model.n_vocab) {
                    return Err(ValidationError::new(
                        "prompt",
                        format!("token {t} is not in the vocabulary (0..{})", model.n_vocab),
                    ));
                }
            }
            Prompt::Infill { .. } if !model.fim => {
                return Err(ValidationError::new(
                    "model",
                    format!("the model `{}` has no fill-in-the-middle tokens: use a code model", model.id),
                ));
            }
            _ => {}
        }
        self.validate_tools()?;
        Ok(ValidGenerateRequest(self))
    }

    /// OpenAI's rules for `tools`, `tool_choice` and `response_format`.
    fn validate_tools(&self) -> Result<(), ValidationError> {
        if !self.tools.is_empty() && !matches!(self.prompt, Prompt::Chat(_)) {
            return Err(ValidationError::new("tools", "tools are only supported in chat completions"));
        }
        for (i, tool) in self.tools.iter().enumerate() {
            // OpenAI's characters, plus the dot of MCP servers' tools (`SERVER.TOOL`).
            let valid_name = !tool.name.is_empty()
                && tool.name.len() <= 64
                && tool.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid_name {
                return Err(ValidationError::new(
                    "tools",
                    format!(
                        "tools[{i}].function.name `{}` must be 1 to 64 letters, digits, underscores, dashes or dots",
                        tool.name
                    ),
                ));
            }
            if !tool.parameters.is_object() {
                return Err(ValidationError::new(
                    "tools",
                    format!("tools[{i}].function.parameters must be a JSON schema object"),
                ));
            }
            if self.tools[..i].iter().any(|t| t.name == tool.name) {
                return Err(ValidationError::new("tools", format!("two tools are named `{}`", tool.name)));
            }
        }
        match &self.tool_choice {
            ToolChoice::Required if self.tools.is_empty() => {
                Err(ValidationError::new("tool_choice", "tool_choice `required` needs at least one tool in `tools`"))
            }
            ToolChoice::Function(name) if !self.tools.iter().any(|t| &t.name == name) => Err(ValidationError::new(
                "tool_choice",
                format!("tool_choice names the function `{name}`, which is not in `tools`"),
            )),
            ToolChoice::Required | ToolChoice::Function(_) if self.response_format != ResponseFormat::Text => {
                let param = if matches!(self.response_format, ResponseFormat::Grammar(_)) {
                    "grammar"
                } else {
                    "response_format"
                };
                Err(ValidationError::new(
                    param,
                    format!("{param} cannot constrain the answer while tool_choice forces a tool call"),
                ))
            }
            _ => Ok(()),
        }?;
        if matches!(&self.response_format, ResponseFormat::Grammar(g) if g.trim().is_empty()) {
            return Err(ValidationError::new("grammar", "grammar must not be empty"));
        }
        if let ResponseFormat::JsonSchema(schema) = &self.response_format
            && !(schema.is_object() || schema.is_boolean())
        {
            return Err(ValidationError::new(
                "response_format",
                "response_format.json_schema.schema must be a JSON schema object",
            ));
        }
        Ok(())
    }
}

fn range(param: &'static str, value: f32, min: f32, max: f32) -> Result<(), ValidationError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new(param, format!("{param} must be between {min} and {max}, got {value}")))
    }
}

/// A request whose fields passed [`GenerateRequest::validate`]; the only
/// request type a backend takes. Checks that need the tokenizer (prompt length
/// against `n_ctx`) are the backend's.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidGenerateRequest(GenerateRequest);

impl ValidGenerateRequest {
    /// The validated request.
    pub fn get(&self) -> &GenerateRequest {
        &self.0
    }

    /// Take the request apart.
    pub fn into_inner(self) -> GenerateRequest {
        self.0
    }

    /// The request of choice `index` of `n` (OpenAI's `n`): the same, with a given `seed`
    /// moved on by `index`, so the choices differ and each is reproducible.
    #[must_use]
    pub fn for_choice(&self, index: u32) -> Self {
        let mut request = self.clone();
        if let Some(seed) = request.0.sampling.seed.as_mut() {
            *seed = seed.wrapping_add(index);
        }
        request
    }
}

/// A request field out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// The field at fault, as OpenAI's `param` names it.
    pub param: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl ValidationError {
    /// An error about `param`.
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        Self { param, message: message.into() }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn model() -> ModelInfo {
        ModelInfo::for_tests("m", 100, 512)
    }

    #[test]
    fn defaults_are_valid() {
        let r = GenerateRequest::new(Prompt::Text("hi".into()));
        assert!(r.validate(&model()).is_ok());
    }

    #[test]
    fn infill_needs_a_model_with_fim_tokens_and_takes_no_tools() {
        let infill = || {
            GenerateRequest::new(Prompt::Infill {
                prefix: "def f():\n    ".into(),
                suffix: String::new(),
                extra: Vec::new(),
            })
        };
        assert_eq!(infill().validate(&model()).unwrap_err().param, "model");
        let coder = ModelInfo { fim: true, ..model() };
        assert!(infill().validate(&coder).is_ok());
        let mut with_tools = infill();
        with_tools.tools = vec![FunctionDefinition {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({}),
            strict: false,
        }];
        assert_eq!(with_tools.validate(&coder).unwrap_err().param, "tools");
    }

    #[test]
    fn out_of_range_fields_name_their_param() {
        let mut r = GenerateRequest::new(Prompt::Text("hi".into()));
        r.sampling.temperature = 3.0;
        assert_eq!(r.clone().validate(&model()).unwrap_err().param, "temperature");
        r.sampling.temperature = f32::NAN;
        assert_eq!(r.validate(&model()).unwrap_err().param, "temperature");
        let mut r = GenerateRequest::new(Prompt::Text("hi".into()));
        r.sampling.logit_bias = vec![(100, 1.0)];
        assert_eq!(r.validate(&model()).unwrap_err().param, "logit_bias");
        let r = GenerateRequest::new(Prompt::Chat(vec![]));
        assert_eq!(r.validate(&model()).unwrap_err().param, "messages");
        let mut r = GenerateRequest::new(Prompt::Text("hi".into()));
        r.stop = vec![String::new()];
        assert_eq!(r.validate(&model()).unwrap_err().param, "stop");
    }

    #[test]
    fn tool_rules_name_their_param() {
        let chat = || GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "hi")]));
        let tool = |name: &str| FunctionDefinition {
            name: name.into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
            strict: false,
        };
        let mut r = chat();
        r.tool_choice = ToolChoice::Required;
        assert_eq!(r.validate(&model()).unwrap_err().param, "tool_choice");
        let mut r = chat();
        r.tools = vec![tool("a b")];
        assert_eq!(r.validate(&model()).unwrap_err().param, "tools");
        let mut r = chat();
        r.tools = vec![tool("a")];
        r.tool_choice = ToolChoice::Function("b".into());
        assert_eq!(r.clone().validate(&model()).unwrap_err().param, "tool_choice");
        r.tool_choice = ToolChoice::Function("a".into());
        assert!(r.clone().validate(&model()).is_ok());
        r.response_format = ResponseFormat::JsonObject;
        assert_eq!(r.validate(&model()).unwrap_err().param, "response_format");
    }
}
