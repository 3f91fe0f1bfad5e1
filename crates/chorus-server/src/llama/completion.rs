//! llama-server's native `POST /completion` and `POST /infill` (llama.cpp
//! `tools/server/README.md`, "POST /completion", "POST /infill"): a prompt given as text,
//! token ids, both mixed, or several of those, or the code around a cursor; its sampling
//! fields (`samplers`, `id_slot` too); the answer with `tokens`, `stop_type`, `stopping_word`, `truncated`,
//! `generation_settings` and `timings`, or as server-sent events, one per piece of text
//! with the token ids that made it, the last one with `stop: true` and the rest.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chorus_engine::{
    Completion, Detail, Engine, FinishReason, GenerateRequest, GenerationEvent, GenerationStream, InfillChunk, Prompt,
    SampledToken, SamplerKind, SamplingParams,
};
use chorus_proto::llama::{
    InfillRequest, NativeCompletion, NativeCompletionEnd, NativeCompletionRequest, TokenProbability, TopProbability,
};
use chorus_proto::openai::ErrorResponse;
use futures::StreamExt;
use futures::stream::select_all;
use serde_json::Value;

use super::sampling_settings;
use crate::extract::AppJson;
use crate::openai::timings_wire;
use crate::{ApiError, AppState, sse};

/// Complete a prompt (llama-server)
///
/// Continues `prompt`: a string, token ids, a sequence mixing both (`[12, 34, "text"]`), an
/// object `{"prompt_string": …}`, or an array of such prompts (answered as an array, decoded
/// together). With `stream: true`, server-sent events: each holds a piece of text
/// (`content`) and the ids of the tokens that made it (`tokens`), with `stop: false`; the
/// last has `stop: true`, an empty `content` and the rest of the answer. There is no
/// `data: [DONE]`, as in llama-server.
#[utoipa::path(
    post,
    path = "/completion",
    operation_id = "nativeCompletion",
    tag = "llama",
    request_body = NativeCompletionRequest,
    responses(
        (status = 200, description = "The completion (an array for several prompts), or its pieces as \
            server-sent events (`text/event-stream`, with `stream: true`)", body = NativeCompletion),
        (status = 400, description = "A bad field (named in `param`), multimodal data for a text model, or a \
            prompt longer than a slot's context", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
        (status = 503, description = "The model cannot take work", body = ErrorResponse),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    AppJson(req): AppJson<NativeCompletionRequest>,
) -> Result<Response, ApiError> {
    let model = state.engine.resolve(req.model.as_deref())?;
    if req.prompt.is_null() {
        return Err(invalid("prompt", "prompt is required"));
    }
    let prompts = prompts(&state.engine, &model, &req.prompt).await?;
    complete(state, model, req, prompts).await
}

/// Fill in the middle (llama-server)
///
/// The code that goes at the cursor, between `input_prefix` + `prompt` and `input_suffix`,
/// with the files of `input_extra` for context, prompted with the model's own
/// fill-in-the-middle tokens (Qwen2.5-Coder's repository format when it has those tokens), as
/// llama.vscode asks for it. Answers as `/completion` does (one object, or server-sent events
/// with `stream: true`). What does not fit in a slot's context with room for `n_predict`
/// tokens is left out: the earliest files first, then the code farthest from the cursor.
#[utoipa::path(
    post,
    path = "/infill",
    operation_id = "infill",
    tag = "llama",
    request_body = InfillRequest,
    responses(
        (status = 200, description = "The code to insert, or its pieces as server-sent events \
            (`text/event-stream`, with `stream: true`)", body = NativeCompletion),
        (status = 400, description = "A bad field (named in `param`; an `input_extra` item needs a string `text`), \
            or a model without fill-in-the-middle tokens (`model`)", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
        (status = 503, description = "The model cannot take work", body = ErrorResponse),
    )
)]
pub(crate) async fn infill(
    State(state): State<AppState>,
    AppJson(req): AppJson<InfillRequest>,
) -> Result<Response, ApiError> {
    let model = state.engine.resolve(req.completion.model.as_deref())?;
    let line = match &req.completion.prompt {
        Value::Null => "",
        Value::String(text) => text.as_str(),
        _ => return Err(invalid("prompt", "prompt of /infill is a string: the cursor's line up to the cursor")),
    };
    let prompt = Prompt::Infill {
        prefix: format!("{}{line}", req.input_prefix),
        suffix: req.input_suffix,
        extra: req.input_extra.into_iter().map(|e| InfillChunk { filename: e.filename, text: e.text }).collect(),
    };
    complete(state, model, req.completion, vec![prompt]).await
}

/// `/completion` and `/infill` once the prompts are read.
async fn complete(
    state: AppState,
    model: String,
    req: NativeCompletionRequest,
    prompts: Vec<Prompt>,
) -> Result<Response, ApiError> {
    let engine = &state.engine;
    let max_tokens = match req.n_predict.or(req.max_tokens) {
        None => state.config.n_predict,
        Some(n) if n < 0 => None,
        Some(0) => return Err(invalid("n_predict", "n_predict must be -1 (no limit) or at least 1")),
        Some(n) => Some(u32::try_from(n).map_err(|_| invalid("n_predict", "n_predict is too large"))?),
    };
    let sampling = sampling(engine, &model, &req, &state.config.sampling).await?;
    let id_slot = match req.id_slot {
        None | Some(-1) => None,
        Some(id) => Some(u32::try_from(id).map_err(|_| invalid("id_slot", "id_slot must be -1 or a slot's id"))?),
    };
    let max_probs = chorus_engine::request::MAX_TOP_LOGPROBS;
    if req.n_probs.is_some_and(|n| n > max_probs) {
        return Err(invalid("n_probs", format!("n_probs must be from 0 to {max_probs}")));
    }
    let mut generations = Vec::with_capacity(prompts.len());
    let mut texts = Vec::with_capacity(prompts.len());
    for prompt in prompts {
        // Token ids are checked (a 400 on `prompt`) when the generation is scheduled, first.
        let ids = match &prompt {
            Prompt::Text(text) => {
                texts.push(text.clone());
                None
            }
            Prompt::Infill { prefix, .. } => {
                texts.push(prefix.clone());
                None
            }
            Prompt::Tokens(tokens) => Some(tokens.clone()),
            Prompt::Chat(_) => {
                texts.push(String::new());
                None
            }
        };
        let mut request = GenerateRequest::new(prompt);
        request.sampling = sampling.clone();
        request.stop.clone_from(&req.stop);
        request.max_tokens = max_tokens;
        request.cache_prompt = req.cache_prompt.unwrap_or(true);
        request.response_format =
            crate::openai::convert::constraint(None, req.json_schema.clone(), req.grammar.clone())?;
        request.return_tokens = true;
        request.logprobs = req.n_probs.filter(|&n| n > 0);
        request.id_slot = id_slot;
        generations.push(engine.generate(Some(&model), request).await?);
        if let Some(ids) = ids {
            texts.push(engine.detokenize(Some(&model), &ids).await?);
        }
    }
    let end = EndInfo { model, sampling, max_tokens, stop: req.stop.clone() };
    if req.stream {
        return Ok(streamed(state, generations, texts, end));
    }
    let several = generations.len() > 1 || req.prompt.is_array() && !has_numbers(&req.prompt);
    let mut answers = Vec::with_capacity(generations.len());
    for (index, (generation, prompt)) in generations.into_iter().zip(texts).enumerate() {
        let done = generation.collect().await?;
        let mut answer = end.answer(index as u32, done.text.clone(), &done, prompt);
        answer.completion_probabilities = probabilities(&done.tokens);
        if !req.return_tokens {
            answer.tokens.clear();
        }
        answers.push(answer);
    }
    Ok(match several {
        true => Json(answers).into_response(),
        false => Json(answers.remove(0)).into_response(),
    })
}

/// What the last event repeats of the request.
struct EndInfo {
    model: String,
    sampling: SamplingParams,
    max_tokens: Option<u32>,
    stop: Vec<String>,
}

impl EndInfo {
    /// The whole answer (or the last event, with `content` empty) of prompt `index`; `done.text`
    /// is the whole text either way.
    fn answer(&self, index: u32, content: String, done: &Completion, prompt: String) -> NativeCompletion {
        let u = &done.usage;
        let limited = self.max_tokens.is_some_and(|m| u.completion_tokens >= m);
        // llama-server says `limit` for a full context too (and `truncated` then).
        let stop_type = match (done.finish_reason, &done.stop_word) {
            (FinishReason::Length, _) => "limit",
            (_, Some(_)) => "word",
            _ => "eos",
        };
        NativeCompletion {
            index,
            content,
            tokens: done.tokens.iter().map(|t| t.id).collect(),
            stop: true,
            completion_probabilities: None,
            end: Some(NativeCompletionEnd {
                model: self.model.clone(),
                tokens_predicted: u.completion_tokens,
                tokens_evaluated: u.prompt_tokens,
                tokens_cached: u.cached_tokens,
                generation_settings: sampling_settings(&self.sampling, self.max_tokens, &self.stop),
                prompt,
                has_new_line: done.text.contains('\n'),
                // The context filled before `n_predict` did.
                truncated: done.finish_reason == FinishReason::Length && !limited,
                stop_type: stop_type.to_owned(),
                stopping_word: done.stop_word.clone().unwrap_or_default(),
                timings: timings_wire(u),
            }),
        }
    }
}

fn streamed(state: AppState, generations: Vec<GenerationStream>, prompts: Vec<String>, end: EndInfo) -> Response {
    let abort = state.abort.clone();
    let mut open = generations.len();
    let n = generations.len();
    let mut merged = select_all(generations.into_iter().enumerate().map(|(i, g)| g.map(move |e| (i, e))));
    let events = async_stream::stream! {
        // Per prompt: the tokens since the last event, the text so far, the stop word.
        let mut pending: Vec<Vec<SampledToken>> = vec![Vec::new(); n];
        let mut texts: Vec<String> = vec![String::new(); n];
        let mut words: Vec<Option<String>> = vec![None; n];
        while open > 0 {
            let event = tokio::select! {
                event = merged.next() => event,
                () = abort.cancelled() => {
                    yield sse::error(&sse::shutting_down());
                    break;
                }
            };
            match event {
                Some((i, GenerationEvent::Text(t))) => {
                    texts[i].push_str(&t);
                    let sampled = std::mem::take(&mut pending[i]);
                    yield sse::json(&NativeCompletion {
                        index: i as u32,
                        content: t,
                        tokens: sampled.iter().map(|t| t.id).collect(),
                        stop: false,
                        completion_probabilities: probabilities(&sampled),
                        end: None,
                    });
                }
                Some((i, GenerationEvent::Detail(Detail::Token(t)))) => pending[i].push(t),
                Some((i, GenerationEvent::Detail(Detail::StopWord(w)))) => words[i] = Some(w),
                Some((_, GenerationEvent::ToolCalls(_) | GenerationEvent::Detail(Detail::PromptToken(_)))) => {}
                Some((i, GenerationEvent::Done { finish_reason, usage })) => {
                    open -= 1;
                    let done = Completion {
                        text: std::mem::take(&mut texts[i]),
                        tool_calls: Vec::new(),
                        finish_reason,
                        usage,
                        tokens: Vec::new(),
                        stop_word: words[i].take(),
                        prompt_tokens: Vec::new(),
                    };
                    yield sse::json(&end.answer(i as u32, String::new(), &done, prompts[i].clone()));
                }
                Some((_, GenerationEvent::Error(e))) => {
                    yield sse::error(&ApiError::from(e));
                    break;
                }
                None => {
                    yield sse::error(&ApiError::unavailable());
                    break;
                }
            }
        }
    };
    sse::response(events)
}

/// `completion_probabilities` of these tokens; `None` when they carry none (no `n_probs`).
fn probabilities(tokens: &[SampledToken]) -> Option<Vec<TokenProbability>> {
    let text = |piece: &[u8]| String::from_utf8_lossy(piece).into_owned();
    let out: Vec<TokenProbability> = tokens
        .iter()
        .filter_map(|t| {
            let lp = t.logprobs.as_ref()?;
            Some(TokenProbability {
                id: t.id,
                token: text(&t.piece),
                logprob: f64::from(lp.logprob),
                bytes: t.piece.clone(),
                top_logprobs: lp
                    .top
                    .iter()
                    .map(|a| TopProbability {
                        id: a.id,
                        token: text(&a.piece),
                        logprob: f64::from(a.logprob),
                        bytes: a.piece.clone(),
                    })
                    .collect(),
            })
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Some(param.to_owned()), message)
}

fn has_numbers(value: &Value) -> bool {
    value.as_array().is_some_and(|a| a.iter().any(Value::is_number))
}

/// llama-server's reading of `prompt` (`tokenize_input_prompts`): an array holding a number
/// is one prompt; any other array is several.
async fn prompts(engine: &Engine, model: &str, prompt: &Value) -> Result<Vec<Prompt>, ApiError> {
    let parts: Vec<&Value> = match prompt {
        Value::Array(items) if !has_numbers(prompt) => items.iter().collect(),
        other => vec![other],
    };
    if parts.is_empty() {
        return Err(invalid("prompt", "prompt must not be empty"));
    }
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        out.push(subprompt(engine, model, part).await?);
    }
    Ok(out)
}

/// One prompt: a string, token ids, a mix of both, or `{"prompt_string": …}`.
async fn subprompt(engine: &Engine, model: &str, part: &Value) -> Result<Prompt, ApiError> {
    const SHAPES: &str = "prompt must be a string, token ids, a list mixing strings and token ids, an object with \
        `prompt_string`, or an array of those";
    match part {
        Value::String(text) => Ok(Prompt::Text(text.clone())),
        Value::Object(map) => {
            if map.contains_key("multimodal_data") {
                return Err(invalid("prompt", format!("the model `{model}` takes no multimodal data (images, audio)")));
            }
            match map.get("prompt_string") {
                Some(Value::String(text)) => Ok(Prompt::Text(text.clone())),
                Some(mixed @ Value::Array(_)) => Box::pin(subprompt(engine, model, mixed)).await,
                _ => Err(invalid("prompt", SHAPES)),
            }
        }
        Value::Array(items) => {
            // Token ids as they are; strings tokenized, the first with the model's BOS.
            let mut tokens = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Number(n) => {
                        let id = n.as_i64().and_then(|v| i32::try_from(v).ok());
                        tokens.push(id.ok_or_else(|| invalid("prompt", format!("`{n}` is not a token id")))?);
                    }
                    Value::String(text) => {
                        let pieces = engine.tokenize(Some(model), text, i == 0, true).await?;
                        tokens.extend(pieces.iter().map(|t| t.id));
                    }
                    _ => return Err(invalid("prompt", SHAPES)),
                }
            }
            Ok(Prompt::Tokens(tokens))
        }
        _ => Err(invalid("prompt", SHAPES)),
    }
}

/// The request's sampling fields over the server's defaults (`--temp`, `--seed`; otherwise
/// llama-server's).
async fn sampling(
    engine: &Engine,
    model: &str,
    req: &NativeCompletionRequest,
    defaults: &SamplingParams,
) -> Result<SamplingParams, ApiError> {
    let mut p = defaults.clone();
    if let Some(v) = req.temperature {
        // llama-server samples greedily at and below 0.
        p.temperature = v.max(0.0);
    }
    if let Some(v) = req.top_k {
        p.top_k = v.max(0);
    }
    if let Some(v) = req.top_p {
        p.top_p = v;
    }
    if let Some(v) = req.min_p {
        p.min_p = v;
    }
    p.seed = match req.seed {
        None => p.seed,
        Some(-1) => None,
        Some(s) if s == i64::from(u32::MAX) => None,
        Some(s) => Some(u32::try_from(s).map_err(|_| invalid("seed", "seed must be -1 or from 0 to 4294967295"))?),
    };
    if let Some(v) = req.repeat_penalty {
        p.repeat_penalty = v;
    }
    if let Some(v) = req.repeat_last_n {
        p.penalty_last_n = v;
    }
    if let Some(v) = req.presence_penalty {
        p.presence_penalty = v;
    }
    if let Some(v) = req.frequency_penalty {
        p.frequency_penalty = v;
    }
    p.ignore_eos |= req.ignore_eos;
    if let Some(bias) = &req.logit_bias {
        p.logit_bias = logit_bias(engine, model, bias).await?;
    }
    if let Some(names) = &req.samplers {
        p.samplers = Some(samplers(names)?);
    }
    Ok(p)
}

/// llama-server's `samplers`: an array of names, or a string of one letter each; names chorus
/// has no sampler for are skipped, as llama-server skips names it does not know.
fn samplers(value: &Value) -> Result<Vec<SamplerKind>, ApiError> {
    const SHAPE: &str = "samplers must be an array of sampler names (\"top_k\", \"top_p\", \"min_p\", \
        \"temperature\", \"penalties\") or a string of their letters (\"kpmt\")";
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(|| invalid("samplers", SHAPE)))
            .filter_map(|name| name.map(SamplerKind::from_name).transpose())
            .collect(),
        Value::String(letters) => {
            Ok(letters.chars().filter_map(|c| SamplerKind::from_name(c.encode_utf8(&mut [0; 4]))).collect())
        }
        _ => Err(invalid("samplers", SHAPE)),
    }
}

/// llama-server's `logit_bias` shapes: `[[id or "text", bias or false], …]` or
/// `{"id" or "text": bias or false}`; a text biases each of its tokens, `false` bans.
async fn logit_bias(engine: &Engine, model: &str, bias: &Value) -> Result<Vec<(i32, f32)>, ApiError> {
    const SHAPE: &str = "logit_bias must be [[token id or text, bias or false], …] or {\"token id or text\": bias}";
    let pairs: Vec<(Value, &Value)> = match bias {
        Value::Array(items) => items
            .iter()
            .map(|item| match item.as_array().map(Vec::as_slice) {
                Some([key, value]) => Ok((key.clone(), value)),
                _ => Err(invalid("logit_bias", SHAPE)),
            })
            .collect::<Result<_, _>>()?,
        Value::Object(map) => map.iter().map(|(k, v)| (Value::String(k.clone()), v)).collect(),
        _ => return Err(invalid("logit_bias", SHAPE)),
    };
    let mut out = Vec::new();
    for (key, value) in pairs {
        let bias = match value {
            // A banned token: as far down as the field's range goes.
            Value::Bool(false) => -100.0,
            Value::Number(n) => n.as_f64().map_or(0.0, |b| b as f32),
            _ => return Err(invalid("logit_bias", SHAPE)),
        };
        let ids: Vec<i32> = match &key {
            Value::Number(n) => {
                vec![n.as_i64().and_then(|v| i32::try_from(v).ok()).ok_or_else(|| invalid("logit_bias", SHAPE))?]
            }
            Value::String(s) => match s.parse::<i32>() {
                Ok(id) => vec![id],
                Err(_) => engine.tokenize(Some(model), s, false, false).await?.iter().map(|t| t.id).collect(),
            },
            _ => return Err(invalid("logit_bias", SHAPE)),
        };
        out.extend(ids.into_iter().map(|id| (id, bias)));
    }
    Ok(out)
}
