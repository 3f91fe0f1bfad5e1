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

use std::path::PathBuf;
use std::time::Duration;

use chorus_proto::native::{Event, EventError};
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::session::{PromptOptions, PromptOutcome};
use crate::store::{Message, NewMessage, SessionId, StoreError, TokenUsage};
use crate::tools::{Permission, ToolCall, ToolChoice, ToolContext, ToolError, ToolSet};
use crate::wire;
use crate::{ChatMessage, Engine, EngineError, GenerateRequest, GenerationEvent, Prompt, Role, Usage};

/// How one round of generation ended.
enum RoundEnd {
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
        Ok(None) => return PromptOutcome::Store(StoreError::SessionNotFound(id.clone())),
        Err(e) => return PromptOutcome::Store(e),
    };
    let user = match store.append_message(id, NewMessage::text(Role::User, content)).await {
        Ok(m) => m,
        Err(e) => return PromptOutcome::Store(e),
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

    let config = &engine.inner.sessions_config;
    let agent = engine.agents().iter().find(|a| a.name == session.agent).cloned().unwrap_or_default();
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
    loop {
        round += 1;
        engine
            .inner
            .bus
            .emit(Event::AgentThinking { session_id: id.to_string(), prompt_id: prompt_id.to_owned(), round })
            .await;
        let history = match store.messages(id).await {
            Ok(h) => h,
            Err(e) => return PromptOutcome::Store(e),
        };
        let mut messages = Vec::with_capacity(history.len() + 1);
        if !agent.system_prompt.is_empty() {
            messages.push(ChatMessage::new(Role::System, agent.system_prompt.clone()));
        }
        messages.extend(history.iter().map(chat_message));
        let mut request = GenerateRequest::new(Prompt::Chat(messages));
        request.max_tokens = options.max_tokens;
        request.sampling.ignore_eos = options.ignore_eos;
        if !tools.is_empty() {
            request.tools = tools.clone();
            // The caller's choice holds for the first round; later rounds read results; the last
            // has no tools, so the loop always ends with an answer.
            request.tool_choice = if round >= max_rounds {
                ToolChoice::None
            } else if round == 1 {
                options.tool_choice.clone()
            } else {
                ToolChoice::Auto
            };
        }
        let stream = match engine.generate(session.model.as_deref().or(agent.model.as_deref()), request) {
            Ok(s) => s,
            Err(e) => return fail(engine, id, prompt_id, e).await,
        };
        match stream_round(engine, id, prompt_id, stream, cancel).await {
            RoundEnd::Cancelled { text } => return cancelled(engine, id, prompt_id, text).await,
            RoundEnd::Failed(e) => return fail(engine, id, prompt_id, e).await,
            RoundEnd::Done { text, tool_calls, finish_reason, usage } if tool_calls.is_empty() => {
                return complete(engine, id, prompt_id, text, finish_reason, usage).await;
            }
            RoundEnd::Done { text, tool_calls, finish_reason, usage } => {
                let message = NewMessage {
                    tool_calls: tool_calls.clone(),
                    usage: Some(token_usage(usage)),
                    finish_reason: Some(finish_reason.to_owned()),
                    ..NewMessage::text(Role::Assistant, text)
                };
                if let Err(e) = store.append_message(id, message).await {
                    return PromptOutcome::Store(e);
                }
                for call in tool_calls {
                    let Some(output) = run_call(engine, id, prompt_id, &toolset, &context, &call, cancel).await else {
                        return cancelled(engine, id, prompt_id, String::new()).await;
                    };
                    let result =
                        NewMessage { tool_call_id: Some(call.id.clone()), ..NewMessage::text(Role::Tool, output) };
                    if let Err(e) = store.append_message(id, result).await {
                        return PromptOutcome::Store(e);
                    }
                }
            }
        }
    }
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
    TokenUsage { prompt_tokens: u64::from(usage.prompt_tokens), completion_tokens: u64::from(usage.completion_tokens) }
}

/// Stream one round's text as `message.chunk` events (what is already waiting coalesced into
/// one event) until it ends, is cancelled or fails.
async fn stream_round(
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
async fn complete(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    text: String,
    finish_reason: &str,
    usage: Usage,
) -> PromptOutcome {
    let message = NewMessage {
        usage: Some(token_usage(usage)),
        finish_reason: Some(finish_reason.to_owned()),
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
        Err(e) => PromptOutcome::Store(e),
    }
}

async fn fail(engine: &Engine, id: &SessionId, prompt_id: &str, error: EngineError) -> PromptOutcome {
    let client = match &error {
        EngineError::Backend(b) => b.is_client_error(),
        EngineError::Invalid(_) | EngineError::ModelNotFound(_) => true,
    };
    let code = match &error {
        EngineError::Backend(crate::BackendError::PromptTooLong { .. }) => Some("context_length_exceeded".into()),
        EngineError::ModelNotFound(_) => Some("model_not_found".into()),
        _ => None,
    };
    let kind = if client { "invalid_request_error" } else { "server_error" };
    let event_error = EventError { message: error.to_string(), kind: kind.into(), code };
    emit_error(engine, id, prompt_id, event_error, None).await;
    PromptOutcome::Failed(error)
}

async fn cancelled(engine: &Engine, id: &SessionId, prompt_id: &str, text: String) -> PromptOutcome {
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
