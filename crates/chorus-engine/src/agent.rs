//! The agent loop: how a session answers one prompt. Store the user message,
//! then rounds of generation (`agent.thinking`): each round sees the session's
//! history with the agent's system prompt and tools; when the model calls
//! tools, the calls run on the server (after their permission policy:
//! `allow`, `deny`, or `ask`, which raises `tool.permission_request` and
//! waits for a client's answer until a timeout that means deny), their
//! results are stored as `role: tool` messages, and the next round reads
//! them. The loop ends when the model answers without calls; the last round
//! allowed (`max_tool_rounds`) is generated with `tool_choice: none`, so it
//! always ends in an answer. The tools are those of the registry when the
//! prompt starts (built-ins, and the tools of providers such as MCP servers,
//! which are started then if the agent may call their tools).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use chorus_proto::native::{Event, EventError, MessageMetadata};
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::route::RouteInput;
use crate::session::{PromptOptions, PromptOutcome};
use crate::store::{Message, NewMessage, SessionId, StoreError, TokenUsage};
use crate::tools::{Permission, ToolCall, ToolChoice, ToolContext, ToolError, ToolSet};
use crate::wire;
use crate::{ChatMessage, Engine, EngineError, GenerateRequest, GenerationEvent, Prompt, PublicError, Role, Usage};

/// How one round of generation ended.
pub(crate) enum RoundEnd {
    Done { text: String, tool_calls: Vec<ToolCall>, finish_reason: &'static str, usage: Usage },
    Cancelled { text: String },
    Failed(EngineError),
}

/// Answer one prompt (see the module docs).
pub(crate) async fn answer(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    content: String,
    options: &PromptOptions,
    cancel: &CancellationToken,
) -> PromptOutcome {
    let store = &engine.inner.store;
    let session = match store.session(id).await {
        Ok(Some(s)) => s,
        Ok(None) => return store_failed(engine, id, prompt_id, StoreError::SessionNotFound(id.clone())).await,
        Err(e) => return store_failed(engine, id, prompt_id, e).await,
    };
    let user_metadata = options.user_name.as_ref().and_then(|name| {
        serde_json::to_string(&MessageMetadata { name: Some(name.clone()), ..MessageMetadata::default() }).ok()
    });
    let user_message = NewMessage { metadata: user_metadata, ..NewMessage::text(Role::User, content) };
    let user = match store.append_message(id, user_message).await {
        Ok(m) => m,
        Err(e) => return store_failed(engine, id, prompt_id, e).await,
    };
    engine
        .inner
        .bus
        .emit(Event::MessageStart {
            session_id: id.to_string(),
            prompt_id: prompt_id.to_owned(),
            user_message: wire::message(&user),
        })
        .await;

    if let Some(character) = &session.character {
        return crate::character::turn::answer(engine, id, prompt_id, &session, character, &user, options, cancel)
            .await;
    }
    let config = &engine.inner.sessions_config;
    let agent = engine.agents().iter().find(|a| a.name == session.agent).cloned().unwrap_or_default();
    // A session (or agent) that names no model, or `auto`, is routed once per prompt, on its
    // text; every round of the prompt runs on that model.
    let named = session.model.as_deref().or(agent.model.as_deref());
    let (model, route) = if engine.router().routes(named) {
        let routed = engine.route(RouteInput { text: &user.content, endpoint: None, category: None }).await;
        let decision = match routed.and_then(|d| d.require_model().map(str::to_owned).map(|m| (m, d))) {
            Ok(d) => d,
            Err(e) => return fail(engine, id, prompt_id, e).await,
        };
        let wire_route = wire::route(&decision.1);
        engine
            .inner
            .bus
            .emit(Event::RouteDecided {
                session_id: id.to_string(),
                prompt_id: prompt_id.to_owned(),
                route: wire_route.clone(),
            })
            .await;
        (Some(decision.0), Some(wire_route))
    } else {
        (named.map(str::to_owned), None)
    };
    let metadata = |model: Option<&str>| {
        let m = MessageMetadata { model: model.map(str::to_owned), route: route.clone(), ..MessageMetadata::default() };
        serde_json::to_string(&m).ok()
    };
    // Providers (MCP servers) may have to start first: a cancel meanwhile ends the prompt.
    let toolset = tokio::select! {
        biased;
        () = cancel.cancelled() => return cancelled(engine, id, prompt_id, String::new()).await,
        set = config.tools.tool_set(agent.tools.as_deref()) => set,
    };
    let tools = toolset.definitions();
    let context = ToolContext { work_dir: PathBuf::from(&session.work_dir) };
    let max_rounds = config.max_tool_rounds.max(1);
    let mut round = 0;
    // The calls made so far (name and arguments): a model that repeats one has its result
    // already, and is asked to answer instead.
    let mut made: HashSet<(String, String)> = HashSet::new();
    let mut answer_now = false;
    loop {
        round += 1;
        let last = answer_now || round >= max_rounds;
        engine
            .inner
            .bus
            .emit(Event::AgentThinking { session_id: id.to_string(), prompt_id: prompt_id.to_owned(), round })
            .await;
        let history = match store.messages(id).await {
            Ok(h) => h,
            Err(e) => return store_failed(engine, id, prompt_id, e).await,
        };
        // The caller's choice holds for the first round; later rounds read results; the last
        // is offered no tools at all, so the loop always ends with an answer (a small model
        // shown tools under `tool_choice: none` still writes calls, as text).
        let tool_choice = if last {
            ToolChoice::None
        } else if round == 1 {
            options.tool_choice.clone()
        } else {
            ToolChoice::Auto
        };
        let model = model.as_deref();
        let cache_key = crate::request::session_cache_key(&id.to_string());
        let build = |start: usize| {
            let mut messages = Vec::with_capacity(history.len() - start + 1);
            if !agent.system_prompt.is_empty() {
                messages.push(ChatMessage::new(Role::System, agent.system_prompt.clone()));
            }
            if last {
                messages.extend(answer_round(&history[start..]));
            } else {
                messages.extend(history[start..].iter().map(chat_message));
            }
            let mut request = GenerateRequest::new(Prompt::Chat(messages));
            request.max_tokens = options.max_tokens;
            request.sampling.ignore_eos = options.ignore_eos;
            request.prompt_cache_key = Some(cache_key.clone());
            if !tools.is_empty() && !last {
                request.tools = tools.clone();
                request.tool_choice = tool_choice.clone();
            }
            request
        };
        let start = match window(engine, id, prompt_id, model, options, &history, &build).await {
            Ok(start) => start,
            Err(e) => return fail(engine, id, prompt_id, e).await,
        };
        let stream = match engine.generate(model, build(start)).await {
            Ok(s) => s,
            Err(e) => return fail(engine, id, prompt_id, e).await,
        };
        match stream_round(engine, id, prompt_id, stream, cancel).await {
            RoundEnd::Cancelled { text } => return cancelled(engine, id, prompt_id, text).await,
            RoundEnd::Failed(e) => return fail(engine, id, prompt_id, e).await,
            RoundEnd::Done { text, tool_calls, finish_reason, usage } if tool_calls.is_empty() => {
                return complete(engine, id, prompt_id, text, finish_reason, usage, metadata(model)).await;
            }
            RoundEnd::Done { tool_calls, .. }
                if tool_calls.iter().all(|c| made.contains(&(c.name.clone(), canonical(&c.arguments)))) =>
            {
                // The same calls again: their results are in the history already. This round is
                // dropped, and the next one answers from what the calls returned.
                tracing::info!(session = %id, round, "the model repeated its tool calls; asking for the answer");
                answer_now = true;
            }
            RoundEnd::Done { text, tool_calls, finish_reason, usage } => {
                made.extend(tool_calls.iter().map(|c| (c.name.clone(), canonical(&c.arguments))));
                let message = NewMessage {
                    tool_calls: tool_calls.clone(),
                    usage: Some(token_usage(usage)),
                    finish_reason: Some(finish_reason.to_owned()),
                    metadata: metadata(model),
                    ..NewMessage::text(Role::Assistant, text)
                };
                if let Err(e) = store.append_message(id, message).await {
                    return store_failed(engine, id, prompt_id, e).await;
                }
                for call in tool_calls {
                    let Some(output) = run_call(engine, id, prompt_id, &toolset, &context, &call, cancel).await else {
                        return cancelled(engine, id, prompt_id, String::new()).await;
                    };
                    let result =
                        NewMessage { tool_call_id: Some(call.id.clone()), ..NewMessage::text(Role::Tool, output) };
                    if let Err(e) = store.append_message(id, result).await {
                        return store_failed(engine, id, prompt_id, e).await;
                    }
                }
            }
        }
    }
}

/// Tokens kept free for the answer when the prompt sets no `max_tokens`, at most a quarter of
/// the budget.
const ANSWER_RESERVE: u32 = 1024;

/// A session's budget on `lease`'s model (a sequence's share of the cache: with a unified cache
/// one could take all of it, but then the other slots' conversations would be evicted) and the
/// tokens kept free for the answer.
pub(crate) fn budget(lease: &crate::Lease, options: &PromptOptions) -> (u32, u32) {
    let info = lease.backend().info();
    let budget = info.n_ctx_slot.min(info.n_ctx / info.n_parallel.max(1));
    (budget, options.max_tokens.unwrap_or(ANSWER_RESERVE).min(budget / 4))
}

/// Where the window of `history` the model sees starts (see [`crate::compact`]): where it
/// started for the session's last prompt, unless the prompt outgrew the session's budget; then
/// it moves past the oldest turns and `session.compacted` says so.
pub(crate) async fn window(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    model: Option<&str>,
    options: &PromptOptions,
    history: &[Message],
    build: &impl Fn(usize) -> GenerateRequest,
) -> Result<usize, EngineError> {
    let lease = engine.lease(model, None).await?;
    let (budget, reserve) = budget(&lease, options);
    let sessions = &engine.inner.sessions;
    let current = sessions.window_start(id).and_then(|first| history.iter().position(|m| m.id == first)).unwrap_or(0);
    let roles: Vec<Role> = history.iter().map(|m| m.role).collect();
    let mut before = 0;
    let cut = crate::compact::choose(&roles, current, budget, reserve, |start| {
        let n = Engine::prompt_tokens(&lease, build(start))?;
        if start == current {
            before = n;
        }
        Ok::<_, EngineError>(n)
    })?;
    let Some(cut) = cut else { return Ok(current) };
    let first = &history[cut.start];
    sessions.set_window_start(id, first.id.clone());
    tracing::info!(session = %id, dropped = cut.start - current, out_of_window = cut.start, budget, "session compacted");
    engine
        .inner
        .bus
        .emit(Event::SessionCompacted {
            session_id: id.to_string(),
            prompt_id: prompt_id.to_owned(),
            messages_dropped: (cut.start - current) as u32,
            messages_out_of_window: cut.start as u32,
            first_message_id: first.id.clone(),
            prompt_tokens_before: before,
            prompt_tokens_after: cut.prompt_tokens,
            budget_tokens: budget,
        })
        .await;
    Ok(cut.start)
}

/// The history as the answer round shows it: the turns before the current one as they are,
/// then the current question with the results of the calls made for it written out as text,
/// and the request to answer from them. Offered no tools, a small model shown its own calls
/// and `role: tool` results in the template's format writes more calls, as text; shown the
/// results as plain text, it answers. The stored messages stay as they are.
fn answer_round(history: &[Message]) -> Vec<ChatMessage> {
    let Some(turn) = history.iter().rposition(|m| m.role == Role::User) else {
        return history.iter().map(chat_message).collect();
    };
    let mut messages: Vec<ChatMessage> = history[..turn].iter().map(chat_message).collect();
    let exchanges: Vec<&Message> = history[turn + 1..].iter().collect();
    if !exchanges.iter().any(|m| !m.tool_calls.is_empty()) {
        messages.extend(history[turn..].iter().map(chat_message));
        return messages;
    }
    let mut text = format!("{}\n\nTool results:\n", history[turn].content);
    for call in exchanges.iter().flat_map(|m| m.tool_calls.iter()) {
        let output = exchanges
            .iter()
            .find(|m| m.role == Role::Tool && m.tool_call_id.as_deref() == Some(call.id.as_str()))
            .map_or("(no result)", |m| m.content.as_str());
        text.push_str(&format!("{} {} returned:\n{}\n\n", call.name, call.arguments, output.trim_end()));
    }
    text.push_str("Answer in plain words from these results; call no tool.");
    messages.push(ChatMessage::new(Role::User, text));
    messages
}

/// A call's arguments in one spelling (parsed and written again), so two calls with the same
/// arguments compare equal.
fn canonical(arguments: &str) -> String {
    serde_json::from_str::<serde_json::Value>(arguments).map_or_else(|_| arguments.trim().to_owned(), |v| v.to_string())
}

fn chat_message(m: &Message) -> ChatMessage {
    ChatMessage {
        role: m.role,
        content: m.content.clone(),
        name: None,
        tool_call_id: m.tool_call_id.clone(),
        tool_calls: m.tool_calls.clone(),
    }
}

fn token_usage(usage: Usage) -> TokenUsage {
    TokenUsage {
        prompt_tokens: u64::from(usage.prompt_tokens),
        completion_tokens: u64::from(usage.completion_tokens),
        cached_tokens: u64::from(usage.cached_tokens),
    }
}

/// Stream one round's text as `message.chunk` events (what is already waiting coalesced into
/// one event) until it ends, is cancelled or fails.
pub(crate) async fn stream_round(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    mut stream: crate::GenerationStream,
    cancel: &CancellationToken,
) -> RoundEnd {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    loop {
        let event = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                // Dropping the stream frees the sequence at the next decode step.
                drop(stream);
                return RoundEnd::Cancelled { text };
            }
            event = stream.next() => event,
        };
        let mut chunk = String::new();
        let mut next = event;
        loop {
            match next {
                Some(GenerationEvent::Text(t)) => chunk.push_str(&t),
                Some(GenerationEvent::ToolCalls(calls)) => tool_calls = calls,
                // Sessions do not ask for token ids.
                Some(GenerationEvent::Detail(_)) => {}
                Some(GenerationEvent::Done { finish_reason, usage }) => {
                    emit_chunk(engine, id, prompt_id, &mut text, chunk).await;
                    return RoundEnd::Done { text, tool_calls, finish_reason: finish_reason.as_str(), usage };
                }
                Some(GenerationEvent::Error(e)) => return RoundEnd::Failed(EngineError::Backend(e)),
                None => return RoundEnd::Failed(EngineError::Backend(crate::BackendError::Unavailable)),
            }
            match stream.next().now_or_never() {
                Some(event) => next = event,
                None => break,
            }
        }
        emit_chunk(engine, id, prompt_id, &mut text, chunk).await;
    }
}

async fn emit_chunk(engine: &Engine, id: &SessionId, prompt_id: &str, text: &mut String, chunk: String) {
    if chunk.is_empty() {
        return;
    }
    text.push_str(&chunk);
    let event = Event::MessageChunk { session_id: id.to_string(), prompt_id: prompt_id.to_owned(), content: chunk };
    engine.inner.bus.emit(event).await;
}

/// Check a call's permission and run it, announcing each step; the text the model gets back
/// as the call's result. `None` when the prompt was cancelled meanwhile.
async fn run_call(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    toolset: &ToolSet,
    context: &ToolContext,
    call: &ToolCall,
    cancel: &CancellationToken,
) -> Option<String> {
    let config = &engine.inner.sessions_config;
    // Only the prompt's tools run: a name the model made up is unknown.
    let granted: Result<(), ToolError> = if toolset.get(&call.name).is_none() {
        Err(ToolError::UnknownTool(call.name.clone()))
    } else {
        match toolset.permission(&call.name) {
            Permission::Allow => Ok(()),
            Permission::Deny => {
                Err(ToolError::PermissionDenied(format!("the server's policy for `{}` is deny", call.name)))
            }
            Permission::Ask => ask(engine, id, prompt_id, call, config.permission_timeout, cancel).await?,
        }
    };
    let result = match granted {
        Ok(()) => {
            engine
                .inner
                .bus
                .emit(Event::ToolCallStart {
                    session_id: id.to_string(),
                    prompt_id: prompt_id.to_owned(),
                    call: wire::tool_call(call),
                })
                .await;
            tokio::select! {
                biased;
                () = cancel.cancelled() => return None,
                result = toolset.call(context, &call.name, &call.arguments) => result,
            }
        }
        Err(e) => Err(e),
    };
    let event = match &result {
        Ok(output) => Event::ToolCallComplete {
            session_id: id.to_string(),
            prompt_id: prompt_id.to_owned(),
            call_id: call.id.clone(),
            name: call.name.clone(),
            output: output.clone(),
        },
        Err(e) => Event::ToolCallError {
            session_id: id.to_string(),
            prompt_id: prompt_id.to_owned(),
            call_id: call.id.clone(),
            name: call.name.clone(),
            error: e.to_string(),
            code: e.code().to_owned(),
        },
    };
    engine.inner.bus.emit(event).await;
    Some(result.unwrap_or_else(|e| format!("error: {e}")))
}

/// Raise `tool.permission_request` and wait for a client's answer; `None` when cancelled.
async fn ask(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    call: &ToolCall,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Option<Result<(), ToolError>> {
    let (tx, rx) = oneshot::channel();
    let request_id = call.id.clone();
    engine.inner.sessions.await_permission(&request_id, id.clone(), tx);
    engine
        .inner
        .bus
        .emit(Event::ToolPermissionRequest {
            session_id: id.to_string(),
            prompt_id: prompt_id.to_owned(),
            request_id: request_id.clone(),
            call: wire::tool_call(call),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })
        .await;
    let answer = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        reply = tokio::time::timeout(timeout, rx) => Some(match reply {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(ToolError::PermissionDenied("a client refused the call".into())),
            // Timed out, or the pending request was dropped (session deleted).
            Ok(Err(_)) | Err(_) => Err(ToolError::PermissionTimeout(timeout.as_secs())),
        }),
    };
    engine.inner.sessions.forget_permission(&request_id);
    answer
}

/// Store the final answer and announce it.
pub(crate) async fn complete(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    text: String,
    finish_reason: &str,
    usage: Usage,
    metadata: Option<String>,
) -> PromptOutcome {
    let message = NewMessage {
        usage: Some(token_usage(usage)),
        finish_reason: Some(finish_reason.to_owned()),
        metadata,
        ..NewMessage::text(Role::Assistant, text)
    };
    match engine.inner.store.append_message(id, message).await {
        Ok(stored) => {
            engine
                .inner
                .bus
                .emit(Event::MessageComplete {
                    session_id: id.to_string(),
                    prompt_id: prompt_id.to_owned(),
                    message: wire::message(&stored),
                })
                .await;
            PromptOutcome::Complete(stored)
        }
        Err(e) => store_failed(engine, id, prompt_id, e).await,
    }
}

pub(crate) async fn fail(engine: &Engine, id: &SessionId, prompt_id: &str, error: EngineError) -> PromptOutcome {
    if error.is_internal() {
        tracing::error!(session = %id, prompt = prompt_id, error = %error, "a prompt failed");
    }
    emit_error(engine, id, prompt_id, event_error(&error.public()), None).await;
    PromptOutcome::Failed(error)
}

/// The store failed while answering: the prompt ends with `message.error` (a server fault, so
/// the details go to the log only).
pub(crate) async fn store_failed(engine: &Engine, id: &SessionId, prompt_id: &str, error: StoreError) -> PromptOutcome {
    tracing::error!(session = %id, prompt = prompt_id, error = %error, "the store failed while answering a prompt");
    emit_error(engine, id, prompt_id, event_error(&error.public()), None).await;
    PromptOutcome::Store(error)
}

/// A `message.error` payload from the engine's one error mapping.
fn event_error(public: &PublicError) -> EventError {
    EventError { message: public.message.clone(), kind: public.kind().into(), code: public.code.map(str::to_owned) }
}

pub(crate) async fn cancelled(engine: &Engine, id: &SessionId, prompt_id: &str, text: String) -> PromptOutcome {
    // Keep what was generated: no lost data.
    let mut stored = None;
    if !text.is_empty() {
        let message = NewMessage { finish_reason: Some("cancelled".into()), ..NewMessage::text(Role::Assistant, text) };
        match engine.inner.store.append_message(id, message).await {
            Ok(m) => stored = Some(m),
            Err(e) => tracing::error!(session = %id, error = %e, "cannot store a cancelled answer"),
        }
    }
    emit_error(engine, id, prompt_id, cancelled_error(), stored.as_ref()).await;
    PromptOutcome::Cancelled
}

/// The error of a cancelled prompt's `message.error`.
pub(crate) fn cancelled_error() -> EventError {
    EventError {
        message: "the prompt was cancelled".into(),
        kind: "invalid_request_error".into(),
        code: Some("cancelled".into()),
    }
}

/// `message.error` for a prompt, with the partial answer when one was stored.
pub(crate) async fn emit_error(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    error: EventError,
    message: Option<&Message>,
) {
    let event = Event::MessageError {
        session_id: id.to_string(),
        prompt_id: prompt_id.to_owned(),
        error,
        message: message.map(wire::message),
    };
    engine.inner.bus.emit(event).await;
}
