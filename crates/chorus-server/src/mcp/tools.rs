//! The MCP tools (MCP specification 2025-06-18, "Tools"): `chat`, `session_prompt`,
//! `list_sessions`, `list_models` and `route` (the content router's dry run, as `POST
//! /api/v1/route`), with their arguments and results in `chorus_proto::mcp`.
//!
//! A call that cannot be answered as asked is a tool error (`isError: true`, the reason as
//! text), which the client's model can read and correct: arguments that do not parse (a missing
//! `prompt`, an unknown or misspelt field; rmcp says which), an out-of-range field, an unknown
//! model, session, agent or router category, a prompt longer than the context. An unknown tool
//! is invalid params (`-32602`, from rmcp). Server faults are logged and answered without their
//! detail.
//!
//! Generation reports progress when the request carries `_meta.progressToken`:
//! `notifications/progress` after the first piece of text and every [`PROGRESS_EVERY`] pieces,
//! `progress` counting the pieces streamed so far (about one per token) and `total` being
//! `max_tokens` when given.
//!
//! Cancellation: `chat` stops when its request is cancelled (`notifications/cancelled`) or
//! nobody is left to read its answer (the end of the MCP session, of a stateless request's
//! stream): it drops its stream, which frees the model's slot at its next step. A
//! `session_prompt`'s prompt belongs to its session, not to the connection: only
//! `notifications/cancelled` for that request cancels it (its text so far is stored in the
//! session, as `POST /api/v1/sessions/{id}/cancel` would); a client that goes away leaves it
//! running to its end, its answer stored in the session. Over HTTP at protocol 2026-07-28,
//! closing a request's stream is its only cancellation and cannot be told from a lost
//! connection, so it too leaves the prompt running; such a client cancels the prompt with
//! `POST /api/v1/sessions/{id}/cancel`.
//!
//! `session_prompt` runs the session's agent loop like any prompt: a tool call whose policy is
//! `ask` waits for an answer from a client of the native API or the WebSocket
//! (`tool.permission_request`) and counts as denied when none comes in time.

use chorus_engine::request::{ChatMessage, Role};
use chorus_engine::store::{NewSession, SessionId};
use chorus_engine::{
    EngineError, EventFilter, GenerateRequest, GenerationEvent, Prompt, PromptOptions, PromptOutcome, RouteInput,
    SessionError, ToolChoice,
};
use chorus_proto::mcp::{
    ChatArgs, ChatResult, ModelList, RouteArgs, RouteResult, SessionList, SessionPromptArgs, SessionPromptResult, Usage,
};
use chorus_proto::native;
use futures::StreamExt;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, tool, tool_router};

use super::ChorusMcp;
use super::resources::{internal, model_info, session_summary};
use crate::ApiError;

/// Progress is reported after the first piece of text and then every this many.
const PROGRESS_EVERY: u64 = 8;

/// The most characters of a prompt's first line that title a session `session_prompt` creates.
const TITLE_CHARS: usize = 60;

#[tool_router(vis = "pub(super)")]
impl ChorusMcp {
    /// Send one prompt to a local language model and return its answer. Nothing is stored: for a
    /// conversation that continues, use `session_prompt`. Optional: a system message, the model
    /// (as `list_models` names it), and sampling (`temperature`, `top_p`, `seed`, `max_tokens`).
    #[tool(
        name = "chat",
        annotations(title = "Chat with a model", read_only_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<ChatResult>()
    )]
    async fn chat(
        &self,
        Parameters(args): Parameters<ChatArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if args.prompt.trim().is_empty() {
            return Ok(tool_error("`prompt` must not be empty"));
        }
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = args.system.filter(|s| !s.trim().is_empty()) {
            messages.push(ChatMessage::new(Role::System, system));
        }
        messages.push(ChatMessage::new(Role::User, args.prompt));
        let mut request = GenerateRequest::new(Prompt::Chat(messages));
        request.tool_choice = ToolChoice::None;
        request.max_tokens = args.max_tokens;
        if let Some(temperature) = args.temperature {
            request.sampling.temperature = temperature;
        }
        if let Some(top_p) = args.top_p {
            request.sampling.top_p = top_p;
        }
        request.sampling.seed = args.seed;
        let model = match self.engine.resolve(args.model.as_deref()) {
            Ok(model) => model,
            Err(e) => return Ok(engine_error(e)),
        };
        let mut generation = match self.engine.generate(Some(&model), request).await {
            Ok(generation) => generation,
            Err(e) => return Ok(engine_error(e)),
        };
        let mut progress = Progress::new(&context, args.max_tokens);
        let mut text = String::new();
        loop {
            let event = tokio::select! {
                biased;
                // Returning drops `generation`: the model thread frees the slot at its next step.
                () = context.ct.cancelled() => return Ok(cancelled()),
                event = generation.next() => event,
            };
            match event {
                Some(GenerationEvent::Text(piece)) => {
                    text.push_str(&piece);
                    progress.advance().await;
                }
                // Not asked for.
                Some(GenerationEvent::Detail(_)) => {}
                // No tools are offered, so there are no calls to report.
                Some(GenerationEvent::ToolCalls(_)) => {}
                Some(GenerationEvent::Done { finish_reason, usage }) => {
                    let result = ChatResult {
                        text: text.clone(),
                        model,
                        finish_reason: finish_reason.as_str().to_owned(),
                        usage: Usage {
                            prompt_tokens: u64::from(usage.prompt_tokens),
                            completion_tokens: u64::from(usage.completion_tokens),
                        },
                    };
                    return structured(&result, vec![ContentBlock::text(text)]);
                }
                Some(GenerationEvent::Error(e)) => return Ok(engine_error(e.into())),
                None => return Ok(engine_error(chorus_engine::BackendError::Unavailable.into())),
            }
        }
    }

    /// Send a prompt to a chorus session: a durable conversation with an agent (its system
    /// prompt and tools), stored by the server and answered with everything said before. Without
    /// `session_id` a new session is created (with `agent`, or the default agent); the result
    /// gives the answer and the `session_id` to pass back to continue. Other clients of the
    /// session see the prompt and the answer too.
    #[tool(
        name = "session_prompt",
        // Not read-only (the session grows) and not idempotent; destructive and open-world are
        // left at their defaults (true): the agent's tools may write files and run commands.
        annotations(title = "Prompt a session", read_only_hint = false, idempotent_hint = false),
        output_schema = schema_for_output::<SessionPromptResult>()
    )]
    async fn session_prompt(
        &self,
        Parameters(args): Parameters<SessionPromptArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        // Only the client's `notifications/cancelled` cancels the prompt: it belongs to the
        // session, and runs on when the client goes away (`context.ct` is cancelled then too).
        let watched = self.cancellations.watch(context.id.clone());
        let options = PromptOptions { max_tokens: args.max_tokens, ..PromptOptions::default() };
        // Checked before a session is created for it.
        if let Err(e) = options.check(&args.prompt) {
            return Ok(session_error(e));
        }
        let session = match &args.session_id {
            Some(id) => match self.engine.session(&SessionId::from_string(id.as_str())).await {
                Ok(session) => session,
                Err(e) => return Ok(session_error(e)),
            },
            None => {
                let new = NewSession {
                    title: title(&args.prompt),
                    agent: args.agent.clone().unwrap_or_default(),
                    ..NewSession::default()
                };
                match self.engine.create_session(new).await {
                    Ok(session) => session,
                    Err(e) => return Ok(session_error(e)),
                }
            }
        };
        if let Some(agent) = &args.agent
            && *agent != session.agent
        {
            return Ok(tool_error(format!(
                "session {} runs the agent `{}`, not `{agent}`; leave `agent` out to continue it, or leave \
                 `session_id` out to start a session with `{agent}`",
                session.id, session.agent
            )));
        }
        let id = session.id;
        let mut progress = Progress::new(&context, args.max_tokens);
        // Subscribe before queueing, so no chunk of the answer is missed.
        let mut chunks = if progress.wanted() {
            self.engine.events().subscribe(EventFilter::Session(id.clone()), None).boxed()
        } else {
            futures::stream::pending().boxed()
        };
        if context.ct.is_cancelled() {
            // Cancelled, or the client gone, before the prompt was queued: it is not queued.
            return Ok(cancelled());
        }
        let ticket = match self.engine.prompt(&id, args.prompt, options).await {
            Ok(ticket) => ticket,
            Err(e) => return Ok(session_error(e)),
        };
        let prompt_id = ticket.prompt_id;
        let mut outcome = ticket.outcome;
        let outcome = loop {
            tokio::select! {
                biased;
                () = watched.cancelled() => {
                    if let Err(e) = self.engine.cancel_prompt(&id, &prompt_id).await {
                        tracing::warn!(session = %id, error = %e, "mcp: cannot cancel a session prompt");
                    }
                    return Ok(cancelled());
                }
                outcome = &mut outcome => break outcome,
                Some(event) = chunks.next() => {
                    let Ok(event) = event else { continue };
                    if let native::Event::MessageChunk { prompt_id: of, .. } = &event.event
                        && *of == prompt_id
                    {
                        progress.advance().await;
                    }
                }
            }
        };
        let message = match outcome {
            Ok(PromptOutcome::Complete(message)) => message,
            Ok(PromptOutcome::Failed(e)) => return Ok(engine_error(e)),
            Ok(PromptOutcome::Cancelled) | Err(_) => {
                return Ok(tool_error("the prompt was cancelled before it was answered"));
            }
            Ok(PromptOutcome::Store(e)) => return Err(internal(e)),
        };
        let result = SessionPromptResult {
            session_id: id.to_string(),
            prompt_id,
            message_id: message.id,
            text: message.content.clone(),
            finish_reason: message.finish_reason,
            usage: message
                .usage
                .map(|u| Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }),
        };
        let json = serde_json::to_string(&result).map_err(internal)?;
        structured(&result, vec![ContentBlock::text(message.content), ContentBlock::text(json)])
    }

    /// List the chorus sessions, most recently updated first: id, title, agent, status, message
    /// count. A session's transcript is the resource `chorus://sessions/{id}`.
    #[tool(
        name = "list_sessions",
        annotations(title = "List sessions", read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_sessions(&self) -> Result<Json<SessionList>, ErrorData> {
        let sessions = self.engine.store().list_sessions().await.map_err(internal)?;
        Ok(Json(SessionList { sessions: sessions.iter().map(session_summary).collect() }))
    }

    /// List the models chorus has loaded, the default first: the id to pass as `model`, the
    /// architecture, context size and parameter count.
    #[tool(
        name = "list_models",
        annotations(title = "List models", read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_models(&self) -> Result<Json<ModelList>, ErrorData> {
        Ok(Json(ModelList {
            models: self.engine.models().iter().filter_map(|m| m.info.as_ref()).map(model_info).collect(),
        }))
    }

    /// The content router's dry run, as `POST /api/v1/route`: the decision for `prompt` (or the
    /// forced `category`), as JSON text and as structured content.
    #[tool(
        name = "route",
        description = "Say which category and model chorus's router would send a prompt to, and why \
                       (nothing is generated)",
        annotations(title = "Route a prompt", read_only_hint = true, idempotent_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<RouteResult>()
    )]
    async fn route(&self, Parameters(args): Parameters<RouteArgs>) -> Result<CallToolResult, ErrorData> {
        // As `POST /api/v1/route`: a forced category needs no text.
        if args.prompt.trim().is_empty() && args.category.is_none() {
            return Ok(tool_error("`prompt` must not be empty"));
        }
        let input = RouteInput { text: &args.prompt, endpoint: None, category: args.category.as_deref() };
        let decision = match self.engine.route(input).await {
            Ok(decision) => decision,
            Err(e) => return Ok(engine_error(e)),
        };
        let result = chorus_engine::wire::route_response(&decision);
        let json = serde_json::to_string(&result).map_err(internal)?;
        structured(&result, vec![ContentBlock::text(json)])
    }
}

/// `notifications/progress` for one request, when it asked for them.
struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    total: Option<f64>,
    pieces: u64,
}

impl Progress {
    fn new(context: &RequestContext<RoleServer>, max_tokens: Option<u32>) -> Self {
        Self {
            peer: context.peer.clone(),
            token: context.meta.get_progress_token(),
            total: max_tokens.map(f64::from),
            pieces: 0,
        }
    }

    /// True when the request carries a progress token.
    fn wanted(&self) -> bool {
        self.token.is_some()
    }

    /// One more piece of text; reported after the first and every [`PROGRESS_EVERY`].
    async fn advance(&mut self) {
        self.pieces += 1;
        let Some(token) = &self.token else { return };
        if self.pieces != 1 && !self.pieces.is_multiple_of(PROGRESS_EVERY) {
            return;
        }
        let mut param = ProgressNotificationParam::new(token.clone(), self.pieces as f64);
        if let Some(total) = self.total {
            param = param.with_total(total);
        }
        // A client that went away cannot be told; the answer goes on regardless.
        if let Err(e) = self.peer.notify_progress(param).await {
            tracing::debug!(error = %e, "mcp: cannot send a progress notification");
        }
    }
}

/// A successful result with `value` as its structured content and `content` as what it says.
fn structured<T: serde::Serialize>(value: &T, content: Vec<ContentBlock>) -> Result<CallToolResult, ErrorData> {
    let mut result = CallToolResult::structured(serde_json::to_value(value).map_err(internal)?);
    result.content = content;
    Ok(result)
}

/// A tool error: the call ran and failed in a way the caller (or its model) can read.
fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn cancelled() -> CallToolResult {
    tool_error("the request was cancelled; generation stopped")
}

/// An engine error as a tool error, with the HTTP API's message (server faults logged there and
/// answered without detail); an unknown model points at `list_models`.
fn engine_error(e: EngineError) -> CallToolResult {
    match e {
        EngineError::ModelNotFound(model) => {
            tool_error(format!("the model `{model}` does not exist; `list_models` lists the models"))
        }
        other => tool_error(ApiError::from(other).body().error.message),
    }
}

fn session_error(e: SessionError) -> CallToolResult {
    match e {
        SessionError::NotFound(id) => tool_error(format!("session {id} not found; `list_sessions` lists the sessions")),
        SessionError::AgentNotFound(agent) => {
            tool_error(format!("agent `{agent}` not found; the server's prompts list the agents"))
        }
        other => tool_error(ApiError::from(other).body().error.message),
    }
}

/// A session's title from the prompt that starts it: its first line, at most [`TITLE_CHARS`]
/// characters.
fn title(prompt: &str) -> String {
    let line = prompt.trim().lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(TITLE_CHARS) {
        Some((end, _)) => format!("{}…", line[..end].trim_end()),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chorus_engine::{RouteDecision, RouteStage};

    use super::title;

    #[test]
    fn titles_are_the_first_line_cut_short() {
        assert_eq!(title("  Hello there\nmore"), "Hello there");
        let long = "é".repeat(70);
        assert_eq!(title(&long), format!("{}…", "é".repeat(60)));
    }

    #[test]
    fn a_route_result_has_the_dry_runs_shape() {
        let d = RouteDecision {
            category: "code".into(),
            stage: RouteStage::Semantic,
            score: Some(0.83),
            margin: Some(0.12),
            model: Some("qwen-coder".into()),
            scores: vec![("code".into(), 0.83), ("general".into(), 0.71)],
            elapsed: Duration::from_micros(3200),
        };
        let r = chorus_engine::wire::route_response(&d);
        assert_eq!(
            (r.category.as_str(), r.stage.as_str(), r.model.as_deref()),
            ("code", "semantic", Some("qwen-coder"))
        );
        assert_eq!(r.scores.keys().map(String::as_str).collect::<Vec<_>>(), ["code", "general"]);
        assert!((r.elapsed_ms - 3.2).abs() < 1e-9);
        assert_eq!(r.header, "category=code; stage=semantic; score=0.83; model=qwen-coder");
        let json = serde_json::to_value(&r).expect("json");
        for key in ["category", "stage", "score", "margin", "model", "scores", "elapsed_ms", "header"] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
    }
}
