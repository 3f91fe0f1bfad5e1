//! `POST /v1/completions`: one choice per prompt, all prompts decoded
//! together in the same batch; plain and streamed.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chorus_engine::{Detail, GenerationEvent, GenerationStream, Usage};
use chorus_proto::openai::{
    Completion, CompletionChoice, CompletionLogprobs, CompletionRequest, ErrorResponse, ObjectType, Prompt,
};
use futures::StreamExt;
use futures::stream::select_all;

use super::chat::{finish, usage_wire};
use super::{ResponseMeta, convert};
use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

/// Create a text completion
///
/// Continues `prompt` (one string, or several answered as `choices[i]` and decoded together;
/// with `suffix`, fills the gap before it), `n` choices each, with `logprobs` when asked,
/// as one JSON body or, with `stream: true`, as server-sent events: each `data:` line is a
/// `Completion` holding the text it adds, and the last is `data: [DONE]`.
#[utoipa::path(
    post,
    path = "/v1/completions",
    operation_id = "createCompletion",
    tag = "openai",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion (`application/json`), or its pieces as server-sent events \
            (`text/event-stream`, with `stream: true`)",
            content((Completion = "application/json"), (Completion = "text/event-stream"))),
        (status = 400, description = "Invalid request: malformed JSON, a bad field (named in `param`), \
            or a prompt longer than the context (`context_length_exceeded`)", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
        (status = 413, description = "The body is over the server's limit", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 503, description = "The model cannot take work (shutting down)", body = ErrorResponse),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    AppJson(req): AppJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let n = convert::choices(req.n)?;
    let (stream, include_usage) = convert::stream_flags(req.stream, req.stream_options.as_ref())?;
    let prompts = match req.prompt {
        Prompt::One(p) => vec![p],
        Prompt::Many(ps) if ps.is_empty() => {
            return Err(ApiError::invalid(Some("prompt".to_owned()), "prompt must hold at least one string"));
        }
        Prompt::Many(ps) => ps,
    };
    let keep_alive = convert::keep_alive(req.keep_alive.as_ref())?;
    let echo = req.echo.unwrap_or(false);
    let logprobs = req.logprobs.map(|n| convert::top_logprobs_in("logprobs", Some(n))).transpose()?;
    // `echo` with `max_tokens: 0` scores the prompt alone: one token is generated and dropped.
    let prompt_only = echo && req.max_tokens == Some(0);
    let max_tokens = if prompt_only { Some(1) } else { req.max_tokens };
    let suffix = req.suffix.filter(|s| !s.is_empty());
    let requests = prompts
        .iter()
        .map(|p| {
            convert::completion(
                p.clone(),
                max_tokens,
                &req.sampling,
                req.stop.as_ref(),
                req.cache_prompt,
                keep_alive,
                &state.config.sampling,
            )
        })
        .map(|request| {
            request.map(|mut r| {
                if let Some(g) = &req.grammar {
                    r.response_format = chorus_engine::ResponseFormat::Grammar(g.clone());
                }
                r.logprobs = logprobs;
                r.prompt_logprobs = logprobs.filter(|_| echo);
                if let (Some(suffix), chorus_engine::Prompt::Text(prefix)) = (&suffix, &r.prompt) {
                    r.prompt = chorus_engine::Prompt::Infill {
                        prefix: prefix.clone(),
                        suffix: suffix.clone(),
                        extra: Vec::new(),
                    };
                }
                r
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Several prompts go to one model: the first one's route.
    let (model, route) = state.engine.pick(req.model.as_deref(), &requests[0].prompt, req.category.as_deref()).await?;
    // Schedule every prompt before waiting on any, so they share decode steps. Choice
    // `p * n + j` is prompt `p`'s `j`th, as OpenAI orders them.
    let mut generations = Vec::with_capacity(requests.len() * n as usize);
    for request in requests {
        generations.extend(state.engine.generate_choices(Some(&model), request, n).await?);
    }
    let echoes: Vec<String> = if echo {
        prompts.iter().flat_map(|p| std::iter::repeat_n(p.clone(), n as usize)).collect()
    } else {
        vec![String::new(); generations.len()]
    };
    // Where each choice's tokens start, in characters: after its prompt.
    let offsets: Vec<u32> =
        prompts.iter().flat_map(|p| std::iter::repeat_n(p.chars().count() as u32, n as usize)).collect();
    let meta = ResponseMeta::new("cmpl", model);
    if stream {
        return Ok(crate::route::with_header(
            streamed(state, meta, generations, echoes, Scoring { offsets, prompt_only }, include_usage, n),
            route.as_ref(),
        ));
    }
    let collected = tokio::select! {
        all = futures::future::join_all(generations.into_iter().map(GenerationStream::collect)) => all,
        () = state.abort.cancelled() => return Err(sse::shutting_down()),
    };
    let mut usage = Usage::default();
    let mut choices = Vec::with_capacity(collected.len());
    for (i, (result, echo)) in collected.into_iter().zip(echoes).enumerate() {
        let mut done = result?;
        if prompt_only {
            drop_generated(&mut done);
        }
        add(&mut usage, done.usage, i % n as usize == 0);
        let logprobs = logprobs.map(|_| {
            let mut offset = 0;
            let mut lp = logprobs_wire(&done.prompt_tokens, &mut offset);
            let mut offset = offsets[i];
            let generated = logprobs_wire(&done.tokens, &mut offset);
            lp.tokens.extend(generated.tokens);
            lp.token_logprobs.extend(generated.token_logprobs);
            lp.top_logprobs.extend(generated.top_logprobs);
            lp.text_offset.extend(generated.text_offset);
            lp
        });
        choices.push(CompletionChoice {
            text: echo + &done.text,
            index: i as u32,
            logprobs,
            finish_reason: Some(finish(done.finish_reason)),
        });
    }
    Ok(crate::route::with_header(Json(meta.body(choices, Some(usage))).into_response(), route.as_ref()))
}

impl ResponseMeta {
    fn body(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> Completion {
        Completion {
            id: self.id.clone(),
            object: ObjectType::TextCompletion,
            created: self.created,
            model: self.model.clone(),
            choices,
            timings: usage.as_ref().map(super::timings_wire),
            usage: usage.map(usage_wire),
            system_fingerprint: Some(self.fingerprint.clone()),
        }
    }
}

/// Add choice `u` to `total`; its prompt counts once, for its first choice (`first`), as
/// OpenAI counts `n` choices of one prompt.
fn add(total: &mut Usage, u: Usage, first: bool) {
    if first {
        total.prompt_tokens += u.prompt_tokens;
        total.cached_tokens += u.cached_tokens;
    }
    total.completion_tokens += u.completion_tokens;
    // The prompts are decoded together: their times overlap, so the longest is the time.
    total.prompt_ms = total.prompt_ms.max(u.prompt_ms);
    total.predicted_ms = total.predicted_ms.max(u.predicted_ms);
}

/// `max_tokens: 0` with `echo`: the one token generated to score the prompt is not answered.
fn drop_generated(done: &mut chorus_engine::Completion) {
    done.text.clear();
    done.tokens.clear();
    done.usage.completion_tokens = 0;
    done.finish_reason = chorus_engine::FinishReason::Length;
}

/// What the stream needs for `logprobs` and `max_tokens: 0`: each choice's character offset
/// after its prompt, and whether generated tokens are dropped.
struct Scoring {
    offsets: Vec<u32>,
    prompt_only: bool,
}

/// OpenAI's legacy `logprobs` of these tokens (generated, or an echoed prompt's: its first
/// has none), the first at character offset `offset` (advanced past them).
fn logprobs_wire(tokens: &[chorus_engine::SampledToken], offset: &mut u32) -> CompletionLogprobs {
    let text = |piece: &[u8]| String::from_utf8_lossy(piece).into_owned();
    let mut out = CompletionLogprobs::default();
    for t in tokens {
        let token = text(&t.piece);
        out.text_offset.push(*offset);
        *offset += token.chars().count() as u32;
        out.tokens.push(token);
        out.token_logprobs.push(t.logprobs.as_ref().map(|lp| f64::from(lp.logprob)));
        out.top_logprobs.push(t.logprobs.as_ref().map(|lp| {
            // Tokens whose texts are the same (bytes that are not UTF-8 alone) keep the likeliest.
            let mut top = std::collections::BTreeMap::new();
            for a in &lp.top {
                top.entry(text(&a.piece)).or_insert(f64::from(a.logprob));
            }
            top
        }));
    }
    out
}

fn streamed(
    state: AppState,
    meta: ResponseMeta,
    generations: Vec<GenerationStream>,
    echoes: Vec<String>,
    scoring: Scoring,
    include_usage: bool,
    n: u32,
) -> Response {
    let Scoring { mut offsets, prompt_only } = scoring;
    let abort = state.abort.clone();
    let mut open = generations.len();
    let mut merged = select_all(generations.into_iter().enumerate().map(|(i, g)| g.map(move |e| (i as u32, e))));
    let events = async_stream::stream! {
        let text = |index: u32, text: String, finish_reason| CompletionChoice { text, index, logprobs: None, finish_reason };
        let mut usage = Usage::default();
        let mut failed = false;
        // Per choice, the tokens (with logprobs, when asked) since its last event, and its
        // echo, sent once its prompt's log-probabilities are in (when asked for).
        let mut pending: Vec<Vec<chorus_engine::SampledToken>> = vec![Vec::new(); offsets.len()];
        let mut prompts: Vec<Vec<chorus_engine::SampledToken>> = vec![Vec::new(); offsets.len()];
        let mut echoes: Vec<Option<String>> = echoes.into_iter().map(|e| (!e.is_empty()).then_some(e)).collect();
        let mut pushback = None;
        while open > 0 {
            let event = match pushback.take() {
                Some(event) => Some(event),
                None => tokio::select! {
                    event = merged.next() => event,
                    () = abort.cancelled() => {
                        yield sse::error(&sse::shutting_down());
                        failed = true;
                        break;
                    }
                },
            };
            match event {
                Some((i, GenerationEvent::Detail(Detail::PromptToken(t)))) => prompts[i as usize].push(t),
                Some((i, event)) if echoes[i as usize].is_some() => {
                    // The echo first, with the prompt's tokens when they were asked for.
                    let mut choice = text(i, echoes[i as usize].take().unwrap_or_default(), None);
                    let scored = std::mem::take(&mut prompts[i as usize]);
                    if !scored.is_empty() {
                        choice.logprobs = Some(logprobs_wire(&scored, &mut 0));
                    }
                    yield sse::json(&meta.body(vec![choice], None));
                    pushback = Some((i, event));
                }
                Some((_, GenerationEvent::Text(_) | GenerationEvent::Detail(Detail::Token(_)))) if prompt_only => {}
                Some((i, GenerationEvent::Text(t))) => {
                    let mut choice = text(i, t, None);
                    let tokens = std::mem::take(&mut pending[i as usize]);
                    if !tokens.is_empty() {
                        choice.logprobs = Some(logprobs_wire(&tokens, &mut offsets[i as usize]));
                    }
                    yield sse::json(&meta.body(vec![choice], None));
                }
                Some((i, GenerationEvent::Detail(Detail::Token(t)))) => pending[i as usize].push(t),
                // Text completions take no tools, so no calls are parsed.
                Some((_, GenerationEvent::ToolCalls(_) | GenerationEvent::Detail(_))) => {}
                Some((i, GenerationEvent::Done { mut finish_reason, usage: mut u })) => {
                    if prompt_only {
                        (finish_reason, u.completion_tokens) = (chorus_engine::FinishReason::Length, 0);
                    }
                    add(&mut usage, u, i % n == 0);
                    open -= 1;
                    yield sse::json(&meta.body(vec![text(i, String::new(), Some(finish(finish_reason)))], None));
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
        if include_usage && !failed {
            yield sse::json(&meta.body(Vec::new(), Some(usage)));
        }
        yield sse::done();
    };
    sse::response(events)
}
