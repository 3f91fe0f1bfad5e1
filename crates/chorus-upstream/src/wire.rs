//! What is sent upstream and read back, in OpenAI's wire format (OpenAI API
//! reference, "Chat" → "Create chat completion", "Completions", "Embeddings",
//! and the streaming format: server-sent events of `chat.completion.chunk` /
//! `text_completion` objects ending with `data: [DONE]`).
//!
//! Requests are built from chorus-proto's OpenAI types, so they are what a
//! chorus server itself accepts. Responses are read with lenient types of
//! their own here: only the fields used, every one optional, so the variants
//! of vLLM, TGI and llama-server (extra fields, `null`s, unknown
//! `finish_reason`s) are read, not refused.

use chorus_engine::tools::{ResponseFormat, ToolChoice};
use chorus_engine::{BackendError, ChatMessage, EmbeddingInput, FinishReason, GenerateRequest, Prompt, SamplingParams};
use chorus_proto::openai as proto;
use serde::Deserialize;
use serde_json::{Value, json};

/// The chat completions endpoint, under a base URL.
pub(crate) const CHAT_PATH: &str = "/v1/chat/completions";
/// The (legacy) completions endpoint.
pub(crate) const COMPLETIONS_PATH: &str = "/v1/completions";
/// The embeddings endpoint.
pub(crate) const EMBEDDINGS_PATH: &str = "/v1/embeddings";

/// The name given to a `response_format` JSON schema, which the engine's type does not keep.
const SCHEMA_NAME: &str = "response";

/// Which endpoint a generation goes to, and how its chunks carry text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/v1/chat/completions`: `choices[0].delta.content` and `delta.tool_calls`.
    Chat,
    /// `/v1/completions`: `choices[0].text`.
    Completions,
}

impl Endpoint {
    /// The path under a base URL.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => CHAT_PATH,
            Endpoint::Completions => COMPLETIONS_PATH,
        }
    }
}

/// The streamed request body for `request`, sent as `model`: a chat completion for a chat
/// prompt, a completion for a text prompt.
pub(crate) fn generate_body(request: &GenerateRequest, model: &str) -> Result<(Endpoint, Value), BackendError> {
    let sampling = sampling(&request.sampling);
    let stop = (!request.stop.is_empty()).then(|| proto::Stop::Many(request.stop.clone()));
    let max_tokens = request.max_tokens.map(i64::from);
    let stream_options = Some(proto::StreamOptions { include_usage: true });
    // llama-server's default (and chorus's) is true: only a refusal is worth sending.
    let cache_prompt = (!request.cache_prompt).then_some(false);
    let (endpoint, body) = match &request.prompt {
        Prompt::Chat(messages) => {
            let has_tools = !request.tools.is_empty();
            let body = proto::ChatCompletionRequest {
                model: Some(model.to_owned()),
                messages: messages.iter().map(message).collect(),
                max_tokens,
                sampling,
                stop,
                stream: Some(true),
                stream_options,
                tools: has_tools.then(|| request.tools.iter().map(tool).collect()),
                tool_choice: has_tools.then(|| tool_choice(&request.tool_choice)),
                response_format: response_format(&request.response_format),
                grammar: grammar(&request.response_format),
                prompt_cache_key: request.prompt_cache_key.clone(),
                cache_prompt,
                ..Default::default()
            };
            (Endpoint::Chat, serde_json::to_value(body))
        }
        Prompt::Text(text) => {
            // Built as JSON around the proto's sampling fields: `CompletionRequest` has no
            // `Default`, and no `prompt_cache_key` (OpenAI's completions have none; chorus and the
            // OpenAI-compatible servers that know it read it all the same).
            let mut body = serde_json::to_value(sampling).unwrap_or_else(|_| json!({}));
            if let Value::Object(map) = &mut body {
                map.insert("model".into(), model.into());
                map.insert("prompt".into(), text.as_str().into());
                if let Some(n) = max_tokens {
                    map.insert("max_tokens".into(), n.into());
                }
                if let Some(stop) = stop {
                    map.insert("stop".into(), serde_json::to_value(stop).unwrap_or(Value::Null));
                }
                map.insert("stream".into(), true.into());
                map.insert("stream_options".into(), json!({"include_usage": true}));
                if let Some(cache_prompt) = cache_prompt {
                    map.insert("cache_prompt".into(), cache_prompt.into());
                }
                if let Some(key) = &request.prompt_cache_key {
                    map.insert("prompt_cache_key".into(), key.as_str().into());
                }
                // Not OpenAI's (its completions have none), but llama-server's and vLLM's.
                if let Some(format) = response_format(&request.response_format) {
                    map.insert("response_format".into(), serde_json::to_value(format).unwrap_or(Value::Null));
                }
                if let Some(grammar) = grammar(&request.response_format) {
                    map.insert("grammar".into(), grammar.into());
                }
            }
            (Endpoint::Completions, Ok(body))
        }
        // OpenAI's API has no fill-in-the-middle (the model's `fim` is false, so the engine
        // refuses it first), and chorus does not know the upstream's vocabulary, so token ids
        // are not passed on.
        Prompt::Infill { .. } | Prompt::Tokens(_) => {
            return Err(BackendError::generation_unsupported(model, &request.prompt));
        }
    };
    // Serializing plain data types into a `Value` cannot fail.
    Ok((endpoint, body.unwrap_or_else(|_| json!({}))))
}

/// An `f32` as the `f64` of its shortest decimal form (`0.8`, not `0.800000011920929`).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// The sampling fields: OpenAI's always, llama.cpp's extras (`top_k`, `min_p`,
/// `repeat_penalty`, `ignore_eos`) only where they differ from llama-server's defaults, which
/// the engine fills in, so an upstream with other defaults (vLLM, TGI) keeps its own.
fn sampling(s: &SamplingParams) -> proto::SamplingFields {
    let d = SamplingParams::default();
    let logit_bias = (!s.logit_bias.is_empty())
        .then(|| s.logit_bias.iter().map(|&(token, bias)| (token.to_string(), decimal(bias))).collect());
    proto::SamplingFields {
        temperature: Some(decimal(s.temperature)),
        top_p: Some(decimal(s.top_p)),
        top_k: (s.top_k != d.top_k).then_some(i64::from(s.top_k)),
        min_p: (s.min_p != d.min_p).then(|| decimal(s.min_p)),
        seed: s.seed.map(i64::from),
        presence_penalty: (s.presence_penalty != 0.0).then(|| decimal(s.presence_penalty)),
        frequency_penalty: (s.frequency_penalty != 0.0).then(|| decimal(s.frequency_penalty)),
        repeat_penalty: (s.repeat_penalty != d.repeat_penalty).then(|| decimal(s.repeat_penalty)),
        logit_bias,
        ignore_eos: s.ignore_eos.then_some(true),
    }
}

/// One message: `content` is `null` for an assistant message that only calls tools.
fn message(m: &ChatMessage) -> proto::ChatMessage {
    let role = match m.role {
        chorus_engine::Role::System => proto::Role::System,
        chorus_engine::Role::User => proto::Role::User,
        chorus_engine::Role::Assistant => proto::Role::Assistant,
        chorus_engine::Role::Tool => proto::Role::Tool,
    };
    let calls_only = m.content.is_empty() && !m.tool_calls.is_empty();
    proto::ChatMessage {
        role,
        content: (!calls_only).then(|| proto::MessageContent::Text(m.content.clone())),
        name: m.name.clone(),
        tool_call_id: m.tool_call_id.clone(),
        tool_calls: (!m.tool_calls.is_empty()).then(|| {
            m.tool_calls
                .iter()
                .map(|c| proto::ToolCall {
                    id: c.id.clone(),
                    kind: proto::ToolType::Function,
                    function: proto::FunctionCall { name: c.name.clone(), arguments: c.arguments.clone() },
                })
                .collect()
        }),
    }
}

fn tool(f: &chorus_engine::FunctionDefinition) -> proto::Tool {
    proto::Tool {
        kind: proto::ToolType::Function,
        function: proto::FunctionDefinition {
            name: f.name.clone(),
            description: f.description.clone(),
            parameters: Some(f.parameters.clone()),
            strict: f.strict.then_some(true),
        },
    }
}

fn tool_choice(choice: &ToolChoice) -> proto::ToolChoice {
    match choice {
        ToolChoice::Auto => proto::ToolChoice::Mode(proto::ToolChoiceMode::Auto),
        ToolChoice::None => proto::ToolChoice::Mode(proto::ToolChoiceMode::None),
        ToolChoice::Required => proto::ToolChoice::Mode(proto::ToolChoiceMode::Required),
        ToolChoice::Function(name) => proto::ToolChoice::Named(proto::NamedToolChoice {
            kind: proto::ToolType::Function,
            function: proto::FunctionName { name: name.clone() },
        }),
    }
}

/// llama-server's `grammar` (an upstream that is not llama-server refuses or ignores it).
fn grammar(format: &ResponseFormat) -> Option<String> {
    match format {
        ResponseFormat::Grammar(g) => Some(g.clone()),
        _ => None,
    }
}

/// `response_format`; a grammar goes as llama-server's `grammar` field instead.
fn response_format(format: &ResponseFormat) -> Option<proto::ResponseFormat> {
    match format {
        ResponseFormat::Text | ResponseFormat::Grammar(_) => None,
        ResponseFormat::JsonObject => Some(proto::ResponseFormat::JsonObject { schema: None }),
        ResponseFormat::JsonSchema(schema) => Some(proto::ResponseFormat::JsonSchema {
            json_schema: proto::JsonSchemaFormat {
                name: SCHEMA_NAME.into(),
                description: None,
                schema: Some(schema.clone()),
                strict: Some(true),
            },
        }),
    }
}

/// The embeddings request body for `inputs`, all of one kind (OpenAI's `input` is strings or
/// token arrays, not both): floats asked for, `truncate` (llama-server's and
/// text-embeddings-inference's) only when set.
pub(crate) fn embeddings_body(inputs: &[&EmbeddingInput], model: &str, truncate: bool) -> Value {
    let input: Vec<Value> = inputs
        .iter()
        .map(|input| match input {
            EmbeddingInput::Text(text) => Value::from(text.as_str()),
            EmbeddingInput::Tokens(tokens) => Value::from(tokens.clone()),
        })
        .collect();
    let mut body = json!({"model": model, "input": input, "encoding_format": "float"});
    if truncate && let Value::Object(map) = &mut body {
        map.insert("truncate".into(), true.into());
    }
    body
}

/// The estimate of a request's prompt tokens: one token per 3 characters (rounded up) of
/// everything the upstream's template renders (the messages' text and calls, the tools'
/// JSON), plus 4 per message for its template's markers. Upstreams do not tokenize for us in
/// general; this is used only where chorus needs a length before the upstream's `usage`
/// says: the stream's early `prompt_tokens` and the session window (agent `compact`).
pub(crate) fn estimate_prompt_tokens(request: &GenerateRequest) -> u32 {
    const CHARS_PER_TOKEN: usize = 3;
    const PER_MESSAGE: usize = 4;
    let chars = |s: &str| s.chars().count();
    let (text, markers) = match &request.prompt {
        Prompt::Text(text) => (chars(text), 0),
        Prompt::Tokens(tokens) => (tokens.len() * CHARS_PER_TOKEN, 0),
        Prompt::Infill { prefix, suffix, extra } => {
            let extra: usize = extra.iter().map(|c| chars(&c.filename) + chars(&c.text) + 1).sum();
            (chars(prefix) + chars(suffix) + extra, 3 + 2 * extra.min(1))
        }
        Prompt::Chat(messages) => {
            let text: usize = messages
                .iter()
                .map(|m| {
                    chars(&m.content)
                        + m.name.as_deref().map_or(0, chars)
                        + m.tool_call_id.as_deref().map_or(0, chars)
                        + m.tool_calls
                            .iter()
                            .map(|c| chars(&c.id) + chars(&c.name) + chars(&c.arguments))
                            .sum::<usize>()
                })
                .sum();
            let tools: usize = request.tools.iter().map(|t| chars(&t.template_json().to_string())).sum();
            (text + tools, PER_MESSAGE * messages.len())
        }
    };
    u32::try_from(text.div_ceil(CHARS_PER_TOKEN) + markers).unwrap_or(u32::MAX).max(1)
}

/// One streamed chunk (`chat.completion.chunk` or `text_completion`), read leniently; a whole
/// answer (`chat.completion`, a non-streamed `text_completion`) reads as one chunk too.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Chunk {
    #[serde(default)]
    pub(crate) choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
}

/// One choice of a [`Chunk`].
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChunkChoice {
    #[serde(default)]
    pub(crate) index: Option<u32>,
    /// Chat: what this chunk adds to the message. A whole (non-streamed) answer's `message`
    /// reads as one delta with everything.
    #[serde(default, alias = "message")]
    pub(crate) delta: Option<Delta>,
    /// Completions: the text this chunk adds.
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

/// A chat chunk's `delta`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Delta {
    #[serde(default)]
    pub(crate) content: Option<String>,
    #[serde(default)]
    pub(crate) tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a streamed tool call (OpenAI: `ChatCompletionMessageToolCallChunk`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ToolCallDelta {
    #[serde(default)]
    pub(crate) index: Option<u32>,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) function: Option<FunctionDelta>,
}

/// The function part of a [`ToolCallDelta`].
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FunctionDelta {
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Arguments text to append; a server that sends an object has it written out as JSON.
    #[serde(default)]
    pub(crate) arguments: Option<Value>,
}

/// `usage` (OpenAI: `CompletionUsage`).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) prompt_tokens: u32,
    #[serde(default)]
    pub(crate) completion_tokens: u32,
    #[serde(default)]
    pub(crate) prompt_tokens_details: Option<WireTokenDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct WireTokenDetails {
    #[serde(default)]
    pub(crate) cached_tokens: Option<u32>,
}

/// An embeddings answer (OpenAI: `CreateEmbeddingResponse`).
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingsResponse {
    pub(crate) data: Vec<EmbeddingData>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
}

/// One vector of an [`EmbeddingsResponse`].
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingData {
    /// Which input it embeds; missing means in order.
    #[serde(default)]
    pub(crate) index: Option<usize>,
    pub(crate) embedding: Vec<f32>,
}

/// OpenAI's `finish_reason` as the engine's: `length` and `tool_calls` (and the deprecated
/// `function_call`) as themselves, everything else (`stop`, TGI's `eos_token` and
/// `stop_sequence`, `content_filter`) as `Stop`.
pub(crate) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chorus_engine::{FunctionDefinition, Role, ToolCall};

    #[test]
    fn a_chat_body_carries_messages_tools_and_sampling() {
        let mut assistant = ChatMessage::new(Role::Assistant, "");
        assistant.tool_calls = vec![ToolCall { id: "call_1".into(), name: "f".into(), arguments: "{}".into() }];
        let mut result = ChatMessage::new(Role::Tool, "42");
        result.tool_call_id = Some("call_1".into());
        let mut r = GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "hi"), assistant, result]));
        r.sampling.temperature = 0.2;
        r.sampling.top_k = 5;
        r.sampling.seed = Some(7);
        r.max_tokens = Some(9);
        r.stop = vec!["END".into()];
        r.tools = vec![FunctionDefinition {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: false,
        }];
        r.tool_choice = ToolChoice::Function("f".into());
        r.prompt_cache_key = Some("session/s".into());
        let (endpoint, body) = generate_body(&r, "up").unwrap();
        assert_eq!(endpoint, Endpoint::Chat);
        assert_eq!(body["model"], "up");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["top_k"], 5);
        assert!(body.get("min_p").is_none(), "defaults are not sent: {body}");
        assert!(body.get("repeat_penalty").is_none());
        assert_eq!(body["seed"], 7);
        assert_eq!(body["max_tokens"], 9);
        assert_eq!(body["stop"], json!(["END"]));
        assert_eq!(body["messages"][1]["content"], Value::Null);
        assert_eq!(body["messages"][1]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(body["messages"][2]["tool_call_id"], "call_1");
        assert_eq!(body["tools"][0]["function"]["parameters"], json!({"type": "object"}));
        assert_eq!(body["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
        assert_eq!(body["prompt_cache_key"], "session/s");
        assert!(body.get("cache_prompt").is_none());
    }

    #[test]
    fn a_text_prompt_is_a_completion() {
        let mut r = GenerateRequest::new(Prompt::Text("Once".into()));
        r.cache_prompt = false;
        r.prompt_cache_key = Some("client/k".into());
        let (endpoint, body) = generate_body(&r, "up").unwrap();
        assert_eq!(endpoint, Endpoint::Completions);
        assert_eq!(body["prompt"], "Once");
        assert_eq!(body["cache_prompt"], false);
        assert_eq!(body["prompt_cache_key"], "client/k");
        assert!(body.get("tools").is_none());
        assert!(body.get("response_format").is_none());
        let mut r = GenerateRequest::new(Prompt::Text("Once".into()));
        r.response_format = ResponseFormat::JsonObject;
        assert_eq!(generate_body(&r, "up").unwrap().1["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn json_schema_formats_are_named() {
        let mut r = GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "hi")]));
        r.response_format = ResponseFormat::JsonSchema(json!({"type": "object"}));
        let (_, body) = generate_body(&r, "up").unwrap();
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["response_format"]["json_schema"]["name"], SCHEMA_NAME);
        assert_eq!(body["response_format"]["json_schema"]["schema"], json!({"type": "object"}));
    }

    #[test]
    fn the_estimate_counts_characters_by_three() {
        let r = GenerateRequest::new(Prompt::Text("abcdefg".into()));
        assert_eq!(estimate_prompt_tokens(&r), 3);
        let r = GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "abcdef")]));
        assert_eq!(estimate_prompt_tokens(&r), 2 + 4);
    }

    #[test]
    fn lenient_chunks_read_nulls_and_unknown_fields() {
        let c: Chunk = serde_json::from_str(
            r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"hm"},"finish_reason":null,"logprobs":null}],"usage":null,"timings":{}}"#,
        )
        .unwrap();
        assert_eq!(c.choices.len(), 1);
        assert!(c.usage.is_none());
        assert_eq!(finish_reason("eos_token"), FinishReason::Stop);
    }
}
