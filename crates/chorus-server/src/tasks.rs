//! TBot's task endpoints (wire types in [`chorus_proto::tasks`]): `POST /generate` (routed
//! by content), `/code/completion` (fill-in-the-middle with the code model's tokens),
//! `/code/generation`, `/translate` and `/math/solve` (each its router category, so its
//! model). Each answers as JSON or, with `stream: true`, as server-sent events; errors are
//! OpenAI's error object.
//!
//! `/translate` and `/math/solve` constrain the model's answer to a JSON schema
//! (`{source_lang?, translation}`, `{steps, answer}`), so the fields are always there to read.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chorus_engine::request::{ChatMessage, Role};
use chorus_engine::tools::ResponseFormat;
use chorus_engine::{GenerateRequest, GenerationEvent, GenerationStream, Prompt, RouteDecision, RouteInput};
use chorus_proto::openai::ErrorResponse;
use chorus_proto::tasks::{
    CodeCompletionRequest, CodeGenerationRequest, GenerateTaskRequest, MathSolveRequest, TaskChunk, TaskOptions,
    TaskResponse, TranslateRequest,
};
use futures::StreamExt;
use serde_json::json;
use utoipa::OpenApi;

use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

/// The OpenAPI description of [`routes`].
#[derive(OpenApi)]
#[openapi(paths(generate, code_completion, code_generation, translate, math_solve, crate::route::dry_run))]
pub(crate) struct ApiDoc;

pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/generate", post(generate))
        .route("/code/completion", post(code_completion))
        .route("/code/generation", post(code_generation))
        .route("/translate", post(translate))
        .route("/math/solve", post(math_solve))
        .route("/api/v1/route", post(crate::route::dry_run))
}

/// Most tokens `/math/solve` and `/translate` write unless asked: their answers are JSON, which
/// a small model could otherwise extend forever.
const STRUCTURED_MAX_TOKENS: u32 = 1024;

/// How a task's text becomes its answer's fields.
enum Shape {
    Text,
    Code,
    Translation { source_lang: Option<String>, target_lang: String },
    Math,
}

/// A task ready to run.
struct Task {
    /// The route (the endpoint's category, a forced one, or the classifier's).
    route: RouteDecision,
    model: String,
    request: GenerateRequest,
    shape: Shape,
    stream: bool,
    session_id: Option<String>,
}

/// A required text field: absent or blank is a 400 naming it.
fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(ApiError::invalid(Some(field.to_owned()), format!("`{field}` must not be empty"))),
        None => Err(ApiError::invalid(Some(field.to_owned()), format!("`{field}` is required"))),
    }
}

/// The sampling and length fields, on a request for `prompt`.
fn request(prompt: Prompt, options: &TaskOptions, default_max: Option<u32>) -> Result<GenerateRequest, ApiError> {
    let mut request = GenerateRequest::new(prompt);
    request.max_tokens = match (options.max_tokens, options.max_gen) {
        (Some(n), _) => Some(crate::openai::max_tokens("max_tokens", n)?),
        (None, Some(n)) => Some(crate::openai::max_tokens("max_gen", n)?),
        (None, None) => default_max,
    };
    if let Some(t) = options.temperature {
        request.sampling.temperature = t;
    }
    if let Some(p) = options.top_p {
        request.sampling.top_p = p;
    }
    Ok(request)
}

fn chat(system: &str, user: String) -> Prompt {
    Prompt::Chat(vec![ChatMessage::new(Role::System, system), ChatMessage::new(Role::User, user)])
}

impl Task {
    /// Route (`endpoint` category, or the prompt's) and pick the model: `options.model` wins.
    async fn new(
        state: &AppState,
        input: RouteInput<'_>,
        options: &TaskOptions,
        request: GenerateRequest,
        shape: Shape,
    ) -> Result<Self, ApiError> {
        let route = state.engine.route(input).await?;
        let model = match &options.model {
            Some(m) if m != "auto" => state.engine.resolve(Some(m))?,
            _ => route.require_model()?.to_owned(),
        };
        if let Some(from) = &options.from {
            tracing::debug!(from, "task request");
        }
        Ok(Self {
            route,
            model,
            request,
            shape,
            stream: options.stream.unwrap_or(false),
            session_id: options.session_id.clone(),
        })
    }

    async fn run(self, state: AppState) -> Result<Response, ApiError> {
        let started = Instant::now();
        let generation = state.engine.generate(Some(&self.model), self.request.clone()).await?;
        let header = self.route.clone();
        let response = if self.stream {
            self.streamed(state, generation, started)
        } else {
            let done = tokio::select! {
                done = generation.collect() => done?,
                () = state.abort.cancelled() => return Err(sse::shutting_down()),
            };
            Json(self.answer(done, started)).into_response()
        };
        Ok(crate::route::with_header(response, Some(&header)))
    }

    fn answer(&self, done: chorus_engine::Completion, started: Instant) -> TaskResponse {
        let mut answer = TaskResponse {
            text: done.text.clone(),
            response: done.text.clone(),
            model: self.model.clone(),
            category: self.route.category.clone(),
            from: self.model.clone(),
            route: chorus_engine::wire::route(&self.route),
            finish_reason: done.finish_reason.as_str().to_owned(),
            usage: crate::openai::usage_wire(done.usage),
            generation_time: started.elapsed().as_secs_f64(),
            tokens_generated: done.usage.completion_tokens,
            session_id: self.session_id.clone(),
            code: None,
            translation: None,
            source_lang: None,
            target_lang: None,
            answer: None,
            steps: None,
        };
        let parsed: serde_json::Value = serde_json::from_str(done.text.trim()).unwrap_or_default();
        match &self.shape {
            Shape::Text => {}
            Shape::Code => answer.code = first_code_block(&done.text),
            Shape::Translation { source_lang, target_lang } => {
                answer.translation = Some(parsed["translation"].as_str().unwrap_or_default().to_owned());
                answer.source_lang = source_lang.clone().or_else(|| parsed["source_lang"].as_str().map(str::to_owned));
                answer.target_lang = Some(target_lang.clone());
            }
            Shape::Math => {
                answer.answer = Some(match &parsed["answer"] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                });
                answer.steps = Some(
                    parsed["steps"]
                        .as_array()
                        .map(|steps| steps.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                );
            }
        }
        answer
    }

    fn streamed(self, state: AppState, mut generation: GenerationStream, started: Instant) -> Response {
        let abort = state.abort.clone();
        let events = async_stream::stream! {
            let mut text = String::new();
            loop {
                let event = tokio::select! {
                    event = generation.next() => event,
                    () = abort.cancelled() => {
                        yield sse::error(&sse::shutting_down());
                        break;
                    }
                };
                match event {
                    Some(GenerationEvent::Text(piece)) => {
                        text.push_str(&piece);
                        let chunk = TaskChunk { chunk: piece, category: self.route.category.clone(), model: self.model.clone() };
                        yield sse::json(&chunk);
                    }
                    // Not asked for.
                    Some(GenerationEvent::Detail(_)) => {}
                    Some(GenerationEvent::ToolCalls(_)) => {}
                    Some(GenerationEvent::Done { finish_reason, usage }) => {
                        let done = chorus_engine::Completion { text: std::mem::take(&mut text), tool_calls: Vec::new(), finish_reason, usage, tokens: Vec::new(), stop_word: None, prompt_tokens: Vec::new() };
                        let mut last = serde_json::to_value(self.answer(done, started)).unwrap_or_default();
                        last["done"] = json!(true);
                        yield sse::json(&last);
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
        };
        sse::response(events)
    }
}

/// The first fenced code block of `text`, without the fence and its info string.
fn first_code_block(text: &str) -> Option<String> {
    let start = text.find("```")?;
    let body = &text[start + 3..];
    let body = &body[body.find('\n')? + 1..];
    let end = body.find("```").unwrap_or(body.len());
    Some(body[..end].trim_end().to_owned())
}

/// Generate, routed by content
///
/// TBot's `/generate` (and the AI Tester seed's, with `max_gen`): the prompt goes to the model
/// of its router category (`category` forces one; `model` names a model outright). The
/// `x-chorus-route` header says how it was chosen. An `image` prompt on a server without an
/// image model is a 501.
#[utoipa::path(
    post,
    path = "/generate",
    operation_id = "generateTask",
    tag = "tasks",
    request_body = GenerateTaskRequest,
    responses(
        (status = 200, description = "The answer (`application/json`), or its pieces as server-sent events \
            (`text/event-stream`, with `stream: true`)",
            content((TaskResponse = "application/json"), (TaskChunk = "text/event-stream"))),
        (status = 400, description = "No `prompt`, an unknown `category`, or a bad field (named in `param`)", body = ErrorResponse),
        (status = 404, description = "No such `model`", body = ErrorResponse),
        (status = 501, description = "The prompt asks for an image and no image model is configured", body = ErrorResponse),
        (status = 503, description = "The model cannot take work now", body = ErrorResponse),
    )
)]
pub(crate) async fn generate(
    State(state): State<AppState>,
    AppJson(req): AppJson<GenerateTaskRequest>,
) -> Result<Response, ApiError> {
    let prompt = required(req.prompt, "prompt")?;
    let input = RouteInput { text: &prompt, endpoint: None, category: req.category.as_deref() };
    let request = request(Prompt::Chat(vec![ChatMessage::new(Role::User, prompt.clone())]), &req.options, None)?;
    Task::new(&state, input, &req.options, request, Shape::Text).await?.run(state).await
}

/// Fill in code between a prefix and a suffix
///
/// The code model (router category `code`) writes what goes between `prefix` and `suffix`,
/// prompted with its own fill-in-the-middle tokens (as llama-server's `/infill`); `text` is
/// the middle only. A model without such tokens is a 400.
#[utoipa::path(
    post,
    path = "/code/completion",
    operation_id = "codeCompletion",
    tag = "tasks",
    request_body = CodeCompletionRequest,
    responses(
        (status = 200, description = "The middle", content((TaskResponse = "application/json"), (TaskChunk = "text/event-stream"))),
        (status = 400, description = "No `prefix`, a bad field, or a model without fill-in-the-middle tokens", body = ErrorResponse),
        (status = 503, description = "The model cannot take work now", body = ErrorResponse),
    )
)]
pub(crate) async fn code_completion(
    State(state): State<AppState>,
    AppJson(req): AppJson<CodeCompletionRequest>,
) -> Result<Response, ApiError> {
    let prefix = required(req.prefix, "prefix")?;
    let suffix = req.suffix.unwrap_or_default();
    let input = RouteInput { text: &prefix, endpoint: Some("code"), category: None };
    let request = request(Prompt::Infill { prefix: prefix.clone(), suffix, extra: Vec::new() }, &req.options, None)?;
    Task::new(&state, input, &req.options, request, Shape::Text).await?.run(state).await
}

/// Generate code from an instruction
///
/// The code model (router category `code`) answers the instruction with code; `code` is the
/// first fenced block of its answer.
#[utoipa::path(
    post,
    path = "/code/generation",
    operation_id = "codeGeneration",
    tag = "tasks",
    request_body = CodeGenerationRequest,
    responses(
        (status = 200, description = "The answer", content((TaskResponse = "application/json"), (TaskChunk = "text/event-stream"))),
        (status = 400, description = "No `instruction`, or a bad field", body = ErrorResponse),
        (status = 503, description = "The model cannot take work now", body = ErrorResponse),
    )
)]
pub(crate) async fn code_generation(
    State(state): State<AppState>,
    AppJson(req): AppJson<CodeGenerationRequest>,
) -> Result<Response, ApiError> {
    let instruction = required(req.instruction, "instruction")?;
    let system = match &req.language {
        Some(lang) => format!(
            "You are a programming assistant. Answer with {lang} code in one fenced code block, then at most two sentences."
        ),
        None => {
            "You are a programming assistant. Answer with code in one fenced code block, then at most two sentences."
                .to_owned()
        }
    };
    let input = RouteInput { text: &instruction, endpoint: Some("code"), category: None };
    let request = request(chat(&system, instruction.clone()), &req.options, None)?;
    Task::new(&state, input, &req.options, request, Shape::Code).await?.run(state).await
}

/// Translate a text
///
/// The translation model (router category `translation`) translates `text` into
/// `target_lang`, and names its language when `source_lang` is absent.
#[utoipa::path(
    post,
    path = "/translate",
    operation_id = "translate",
    tag = "tasks",
    request_body = TranslateRequest,
    responses(
        (status = 200, description = "The translation", content((TaskResponse = "application/json"), (TaskChunk = "text/event-stream"))),
        (status = 400, description = "No `text` or `target_lang`, or a bad field", body = ErrorResponse),
        (status = 503, description = "The model cannot take work now", body = ErrorResponse),
    )
)]
pub(crate) async fn translate(
    State(state): State<AppState>,
    AppJson(req): AppJson<TranslateRequest>,
) -> Result<Response, ApiError> {
    let text = required(req.text, "text")?;
    let target = required(req.target_lang, "target_lang")?;
    let source = req.source_lang.filter(|s| !s.trim().is_empty());
    let (system, schema) = match &source {
        Some(source) => (
            format!("Translate the user's text from {source} into {target}. Give the translation only."),
            json!({"type": "object", "properties": {"translation": {"type": "string"}}, "required": ["translation"]}),
        ),
        None => (
            format!(
                "Translate the user's text into {target}. source_lang is the language the user's text is \
                 written in; translation is the text in {target}."
            ),
            json!({
                "type": "object",
                "properties": {"source_lang": {"type": "string"}, "translation": {"type": "string"}},
                "required": ["source_lang", "translation"]
            }),
        ),
    };
    let input = RouteInput { text: &text, endpoint: Some("translation"), category: None };
    let mut request = request(chat(&system, text.clone()), &req.options, Some(STRUCTURED_MAX_TOKENS))?;
    request.response_format = ResponseFormat::JsonSchema(schema);
    let shape = Shape::Translation { source_lang: source, target_lang: target };
    Task::new(&state, input, &req.options, request, shape).await?.run(state).await
}

/// Solve a math problem
///
/// The math model (router category `math`) works the problem step by step; `steps` are its
/// steps and `answer` the result.
#[utoipa::path(
    post,
    path = "/math/solve",
    operation_id = "mathSolve",
    tag = "tasks",
    request_body = MathSolveRequest,
    responses(
        (status = 200, description = "The solution", content((TaskResponse = "application/json"), (TaskChunk = "text/event-stream"))),
        (status = 400, description = "No `problem`, or a bad field", body = ErrorResponse),
        (status = 503, description = "The model cannot take work now", body = ErrorResponse),
    )
)]
pub(crate) async fn math_solve(
    State(state): State<AppState>,
    AppJson(req): AppJson<MathSolveRequest>,
) -> Result<Response, ApiError> {
    let problem = required(req.problem, "problem")?;
    let system = "Solve the user's math problem. Write each step as one short sentence with its calculation, \
                  then give the final answer as a short value with its unit, such as \"80 km/h\" or \"x = 4\".";
    let schema = json!({
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"type": "string"}},
            "answer": {"type": "string"}
        },
        "required": ["steps", "answer"]
    });
    let input = RouteInput { text: &problem, endpoint: Some("math"), category: None };
    let mut request = request(chat(system, problem.clone()), &req.options, Some(STRUCTURED_MAX_TOKENS))?;
    request.response_format = ResponseFormat::JsonSchema(schema);
    Task::new(&state, input, &req.options, request, Shape::Math).await?.run(state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_code_block_loses_its_fence() {
        let text = "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.";
        assert_eq!(first_code_block(text).as_deref(), Some("def add(a, b):\n    return a + b"));
        assert_eq!(first_code_block("no code"), None);
        assert_eq!(first_code_block("```\nunclosed").as_deref(), Some("unclosed"));
    }

    #[test]
    fn required_fields_name_themselves() {
        let e = required(None, "text").unwrap_err();
        assert_eq!(e.body().error.param.as_deref(), Some("text"));
        let e = required(Some("  ".into()), "problem").unwrap_err();
        assert_eq!(e.body().error.param.as_deref(), Some("problem"));
        assert_eq!(required(Some("x".into()), "text").unwrap(), "x");
    }
}
