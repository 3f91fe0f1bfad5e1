//! Wire requests to engine requests: every OpenAI field is checked for what
//! serde cannot check (ranges of integers, `n`, `stream_options` without
//! `stream`, content parts) and mapped onto [`GenerateRequest`]. Range checks of
//! sampling fields are the engine's ([`GenerateRequest::validate`]).

use chorus_engine::request::{ChatMessage, Role};
use chorus_engine::tools::{FunctionDefinition, ResponseFormat, ToolCall, ToolChoice};
use chorus_engine::{ChatEnding, GenerateRequest, Prompt, SamplingParams};
use chorus_proto::openai::{
    self as wire, ChatCompletionRequest, ContentPart, MessageContent, Role as WireRole, SamplingFields, Stop,
    StreamOptions, ToolChoiceMode,
};

use crate::ApiError;

/// What a route needs to answer besides the engine request.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) model: Option<String>,
    /// The router category the request forces.
    pub(crate) category: Option<String>,
    pub(crate) request: GenerateRequest,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// OpenAI's `n`: how many choices.
    pub(crate) n: u32,
    /// llama-server's `timings_per_token`: `timings` on every streamed chunk with text.
    pub(crate) timings_per_token: bool,
}

/// A chat request in the engine's terms; fields it leaves out take `config`'s defaults
/// (`--temp`, `--seed`, `--n-predict`).
pub(crate) fn chat(req: ChatCompletionRequest, config: &crate::ServerConfig) -> Result<Plan, ApiError> {
    let n = choices(req.n)?;
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (Some(true), n) => Some(top_logprobs(n)?),
        (_, Some(n)) if n > 0 => {
            return Err(ApiError::invalid(Some("top_logprobs".to_owned()), "top_logprobs needs logprobs: true"));
        }
        _ => None,
    };
    let (stream, include_usage) = stream_flags(req.stream, req.stream_options.as_ref())?;
    let messages = messages(req.messages)?;
    if messages.is_empty() {
        return Err(ApiError::invalid(Some("messages".to_owned()), "messages must hold at least one message"));
    }
    let max_tokens = match req.max_completion_tokens {
        Some(n) => Some(max_tokens("max_completion_tokens", n)?),
        None => req.max_tokens.map(|n| max_tokens("max_tokens", n)).transpose()?.or(config.n_predict),
    };
    let chat_ending = match (req.add_generation_prompt, req.continue_final_message.unwrap_or(false)) {
        (Some(true), true) => {
            return Err(ApiError::invalid(
                Some("continue_final_message".to_owned()),
                "add_generation_prompt and continue_final_message cannot both be true: one opens a new \
                 assistant message, the other continues the last one",
            ));
        }
        (_, true) => ChatEnding::ContinueFinalMessage,
        (Some(false), false) => ChatEnding::None,
        (_, false) => ChatEnding::GenerationPrompt,
    };
    let tools = tools(req.tools)?;
    let tool_choice = match req.tool_choice {
        None if tools.is_empty() => ToolChoice::None,
        choice => tool_choice(choice),
    };
    Ok(Plan {
        model: req.model,
        category: req.category,
        request: GenerateRequest {
            prompt: Prompt::Chat(messages),
            sampling: sampling(&config.sampling, req.sampling)?,
            stop: stop(req.stop)?,
            max_tokens,
            tools,
            tool_choice,
            response_format: constraint(req.response_format, req.json_schema, req.grammar)?,
            prompt_cache_key: req.prompt_cache_key.map(|k| format!("client/{k}")),
            cache_prompt: req.cache_prompt.unwrap_or(true),
            keep_alive: keep_alive(req.keep_alive.as_ref())?,
            return_tokens: req.timings_per_token == Some(true),
            logprobs,
            chat_ending,
            id_slot: None,
            prompt_logprobs: None,
        },
        stream,
        include_usage,
        n,
        timings_per_token: req.timings_per_token == Some(true),
    })
}

/// `top_logprobs` (absent: 0), 0 to 20.
fn top_logprobs(n: Option<i64>) -> Result<u32, ApiError> {
    top_logprobs_in("top_logprobs", n)
}

/// A count of most likely tokens (`param`: `top_logprobs`, or completions' `logprobs`),
/// 0 (absent) to [`chorus_engine::request::MAX_TOP_LOGPROBS`].
pub(crate) fn top_logprobs_in(param: &str, n: Option<i64>) -> Result<u32, ApiError> {
    let max = i64::from(chorus_engine::request::MAX_TOP_LOGPROBS);
    match n.unwrap_or(0) {
        n @ 0.. if n <= max => Ok(n as u32),
        _ => Err(ApiError::invalid(Some(param.to_owned()), format!("{param} must be from 0 to {max}"))),
    }
}

/// OpenAI's `tool_choice` in the engine's terms; absent is `auto`.
pub(crate) fn tool_choice(choice: Option<wire::ToolChoice>) -> ToolChoice {
    match choice {
        None | Some(wire::ToolChoice::Mode(ToolChoiceMode::Auto)) => ToolChoice::Auto,
        Some(wire::ToolChoice::Mode(ToolChoiceMode::None)) => ToolChoice::None,
        Some(wire::ToolChoice::Mode(ToolChoiceMode::Required)) => ToolChoice::Required,
        Some(wire::ToolChoice::Named(named)) => ToolChoice::Function(named.function.name),
    }
}

/// `tools` to function definitions; a function without `parameters` takes none.
fn tools(tools: Option<Vec<wire::Tool>>) -> Result<Vec<FunctionDefinition>, ApiError> {
    let tools = tools.unwrap_or_default();
    if tools.len() > 128 {
        return Err(ApiError::invalid(Some("tools".to_owned()), "at most 128 tools are supported"));
    }
    Ok(tools
        .into_iter()
        .map(|t| FunctionDefinition {
            name: t.function.name,
            description: t.function.description,
            parameters: t.function.parameters.unwrap_or_else(
                || serde_json::json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            strict: t.function.strict.unwrap_or(false),
        })
        .collect())
}

/// `response_format` or llama-server's `json_schema`, or its `grammar`, which neither may
/// come with (llama-server's rule).
pub(crate) fn constraint(
    format: Option<wire::ResponseFormat>,
    json_schema: Option<serde_json::Value>,
    grammar: Option<String>,
) -> Result<ResponseFormat, ApiError> {
    let json = response_format(format, json_schema);
    match grammar {
        None => Ok(json),
        Some(g) if json == ResponseFormat::Text => Ok(ResponseFormat::Grammar(g)),
        Some(_) => Err(ApiError::invalid(
            Some("grammar".to_owned()),
            "either json_schema (or a JSON response_format) or grammar can be specified, but not both",
        )),
    }
}

/// `response_format`, else llama-server's top-level `json_schema`.
fn response_format(format: Option<wire::ResponseFormat>, json_schema: Option<serde_json::Value>) -> ResponseFormat {
    match format {
        None => json_schema.map_or(ResponseFormat::Text, ResponseFormat::JsonSchema),
        Some(wire::ResponseFormat::Text) => ResponseFormat::Text,
        Some(wire::ResponseFormat::JsonObject { schema: None }) => ResponseFormat::JsonObject,
        Some(wire::ResponseFormat::JsonObject { schema: Some(schema) }) => ResponseFormat::JsonSchema(schema),
        Some(wire::ResponseFormat::JsonSchema { json_schema }) => match json_schema.schema {
            Some(schema) => ResponseFormat::JsonSchema(schema),
            None => ResponseFormat::JsonObject,
        },
    }
}

/// One prompt of a completion request; `max_tokens` defaults to OpenAI's 16.
pub(crate) fn completion(
    prompt: String,
    max: Option<i64>,
    fields: &SamplingFields,
    stops: Option<&Stop>,
    cache_prompt: Option<bool>,
    keep_alive: Option<chorus_engine::KeepAlive>,
    defaults: &SamplingParams,
) -> Result<GenerateRequest, ApiError> {
    Ok(GenerateRequest {
        keep_alive,
        sampling: sampling(defaults, fields.clone())?,
        stop: stop(stops.cloned())?,
        max_tokens: Some(max_tokens("max_tokens", max.unwrap_or(16))?),
        cache_prompt: cache_prompt.unwrap_or(true),
        ..GenerateRequest::new(Prompt::Text(prompt))
    })
}

/// Ollama's `keep_alive` in the engine's terms; a malformed one is a 400 on `keep_alive`.
pub(crate) fn keep_alive(value: Option<&wire::KeepAlive>) -> Result<Option<chorus_engine::KeepAlive>, ApiError> {
    let parsed = match value {
        None => return Ok(None),
        Some(wire::KeepAlive::Seconds(s)) => chorus_engine::KeepAlive::from_secs_f64(*s),
        Some(wire::KeepAlive::Duration(d)) => chorus_engine::KeepAlive::parse(d),
    };
    parsed.map(Some).map_err(|m| ApiError::invalid(Some("keep_alive".to_owned()), m))
}

/// OpenAI's `n` (absent: 1), 1 to [`chorus_engine::MAX_CHOICES`].
pub(crate) fn choices(n: Option<i64>) -> Result<u32, ApiError> {
    let max = i64::from(chorus_engine::MAX_CHOICES);
    match n.unwrap_or(1) {
        n @ 1.. if n <= max => Ok(n as u32),
        _ => Err(ApiError::invalid(Some("n".to_owned()), format!("n must be from 1 to {max}"))),
    }
}

pub(crate) fn stream_flags(stream: Option<bool>, options: Option<&StreamOptions>) -> Result<(bool, bool), ApiError> {
    let stream = stream.unwrap_or(false);
    if options.is_some() && !stream {
        return Err(ApiError::invalid(
            Some("stream_options".to_owned()),
            "stream_options is only allowed when stream is true",
        ));
    }
    Ok((stream, options.is_some_and(|o| o.include_usage)))
}

pub(crate) fn max_tokens(param: &str, n: i64) -> Result<u32, ApiError> {
    if n < 1 {
        return Err(ApiError::invalid(Some(param.to_owned()), format!("{param} must be at least 1, got {n}")));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Wire messages to the engine's, each checked (`param` names `messages[i]…`).
pub(crate) fn messages(messages: Vec<chorus_proto::openai::ChatMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    messages.into_iter().enumerate().map(|(i, m)| message(i, m)).collect()
}

fn message(i: usize, m: chorus_proto::openai::ChatMessage) -> Result<ChatMessage, ApiError> {
    let role = match m.role {
        WireRole::System | WireRole::Developer => Role::System,
        WireRole::User => Role::User,
        WireRole::Assistant => Role::Assistant,
        WireRole::Tool => Role::Tool,
    };
    let content = match m.content {
        Some(MessageContent::Text(t)) => t,
        Some(MessageContent::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part {
                    ContentPart::Text { text: t } => text.push_str(&t),
                    ContentPart::ImageUrl { .. } => {
                        return Err(ApiError::invalid(
                            Some(format!("messages[{i}].content")),
                            "this model reads text only; image_url content parts are not supported",
                        ));
                    }
                }
            }
            text
        }
        None if role == Role::Assistant => String::new(),
        None => {
            return Err(ApiError::invalid(
                Some(format!("messages[{i}].content")),
                format!("messages[{i}].content is required for role {}", role.as_str()),
            ));
        }
    };
    if role == Role::Tool && m.tool_call_id.is_none() {
        return Err(ApiError::invalid(
            Some(format!("messages[{i}].tool_call_id")),
            format!("messages[{i}] has role tool but no tool_call_id naming the call it answers"),
        ));
    }
    let tool_calls = match m.tool_calls {
        Some(calls) if role == Role::Assistant => calls
            .into_iter()
            .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
            .collect(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some(format!("messages[{i}].tool_calls")),
                "only assistant messages carry tool_calls",
            ));
        }
        None => Vec::new(),
    };
    Ok(ChatMessage { role, content, name: m.name, tool_call_id: m.tool_call_id, tool_calls })
}

/// The request's sampling fields over `defaults`.
fn sampling(defaults: &SamplingParams, f: SamplingFields) -> Result<SamplingParams, ApiError> {
    let mut p = defaults.clone();
    if let Some(t) = f.temperature {
        p.temperature = t as f32;
    }
    if let Some(v) = f.top_p {
        p.top_p = v as f32;
    }
    if let Some(v) = f.top_k {
        p.top_k = i32::try_from(v).map_err(|_| ApiError::invalid(Some("top_k".to_owned()), "top_k is out of range"))?;
    }
    if let Some(v) = f.min_p {
        p.min_p = v as f32;
    }
    // OpenAI seeds are 64-bit; llama.cpp's are 32-bit: keep the low bits.
    if let Some(s) = f.seed {
        p.seed = Some(s as u32);
    }
    if let Some(v) = f.presence_penalty {
        p.presence_penalty = v as f32;
    }
    if let Some(v) = f.frequency_penalty {
        p.frequency_penalty = v as f32;
    }
    if let Some(v) = f.repeat_penalty {
        p.repeat_penalty = v as f32;
    }
    if let Some(bias) = f.logit_bias {
        p.logit_bias = bias
            .into_iter()
            .map(|(k, v)| {
                k.parse::<i32>().map(|t| (t, v as f32)).map_err(|_| {
                    ApiError::invalid(
                        Some("logit_bias".to_owned()),
                        format!("logit_bias keys must be token ids, got `{k}`"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = f.ignore_eos {
        p.ignore_eos = v;
    }
    Ok(p)
}

fn stop(stop: Option<Stop>) -> Result<Vec<String>, ApiError> {
    let stops = stop.map(Stop::into_vec).unwrap_or_default();
    if stops.len() > 16 {
        return Err(ApiError::invalid(Some("stop".to_owned()), "at most 16 stop sequences are supported"));
    }
    Ok(stops)
}
