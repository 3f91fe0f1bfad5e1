//! Ollama's generation routes: `POST /api/chat`, `POST /api/generate` (NDJSON streams by
//! default, one object with `stream: false`), `POST /api/embed` and the legacy `POST
//! /api/embeddings`. `options` map onto the engine's sampling (Ollama `docs/modelfile.md`,
//! "Valid Parameters and Values"); `format` is `"json"` or a JSON schema; the last line
//! carries `done_reason` and the counters, durations in nanoseconds.

use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chorus_engine::request::{ChatMessage, Role};
use chorus_engine::tools::{FunctionDefinition, ResponseFormat, ToolCall, ToolChoice};
use chorus_engine::{
    Detail, EmbedRequest as EngineEmbed, EmbeddingInput, FinishReason, GenerateRequest as EngineRequest,
    GenerationEvent, GenerationStream, KeepAlive, Prompt, SamplingParams, Usage,
};
use chorus_proto::ollama::{
    ChatRequest, ChatResponse, Done, EmbedInput, EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse,
    ErrorResponse, Format, GenerateRequest, GenerateResponse, Message, Options, ToolCallFunction,
};
use futures::StreamExt;

use super::{OllamaError, line, ndjson, parse, resolve, rfc3339};
use crate::{AppState, ServerConfig};

/// The engine's sampling for `options`, over the server's defaults.
fn sampling(defaults: &SamplingParams, o: &Options) -> SamplingParams {
    let mut s = defaults.clone();
    if let Some(t) = o.temperature {
        s.temperature = t;
    }
    if let Some(k) = o.top_k {
        s.top_k = k;
    }
    if let Some(p) = o.top_p {
        s.top_p = p;
    }
    if let Some(p) = o.min_p {
        s.min_p = p;
    }
    if let Some(seed) = o.seed {
        // A negative seed (Ollama's -1) draws one at random.
        s.seed = u32::try_from(seed).ok();
    }
    if let Some(p) = o.repeat_penalty {
        s.repeat_penalty = p;
    }
    if let Some(n) = o.repeat_last_n {
        s.penalty_last_n = n;
    }
    if let Some(p) = o.presence_penalty {
        s.presence_penalty = p;
    }
    if let Some(p) = o.frequency_penalty {
        s.frequency_penalty = p;
    }
    s
}

/// `num_predict` as the engine's `max_tokens`: a positive count, else (-1, -2) no limit;
/// absent, the server's `--n-predict`.
fn max_tokens(o: &Options, config: &ServerConfig) -> Option<u32> {
    match o.num_predict {
        Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(_) => None,
        None => config.n_predict,
    }
}

/// `format` in the engine's terms.
fn format(format: Option<Format>) -> Result<ResponseFormat, OllamaError> {
    match format {
        None => Ok(ResponseFormat::Text),
        Some(Format::Named(name)) => match name.as_str() {
            "" => Ok(ResponseFormat::Text),
            "json" => Ok(ResponseFormat::JsonObject),
            other => Err(OllamaError::invalid(format!("invalid format \"{other}\": give \"json\" or a JSON schema"))),
        },
        Some(Format::Schema(schema)) => Ok(ResponseFormat::JsonSchema(serde_json::Value::Object(schema))),
    }
}

fn keep_alive(value: Option<&chorus_proto::openai::KeepAlive>) -> Result<Option<KeepAlive>, OllamaError> {
    Ok(crate::openai::keep_alive(value)?)
}

/// `think: true` (or a level) on a model that does not think: Ollama's refusal.
fn check_think(think: Option<&serde_json::Value>, name: &str) -> Result<(), OllamaError> {
    match think {
        None | Some(serde_json::Value::Null | serde_json::Value::Bool(false)) => Ok(()),
        Some(_) => Err(OllamaError::invalid(format!("\"{name}\" does not support thinking"))),
    }
}

fn check_images(images: Option<&Vec<String>>, name: &str) -> Result<(), OllamaError> {
    match images {
        Some(images) if !images.is_empty() => Err(OllamaError::invalid(format!(
            "\"{name}\" does not support image input: chorus serves no vision models"
        ))),
        _ => Ok(()),
    }
}

/// Ollama's messages in the engine's terms. An assistant's calls get ids `call_N`; a `tool`
/// message answers the latest call of its `tool_name`.
fn messages(messages: Vec<Message>, name: &str) -> Result<Vec<ChatMessage>, OllamaError> {
    let mut out = Vec::with_capacity(messages.len());
    let mut calls: Vec<(String, String)> = Vec::new();
    for m in messages {
        check_images(m.images.as_ref(), name)?;
        let role = match m.role.as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(OllamaError::invalid(format!(
                    "invalid role \"{other}\": give system, user, assistant or tool"
                )));
            }
        };
        let mut message = ChatMessage::new(role, m.content);
        for call in m.tool_calls.unwrap_or_default() {
            let id = format!("call_{}", calls.len());
            calls.push((call.function.name.clone(), id.clone()));
            let arguments = match call.function.arguments {
                serde_json::Value::Null => "{}".to_owned(),
                serde_json::Value::String(text) => text,
                value => value.to_string(),
            };
            message.tool_calls.push(ToolCall { id, name: call.function.name, arguments });
        }
        if role == Role::Tool {
            message.tool_call_id = match &m.tool_name {
                Some(tool) => calls.iter().rev().find(|(n, _)| n == tool).map(|(_, id)| id.clone()),
                None => calls.last().map(|(_, id)| id.clone()),
            };
            message.name = m.tool_name;
        }
        out.push(message);
    }
    Ok(out)
}

fn tools(tools: Option<Vec<chorus_proto::openai::Tool>>) -> Vec<FunctionDefinition> {
    tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| FunctionDefinition {
            name: t.function.name,
            description: t.function.description,
            parameters: t.function.parameters.unwrap_or_else(
                || serde_json::json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            strict: false,
        })
        .collect()
}

/// The engine request with the fields both routes share.
fn request(prompt: Prompt, options: &Options, config: &ServerConfig) -> EngineRequest {
    let mut request = EngineRequest::new(prompt);
    request.sampling = sampling(&config.sampling, options);
    request.stop = options.stop.clone().unwrap_or_default();
    request.max_tokens = max_tokens(options, config);
    request
}

/// The last line's counters.
fn done(reason: &str, usage: &Usage, started: Instant, load: std::time::Duration) -> Done {
    let ns = |ms: f64| (ms.max(0.0) * 1e6) as u64;
    Done {
        done_reason: reason.to_owned(),
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: load.as_nanos() as u64,
        prompt_eval_count: usage.prompt_tokens,
        prompt_eval_duration: ns(usage.prompt_ms),
        eval_count: usage.completion_tokens,
        eval_duration: ns(usage.predicted_ms),
    }
}

fn reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop | FinishReason::ToolCalls => "stop",
        FinishReason::Length => "length",
    }
}

fn tool_calls_wire(calls: &[ToolCall]) -> Vec<chorus_proto::ollama::ToolCall> {
    calls
        .iter()
        .zip(0..)
        .map(|(c, index)| chorus_proto::ollama::ToolCall {
            function: ToolCallFunction {
                index: Some(index),
                name: c.name.clone(),
                arguments: serde_json::from_str(&c.arguments)
                    .unwrap_or_else(|_| serde_json::Value::String(c.arguments.clone())),
            },
        })
        .collect()
}

fn assistant(content: String, tool_calls: Option<Vec<chorus_proto::ollama::ToolCall>>) -> Message {
    Message { role: "assistant".to_owned(), content, thinking: None, images: None, tool_calls, tool_name: None }
}

/// No messages or prompt: load the model (`done_reason: load`), or with `keep_alive: 0`
/// unload it (`unload`).
async fn load_or_unload(
    state: &AppState,
    id: &str,
    keep_alive: Option<KeepAlive>,
) -> Result<&'static str, OllamaError> {
    if keep_alive == Some(KeepAlive::For(std::time::Duration::ZERO)) {
        state.engine.unload_model(id).await?;
        Ok("unload")
    } else {
        state.engine.load_model(id, keep_alive).await?;
        Ok("load")
    }
}

/// The `num_ctx` window: the prompt must fit in it, and the answer gets what is left.
async fn apply_num_ctx(
    state: &AppState,
    id: &str,
    options: &Options,
    request: &mut EngineRequest,
) -> Result<(), OllamaError> {
    let Some(n_ctx) = options.num_ctx.filter(|n| *n > 0) else { return Ok(()) };
    let n_ctx = u32::try_from(n_ctx).unwrap_or(u32::MAX);
    let lease = state.engine.lease(Some(id), None).await?;
    let prompt = chorus_engine::Engine::prompt_tokens(&lease, request.clone())?;
    if prompt >= n_ctx {
        return Err(OllamaError::invalid(format!(
            "the prompt is {prompt} tokens, which does not fit num_ctx {n_ctx}; raise num_ctx or shorten the prompt"
        )));
    }
    let room = n_ctx - prompt;
    request.max_tokens = Some(request.max_tokens.map_or(room, |m| m.min(room)));
    Ok(())
}

/// Chat (Ollama)
///
/// The model's next message after `messages`, streamed as NDJSON `ChatResponse` lines by
/// default (each with a piece of `message.content`; tool calls in one line; the last line has
/// `done: true`, `done_reason` and the counters), or one `ChatResponse` with `stream: false`.
/// No messages loads the model (`done_reason: load`; with `keep_alive: 0`, unloads it). A
/// failure after the stream started is an `{"error"}` line.
#[utoipa::path(
    post,
    path = "/api/chat",
    operation_id = "ollamaChat",
    tag = "ollama",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The answer, or its NDJSON lines", body = ChatResponse, content_type = "application/x-ndjson"),
        (status = 400, description = "Malformed JSON, a bad field or option, or a prompt over num_ctx", body = ErrorResponse),
        (status = 404, description = "No such model", body = ErrorResponse),
        (status = 503, description = "The model cannot take work now", body = ErrorResponse),
    )
)]
pub(super) async fn chat(State(state): State<AppState>, body: Bytes) -> Result<Response, OllamaError> {
    let started = Instant::now();
    let req: ChatRequest = parse(&body)?;
    let id = resolve(&state, &req.model)?;
    check_think(req.think.as_ref(), &req.model)?;
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let name = req.model.clone();
    if req.messages.is_empty() {
        let done_reason = load_or_unload(&state, &id, keep).await?;
        let usage = Usage::default();
        return Ok(Json(ChatResponse {
            model: name,
            created_at: rfc3339(SystemTime::now()),
            message: assistant(String::new(), None),
            done: true,
            end: Some(done(done_reason, &usage, started, started.elapsed())),
        })
        .into_response());
    }
    let options = req.options.unwrap_or_default();
    let mut request = request(Prompt::Chat(messages(req.messages, &name)?), &options, &state.config);
    request.tools = tools(req.tools);
    request.tool_choice = if request.tools.is_empty() { ToolChoice::None } else { ToolChoice::Auto };
    request.response_format = format(req.format)?;
    request.keep_alive = keep;
    apply_num_ctx(&state, &id, &options, &mut request).await?;
    let generation = state.engine.generate(Some(&id), request).await?;
    let load = started.elapsed();
    let chunk = move |message: Message, end: Option<Done>| ChatResponse {
        model: name.clone(),
        created_at: rfc3339(SystemTime::now()),
        message,
        done: end.is_some(),
        end,
    };
    if req.stream == Some(false) {
        let completion = tokio::select! {
            result = generation.collect() => result?,
            () = state.abort.cancelled() => return Err(crate::sse::shutting_down().into()),
        };
        let calls = (!completion.tool_calls.is_empty()).then(|| tool_calls_wire(&completion.tool_calls));
        let end = done(reason(completion.finish_reason), &completion.usage, started, load);
        return Ok(Json(chunk(assistant(completion.text, calls), Some(end))).into_response());
    }
    let mut events = Box::pin(events(generation, state.abort.clone()));
    let lines = async_stream::stream! {
        while let Some(event) = events.next().await {
            match event {
                Ok(GenerationEvent::Text(text)) => yield line(&chunk(assistant(text, None), None)),
                Ok(GenerationEvent::ToolCalls(calls)) => {
                    yield line(&chunk(assistant(String::new(), Some(tool_calls_wire(&calls))), None));
                }
                Ok(GenerationEvent::Done { finish_reason, usage }) => {
                    let end = done(reason(finish_reason), &usage, started, load);
                    yield line(&chunk(assistant(String::new(), None), Some(end)));
                }
                Ok(GenerationEvent::Detail(_) | GenerationEvent::Error(_)) => {}
                Err(e) => yield line(&ErrorResponse { error: e.message() }),
            }
        }
    };
    Ok(ndjson(lines))
}

/// `generation`'s events up to its `Done`; a failure (the server shutting down, the backend's
/// error, the stream gone) is one last `Err`, the `{"error"}` line of an NDJSON stream.
fn events(
    mut generation: GenerationStream,
    abort: tokio_util::sync::CancellationToken,
) -> impl futures::Stream<Item = Result<GenerationEvent, OllamaError>> {
    async_stream::stream! {
        loop {
            let event = tokio::select! {
                event = generation.next() => event,
                () = abort.cancelled() => {
                    yield Err(OllamaError::from(crate::sse::shutting_down()));
                    break;
                }
            };
            match event {
                Some(GenerationEvent::Error(e)) => {
                    yield Err(OllamaError::from(e));
                    break;
                }
                None => {
                    yield Err(OllamaError::from(crate::ApiError::unavailable()));
                    break;
                }
                Some(end @ GenerationEvent::Done { .. }) => {
                    yield Ok(end);
                    break;
                }
                Some(event) => yield Ok(event),
            }
        }
    }
}

/// Generate (Ollama)
///
/// The model's continuation of `prompt`: through its chat template with `system` (Ollama's
/// default), as it is with `raw: true`, or filling the gap before `suffix` (models with FIM
/// tokens). `context` (an earlier answer's) is put before the prompt, and the last line's
/// `context` holds this prompt's and answer's tokens. Streamed as NDJSON by default, as
/// `/api/chat`; an empty prompt loads (or with `keep_alive: 0` unloads) the model.
#[utoipa::path(
    post,
    path = "/api/generate",
    operation_id = "ollamaGenerate",
    tag = "ollama",
    request_body = GenerateRequest,
    responses(
        (status = 200, description = "The answer, or its NDJSON lines", body = GenerateResponse, content_type = "application/x-ndjson"),
        (status = 400, description = "Malformed JSON, a bad field or option, a `template`, or a prompt over num_ctx", body = ErrorResponse),
        (status = 404, description = "No such model", body = ErrorResponse),
        (status = 503, description = "The model cannot take work now", body = ErrorResponse),
    )
)]
pub(super) async fn generate(State(state): State<AppState>, body: Bytes) -> Result<Response, OllamaError> {
    let started = Instant::now();
    let req: GenerateRequest = parse(&body)?;
    let id = resolve(&state, &req.model)?;
    check_think(req.think.as_ref(), &req.model)?;
    check_images(req.images.as_ref(), &req.model)?;
    if req.template.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(OllamaError::invalid(
            "template is not supported: chorus renders the model's own chat template; send raw: true with the prompt already templated",
        ));
    }
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let name = req.model.clone();
    let text = req.prompt.unwrap_or_default();
    let suffix = req.suffix.unwrap_or_default();
    if text.is_empty() && suffix.is_empty() {
        let done_reason = load_or_unload(&state, &id, keep).await?;
        return Ok(Json(GenerateResponse {
            model: name,
            created_at: rfc3339(SystemTime::now()),
            response: String::new(),
            done: true,
            context: None,
            end: Some(done(done_reason, &Usage::default(), started, started.elapsed())),
        })
        .into_response());
    }
    let options = req.options.unwrap_or_default();
    // The prompt as tokens, so the answer's `context` can hold them (not for infill).
    let (prompt, mut context) = if !suffix.is_empty() {
        (Prompt::Infill { prefix: text, suffix, extra: Vec::new() }, None)
    } else {
        let rendered = if req.raw == Some(true) {
            text
        } else {
            let mut messages = Vec::new();
            if let Some(system) = req.system.filter(|s| !s.is_empty()) {
                messages.push(ChatMessage::new(Role::System, system));
            }
            messages.push(ChatMessage::new(Role::User, text));
            state.engine.apply_template(Some(&id), EngineRequest::new(Prompt::Chat(messages))).await?
        };
        let earlier = req.context.unwrap_or_default();
        // A prompt that continues a context does not start again with the model's BOS.
        let tokens = state.engine.tokenize(Some(&id), &rendered, earlier.is_empty(), true).await?;
        let mut ids = earlier;
        ids.extend(tokens.iter().map(|t| t.id));
        (Prompt::Tokens(ids.clone()), Some(ids))
    };
    let mut request = request(prompt, &options, &state.config);
    request.response_format = format(req.format)?;
    request.keep_alive = keep;
    request.return_tokens = context.is_some();
    apply_num_ctx(&state, &id, &options, &mut request).await?;
    let generation = state.engine.generate(Some(&id), request).await?;
    let load = started.elapsed();
    let chunk = move |response: String, context: Option<Vec<i32>>, end: Option<Done>| GenerateResponse {
        model: name.clone(),
        created_at: rfc3339(SystemTime::now()),
        response,
        done: end.is_some(),
        context,
        end,
    };
    if req.stream == Some(false) {
        let completion = tokio::select! {
            result = generation.collect() => result?,
            () = state.abort.cancelled() => return Err(crate::sse::shutting_down().into()),
        };
        if let Some(ids) = context.as_mut() {
            ids.extend(completion.tokens.iter().map(|t| t.id));
        }
        let end = done(reason(completion.finish_reason), &completion.usage, started, load);
        return Ok(Json(chunk(completion.text, context, Some(end))).into_response());
    }
    let mut events = Box::pin(events(generation, state.abort.clone()));
    let lines = async_stream::stream! {
        while let Some(event) = events.next().await {
            match event {
                Ok(GenerationEvent::Text(text)) => yield line(&chunk(text, None, None)),
                Ok(GenerationEvent::Detail(Detail::Token(t))) => {
                    if let Some(ids) = context.as_mut() {
                        ids.push(t.id);
                    }
                }
                Ok(GenerationEvent::Done { finish_reason, usage }) => {
                    let end = done(reason(finish_reason), &usage, started, load);
                    yield line(&chunk(String::new(), context.take(), Some(end)));
                }
                Ok(GenerationEvent::Detail(_) | GenerationEvent::ToolCalls(_) | GenerationEvent::Error(_)) => {}
                Err(e) => yield line(&ErrorResponse { error: e.message() }),
            }
        }
    };
    Ok(ndjson(lines))
}

/// Embed (Ollama)
///
/// One L2-normalized vector per input, from an embedding model (a generative model is
/// refused: 400). `truncate: false` makes an input over the model's context an error instead
/// of cutting it; `dimensions` keeps that many leading dimensions, normalized again.
#[utoipa::path(
    post,
    path = "/api/embed",
    operation_id = "ollamaEmbed",
    tag = "ollama",
    request_body = EmbedRequest,
    responses(
        (status = 200, description = "The vectors", body = EmbedResponse),
        (status = 400, description = "Malformed JSON, no input, a model that does not embed, or an input too long", body = ErrorResponse),
        (status = 404, description = "No such model", body = ErrorResponse),
    )
)]
pub(super) async fn embed(State(state): State<AppState>, body: Bytes) -> Result<Json<EmbedResponse>, OllamaError> {
    let started = Instant::now();
    let req: EmbedRequest = parse(&body)?;
    let id = resolve(&state, &req.model)?;
    let inputs = match req.input {
        EmbedInput::One(text) => vec![text],
        EmbedInput::Many(texts) => texts,
    };
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let request = EngineEmbed {
        inputs: inputs.into_iter().map(EmbeddingInput::Text).collect(),
        truncate: req.truncate.unwrap_or(true),
    };
    let embeddings = state.engine.embed(Some(&id), request, req.dimensions, keep).await?;
    Ok(Json(EmbedResponse {
        model: req.model,
        embeddings: embeddings.vectors,
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: 0,
        prompt_eval_count: embeddings.prompt_tokens,
    }))
}

/// Embed one text (Ollama, legacy)
#[utoipa::path(
    post,
    path = "/api/embeddings",
    operation_id = "ollamaEmbeddings",
    tag = "ollama",
    request_body = EmbeddingsRequest,
    responses(
        (status = 200, description = "The vector", body = EmbeddingsResponse),
        (status = 400, description = "Malformed JSON, or a model that does not embed", body = ErrorResponse),
        (status = 404, description = "No such model", body = ErrorResponse),
    )
)]
pub(super) async fn embeddings(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<EmbeddingsResponse>, OllamaError> {
    let req: EmbeddingsRequest = parse(&body)?;
    let id = resolve(&state, &req.model)?;
    let keep = keep_alive(req.keep_alive.as_ref())?;
    // Ollama's legacy route answers an empty prompt with an empty vector.
    if req.prompt.is_empty() {
        return Ok(Json(EmbeddingsResponse { embedding: Vec::new() }));
    }
    let request = EngineEmbed { inputs: vec![EmbeddingInput::Text(req.prompt)], truncate: true };
    let mut embeddings = state.engine.embed(Some(&id), request, None, keep).await?;
    Ok(Json(EmbeddingsResponse { embedding: embeddings.vectors.pop().unwrap_or_default() }))
}
