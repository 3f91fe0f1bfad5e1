//! `POST /v1/chat/completions`, plain and streamed.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chorus_engine::{Detail, FinishReason, GenerationEvent, GenerationStream, Usage};
use chorus_proto::openai::{
    self as wire, AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChoiceLogprobs, ChunkChoice, ChunkUsage, Delta, ErrorResponse, ObjectType, Role,
};
use futures::StreamExt;

use super::{ResponseMeta, convert};
use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

/// Create a chat completion
///
/// Answers the conversation in `messages` with the model's next message, as one JSON body or,
/// with `stream: true`, as server-sent events: each `data:` line is a `ChatCompletionChunk`, and
/// the last is `data: [DONE]`. An error after the stream started is sent as an `ErrorResponse`
/// event before `[DONE]`.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    operation_id = "createChatCompletion",
    tag = "openai",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion (`application/json`), or its chunks as server-sent events \
            (`text/event-stream`, with `stream: true`)",
            content((ChatCompletion = "application/json"), (ChatCompletionChunk = "text/event-stream"))),
        (status = 400, description = "Invalid request: malformed JSON, a bad field (named in `param`), \
            or a prompt longer than the context (`context_length_exceeded`)", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
        (status = 413, description = "The body is over the server's limit", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 503, description = "The model cannot take work: no room in the memory budget now (`model_busy`, with `Retry-After`), a failed load, or shutting down", body = ErrorResponse),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    AppJson(req): AppJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let plan = convert::chat(req, &state.config)?;
    let (model, route) =
        state.engine.pick(plan.model.as_deref(), &plan.request.prompt, plan.category.as_deref()).await?;
    let wants_logprobs = plan.request.logprobs.is_some();
    let generation = state.engine.generate(Some(&model), plan.request).await?;
    let meta = ResponseMeta::new("chatcmpl", model);
    if plan.stream {
        return Ok(crate::route::with_header(stream(state, meta, generation, plan.include_usage), route.as_ref()));
    }
    let done = tokio::select! {
        result = generation.collect() => result?,
        () = state.abort.cancelled() => return Err(sse::shutting_down()),
    };
    let tool_calls = (!done.tool_calls.is_empty()).then(|| tool_calls_wire(&done.tool_calls));
    // OpenAI sends `content: null` for an answer that only calls tools.
    let content = if tool_calls.is_some() && done.text.is_empty() { None } else { Some(done.text) };
    let body = Json(ChatCompletion {
        id: meta.id,
        object: ObjectType::ChatCompletion,
        created: meta.created,
        model: meta.model,
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage { role: Role::Assistant, content, refusal: None, tool_calls },
            finish_reason: finish(done.finish_reason),
            logprobs: if wants_logprobs {
                Some(
                    super::logprobs_wire(&done.tokens)
                        .unwrap_or(ChoiceLogprobs { content: Some(Vec::new()), refusal: None }),
                )
            } else {
                None
            },
        }],
        usage: usage_wire(done.usage),
        system_fingerprint: Some(meta.fingerprint),
        timings: Some(super::timings_wire(&done.usage)),
    });
    Ok(crate::route::with_header(body.into_response(), route.as_ref()))
}

impl ResponseMeta {
    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>, include_usage: bool) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: ObjectType::ChatCompletionChunk,
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish_reason.map(finish), logprobs: None }],
            usage: if include_usage { ChunkUsage::Null } else { ChunkUsage::Absent },
            system_fingerprint: Some(self.fingerprint.clone()),
            timings: None,
        }
    }
}

fn stream(state: AppState, meta: ResponseMeta, mut generation: GenerationStream, include_usage: bool) -> Response {
    let abort = state.abort.clone();
    let events = async_stream::stream! {
        let first = Delta { role: Some(Role::Assistant), content: Some(String::new()), tool_calls: None };
        yield sse::json(&meta.chunk(first, None, include_usage));
        // Tokens (with logprobs, when asked) since the last content chunk.
        let mut pending = Vec::new();
        loop {
            let event = tokio::select! {
                event = generation.next() => event,
                () = abort.cancelled() => {
                    yield sse::error(&sse::shutting_down());
                    break;
                }
            };
            match event {
                Some(GenerationEvent::Text(text)) => {
                    let delta = Delta { content: Some(text), ..Delta::default() };
                    let mut chunk = meta.chunk(delta, None, include_usage);
                    chunk.choices[0].logprobs = super::logprobs_wire(&std::mem::take(&mut pending));
                    yield sse::json(&chunk);
                }
                Some(GenerationEvent::Detail(Detail::Token(t))) => pending.push(t),
                Some(GenerationEvent::Detail(Detail::StopWord(_))) => {}
                Some(GenerationEvent::ToolCalls(calls)) => {
                    let chunks = tool_calls_wire(&calls)
                        .into_iter()
                        .zip(0..)
                        .map(|(call, index)| wire::ToolCallChunk {
                            index,
                            id: Some(call.id),
                            kind: Some(wire::ToolType::Function),
                            function: Some(wire::FunctionCallChunk {
                                name: Some(call.function.name),
                                arguments: Some(call.function.arguments),
                            }),
                        })
                        .collect();
                    let delta = Delta { tool_calls: Some(chunks), ..Delta::default() };
                    yield sse::json(&meta.chunk(delta, None, include_usage));
                }
                Some(GenerationEvent::Done { finish_reason, usage }) => {
                    let timings = Some(super::timings_wire(&usage));
                    let mut end = meta.chunk(Delta::default(), Some(finish_reason), include_usage);
                    end.timings = timings;
                    yield sse::json(&end);
                    if include_usage {
                        let mut last = meta.chunk(Delta::default(), None, include_usage);
                        last.choices.clear();
                        last.usage = ChunkUsage::Counts(usage_wire(usage));
                        last.timings = timings;
                        yield sse::json(&last);
                    }
                    break;
                }
                Some(GenerationEvent::Error(e)) => {
                    yield sse::error(&ApiError::from(e));
                    break;
                }
                None => {
                    yield sse::error(&ApiError::unavailable());
                    break;
                }
            }
        }
        yield sse::done();
    };
    sse::response(events)
}

pub(super) fn finish(reason: FinishReason) -> wire::FinishReason {
    match reason {
        FinishReason::Stop => wire::FinishReason::Stop,
        FinishReason::Length => wire::FinishReason::Length,
        FinishReason::ToolCalls => wire::FinishReason::ToolCalls,
    }
}

fn tool_calls_wire(calls: &[chorus_engine::ToolCall]) -> Vec<wire::ToolCall> {
    calls.iter().map(chorus_engine::wire::tool_call).collect()
}

pub(crate) fn usage_wire(u: Usage) -> wire::Usage {
    wire::Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
        prompt_tokens_details: Some(wire::PromptTokensDetails { cached_tokens: u.cached_tokens }),
    }
}
