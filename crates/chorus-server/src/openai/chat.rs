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
use futures::stream::select_all;

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
    let generations = state.engine.generate_choices(Some(&model), plan.request, plan.n).await?;
    let meta = ResponseMeta::new("chatcmpl", model);
    if plan.stream {
        let response = stream(state, meta, generations, plan.include_usage, plan.timings_per_token);
        return Ok(crate::route::with_header(response, route.as_ref()));
    }
    let collected = tokio::select! {
        all = futures::future::join_all(generations.into_iter().map(GenerationStream::collect)) => all,
        () = state.abort.cancelled() => return Err(sse::shutting_down()),
    };
    let mut usage = None;
    let mut choices = Vec::with_capacity(collected.len());
    for (index, result) in (0..).zip(collected) {
        let done = result?;
        add_choice(&mut usage, done.usage);
        let tool_calls = (!done.tool_calls.is_empty()).then(|| tool_calls_wire(&done.tool_calls));
        // OpenAI sends `content: null` for an answer that only calls tools.
        let content = if tool_calls.is_some() && done.text.is_empty() { None } else { Some(done.text) };
        choices.push(ChatChoice {
            index,
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
        });
    }
    let usage = usage.unwrap_or_default();
    let body = Json(ChatCompletion {
        id: meta.id,
        object: ObjectType::ChatCompletion,
        created: meta.created,
        model: meta.model,
        choices,
        usage: usage_wire(usage),
        system_fingerprint: Some(meta.fingerprint),
        timings: Some(super::timings_wire(&usage)),
    });
    Ok(crate::route::with_header(body.into_response(), route.as_ref()))
}

/// The usage of `n` choices of one prompt, as OpenAI counts it: the prompt once (the
/// choices share it), the completions summed; the times are the longest (they overlap).
fn add_choice(total: &mut Option<Usage>, u: Usage) {
    match total {
        None => *total = Some(u),
        Some(t) => {
            t.completion_tokens += u.completion_tokens;
            t.prompt_ms = t.prompt_ms.max(u.prompt_ms);
            t.predicted_ms = t.predicted_ms.max(u.predicted_ms);
        }
    }
}

impl ResponseMeta {
    fn chunk(
        &self,
        index: u32,
        delta: Delta,
        finish_reason: Option<FinishReason>,
        include_usage: bool,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: ObjectType::ChatCompletionChunk,
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index, delta, finish_reason: finish_reason.map(finish), logprobs: None }],
            usage: if include_usage { ChunkUsage::Null } else { ChunkUsage::Absent },
            system_fingerprint: Some(self.fingerprint.clone()),
            timings: None,
        }
    }
}

/// The chunks of every choice as they come (each names its `index`), each choice's last
/// with its `finish_reason` and `timings` (with `timings_per_token`, every chunk with text
/// has its choice's `timings` so far); with `include_usage`, one chunk of the usage of all of
/// them after the last.
fn stream(
    state: AppState,
    meta: ResponseMeta,
    generations: Vec<GenerationStream>,
    include_usage: bool,
    timings_per_token: bool,
) -> Response {
    let abort = state.abort.clone();
    let mut open = generations.len();
    // Tokens (with logprobs, when asked) since each choice's last content chunk.
    let mut pending: Vec<Vec<chorus_engine::SampledToken>> = vec![Vec::new(); open];
    let mut merged = select_all((0..).zip(generations).map(|(i, g)| g.map(move |e| (i, e))));
    let events = async_stream::stream! {
        for index in (0..).take(open) {
            // As llama-server's first chunk: the role, `content: null`.
            let first = Delta { role: Some(Role::Assistant), content: None, tool_calls: None };
            yield sse::json(&meta.chunk(index, first, None, include_usage));
        }
        let mut usage = None;
        let mut failed = false;
        while open > 0 {
            let event = tokio::select! {
                event = merged.next() => event,
                () = abort.cancelled() => {
                    yield sse::error(&sse::shutting_down());
                    failed = true;
                    break;
                }
            };
            match event {
                Some((i, GenerationEvent::Text(text))) => {
                    let delta = Delta { content: Some(text), ..Delta::default() };
                    let mut chunk = meta.chunk(i, delta, None, include_usage);
                    let tokens = std::mem::take(&mut pending[i as usize]);
                    if timings_per_token && let Some(t) = tokens.last() {
                        chunk.timings = Some(super::timings_wire(&t.usage));
                    }
                    chunk.choices[0].logprobs = super::logprobs_wire(&tokens);
                    yield sse::json(&chunk);
                }
                Some((i, GenerationEvent::Detail(Detail::Token(t)))) => pending[i as usize].push(t),
                Some((_, GenerationEvent::Detail(Detail::StopWord(_) | Detail::PromptToken(_)))) => {}
                Some((i, GenerationEvent::ToolCalls(calls))) => {
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
                    yield sse::json(&meta.chunk(i, delta, None, include_usage));
                }
                Some((i, GenerationEvent::Done { finish_reason, usage: u })) => {
                    open -= 1;
                    add_choice(&mut usage, u);
                    let mut end = meta.chunk(i, Delta::default(), Some(finish_reason), include_usage);
                    end.timings = Some(super::timings_wire(&u));
                    yield sse::json(&end);
                }
                Some((_, GenerationEvent::Error(e))) => {
                    yield sse::error(&ApiError::from(e));
                    failed = true;
                    break;
                }
                None => {
                    yield sse::error(&ApiError::unavailable());
                    failed = true;
                    break;
                }
            }
        }
        if include_usage && !failed && let Some(usage) = usage {
            let mut last = meta.chunk(0, Delta::default(), None, include_usage);
            last.choices.clear();
            last.usage = ChunkUsage::Counts(usage_wire(usage));
            last.timings = Some(super::timings_wire(&usage));
            yield sse::json(&last);
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
