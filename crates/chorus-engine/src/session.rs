//! Sessions: conversations the server owns. Each session has a FIFO prompt
//! queue (priority `normal` or `high`) and, while the queue is not empty, one
//! runner task that answers its prompts one at a time: store the user message,
//! generate, stream the text as `message.chunk` events, store the answer.
//! Every step is an event on the [`EventBus`], written to the log before any
//! client sees it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use chorus_proto::native::{Event, EventError};
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::store::{
    Message, NewMessage, NewSession, Session, SessionId, SessionStatus, SessionUpdate, Store, StoreError, TokenUsage,
};
use crate::wire;
use crate::{ChatMessage, Engine, EngineError, GenerateRequest, GenerationEvent, Prompt, Role};

/// A named system prompt, model and tool set that sessions run.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Its name, as sessions and `GET /api/v1/agents/{name}` give it.
    pub name: String,
    /// One line on what it is for.
    pub description: String,
    /// The system message put before every conversation; none when empty.
    pub system_prompt: String,
    /// The model it uses; the server's default when `None`.
    pub model: Option<String>,
}

impl Agent {
    /// The agent sessions get when they name none.
    pub fn default_agent() -> Self {
        Self {
            name: "default".into(),
            description: "a helpful assistant".into(),
            system_prompt: "You are a helpful assistant.".into(),
            model: None,
        }
    }
}

/// Settings of the session layer.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// Agents by name; the first is the default.
    pub agents: Vec<Agent>,
    /// The `work_dir` of sessions that name none.
    pub default_work_dir: String,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { agents: vec![Agent::default_agent()], default_work_dir: ".".into() }
    }
}

/// Queue priority of a prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    /// After everything waiting.
    #[default]
    Normal,
    /// Before every `Normal` prompt waiting, after the `High` ones.
    High,
}

/// How one prompt is answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptOptions {
    /// Queue priority.
    pub priority: Priority,
    /// The most tokens to generate; until the context is full when `None`.
    pub max_tokens: Option<u32>,
    /// Keep generating past the end-of-generation token.
    pub ignore_eos: bool,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session.
    #[error("session {0} not found")]
    NotFound(SessionId),
    /// No such agent.
    #[error("agent `{0}` not found")]
    AgentNotFound(String),
    /// The session is answering a prompt and the operation needs it idle.
    #[error("session {0} is busy; cancel it first (POST /api/v1/sessions/{0}/cancel)")]
    Busy(SessionId),
    /// The prompt was empty.
    #[error("`content` must not be empty")]
    EmptyPrompt,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a prompt ended, for a caller waiting on it.
#[derive(Debug)]
pub enum PromptOutcome {
    /// The assistant's answer, stored.
    Complete(Message),
    /// Generation failed; the error the `message.error` event carries.
    Failed(EngineError),
    /// The prompt was cancelled (while running or still queued).
    Cancelled,
    /// The store failed while recording it.
    Store(StoreError),
}

/// A prompt accepted into a session's queue.
#[derive(Debug)]
pub struct PromptTicket {
    /// `prm_` and 32 hex digits; the prompt's events carry it.
    pub prompt_id: String,
    /// Prompts that run before it (0: it starts at once).
    pub queue_position: u32,
    /// Resolves when the prompt ends.
    pub outcome: oneshot::Receiver<PromptOutcome>,
}

struct QueuedPrompt {
    prompt_id: String,
    content: String,
    options: PromptOptions,
    done: oneshot::Sender<PromptOutcome>,
}

#[derive(Default)]
struct SessionQueue {
    /// The prompt being answered and the token that cancels it.
    running: Option<(String, CancellationToken)>,
    waiting: VecDeque<QueuedPrompt>,
    /// True while a runner task owns this queue.
    runner: bool,
}

/// The per-session queues of an engine.
#[derive(Default)]
pub(crate) struct SessionTable {
    queues: Mutex<HashMap<SessionId, Arc<Mutex<SessionQueue>>>>,
}

impl SessionTable {
    fn queue(&self, id: &SessionId) -> Arc<Mutex<SessionQueue>> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.entry(id.clone()).or_default().clone()
    }

    /// True while a runner answers the session's prompts.
    fn is_busy(&self, id: &SessionId) -> bool {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.get(id).is_some_and(|q| q.lock().unwrap_or_else(PoisonError::into_inner).runner)
    }

    fn queue_length(&self, id: &SessionId) -> u32 {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.get(id).map_or(0, |q| q.lock().unwrap_or_else(PoisonError::into_inner).waiting.len() as u32)
    }

    fn remove(&self, id: &SessionId) -> Option<Arc<Mutex<SessionQueue>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner).remove(id)
    }
}

/// The id of the simple agent API's session.
pub const DEFAULT_SESSION: &str = "ses_default";

fn new_prompt_id() -> String {
    format!("prm_{}", uuid::Uuid::now_v7().simple())
}

impl Engine {
    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.bus
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The configured agents, the default first.
    pub fn agents(&self) -> &[Agent] {
        &self.inner.sessions_config.agents
    }

    /// Prompts waiting in a session's queue (not counting the running one).
    pub fn queue_length(&self, id: &SessionId) -> u32 {
        self.inner.sessions.queue_length(id)
    }

    /// Create a session and announce it (`session.created`).
    ///
    /// # Errors
    /// [`SessionError::AgentNotFound`]; the store's error.
    pub async fn create_session(&self, mut new: NewSession) -> Result<Session, SessionError> {
        let agents = &self.inner.sessions_config.agents;
        if new.agent.is_empty() {
            new.agent = agents.first().map(|a| a.name.clone()).unwrap_or_default();
        }
        let agent = agents
            .iter()
            .find(|a| a.name == new.agent)
            .ok_or_else(|| SessionError::AgentNotFound(new.agent.clone()))?;
        if new.model.is_none() {
            new.model = agent.model.clone();
        }
        if new.work_dir.is_empty() {
            new.work_dir = self.inner.sessions_config.default_work_dir.clone();
        }
        let session = self.inner.store.create_session(new).await?;
        self.inner
            .bus
            .emit(Event::SessionCreated { session_id: session.id.to_string(), session: wire::session(&session, 0) })
            .await;
        Ok(session)
    }

    /// The session of the simple agent API (`POST /request`, `POST /clear`):
    /// `ses_default`, created with the default agent on first use.
    ///
    /// # Errors
    /// The store's error.
    pub async fn default_session(&self) -> Result<Session, SessionError> {
        let id = SessionId::from_string(DEFAULT_SESSION);
        if let Some(session) = self.inner.store.session(&id).await? {
            return Ok(session);
        }
        let new = NewSession { id: Some(id.clone()), title: "default".into(), ..NewSession::default() };
        match self.create_session(new).await {
            // Created by a concurrent first request.
            Err(SessionError::Store(StoreError::SessionExists(_))) => self.session(&id).await,
            other => other,
        }
    }

    /// A session, or [`SessionError::NotFound`].
    ///
    /// # Errors
    /// Not found; the store's error.
    pub async fn session(&self, id: &SessionId) -> Result<Session, SessionError> {
        self.inner.store.session(id).await?.ok_or_else(|| SessionError::NotFound(id.clone()))
    }

    /// Queue a prompt; it runs when the prompts before it are done.
    ///
    /// # Errors
    /// [`SessionError::EmptyPrompt`], [`SessionError::NotFound`], the store's error.
    pub async fn prompt(
        &self,
        id: &SessionId,
        content: String,
        options: PromptOptions,
    ) -> Result<PromptTicket, SessionError> {
        if content.trim().is_empty() {
            return Err(SessionError::EmptyPrompt);
        }
        self.session(id).await?;
        let (done, outcome) = oneshot::channel();
        let prompt_id = new_prompt_id();
        let queue = self.inner.sessions.queue(id);
        let prompt = QueuedPrompt { prompt_id: prompt_id.clone(), content, options, done };
        let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
        if !q.runner {
            // An idle session: the prompt runs at once, on a new runner.
            let token = CancellationToken::new();
            q.running = Some((prompt_id.clone(), token.clone()));
            q.runner = true;
            drop(q);
            tokio::spawn(run_session(self.clone(), id.clone(), queue, prompt, token));
            return Ok(PromptTicket { prompt_id, queue_position: 0, outcome });
        }
        let index = match prompt.options.priority {
            Priority::Normal => q.waiting.len(),
            Priority::High => q.waiting.iter().take_while(|p| p.options.priority == Priority::High).count(),
        };
        q.waiting.insert(index, prompt);
        // Ahead of it: the running prompt, and the waiting ones before its place.
        Ok(PromptTicket { prompt_id, queue_position: index as u32 + 1, outcome })
    }

    /// Cancel the running prompt (its generation stops at the next decode
    /// step; the text so far is stored) and drop the queued ones.
    /// Returns whether a prompt was running and how many queued ones were dropped.
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; the store's error.
    pub async fn cancel(&self, id: &SessionId) -> Result<(bool, u32), SessionError> {
        self.session(id).await?;
        let queue = self.inner.sessions.queue(id);
        let (running, dropped) = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, token)) = &q.running {
                token.cancel();
            }
            (q.running.is_some(), q.waiting.drain(..).collect::<Vec<_>>())
        };
        let n = dropped.len() as u32;
        for prompt in dropped {
            emit_error(self, id, &prompt.prompt_id, cancelled_error(), None).await;
            let _ = prompt.done.send(PromptOutcome::Cancelled);
        }
        Ok((running, n))
    }

    /// Delete a session's messages. Refused while it is answering.
    ///
    /// # Errors
    /// [`SessionError::Busy`], [`SessionError::NotFound`], the store's error.
    pub async fn clear_session(&self, id: &SessionId) -> Result<Session, SessionError> {
        if self.inner.sessions.is_busy(id) {
            return Err(SessionError::Busy(id.clone()));
        }
        match self.inner.store.clear_messages(id).await {
            Err(StoreError::SessionNotFound(_)) => Err(SessionError::NotFound(id.clone())),
            other => Ok(other?),
        }
    }

    /// Delete a session: cancel what runs, drop the queue, delete its messages,
    /// announce `session.deleted`. Its events stay in the log.
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; the store's error.
    pub async fn delete_session(&self, id: &SessionId) -> Result<(), SessionError> {
        self.cancel(id).await?;
        self.inner.sessions.remove(id);
        if !self.inner.store.delete_session(id).await? {
            return Err(SessionError::NotFound(id.clone()));
        }
        self.inner.bus.emit(Event::SessionDeleted { session_id: id.to_string() }).await;
        Ok(())
    }

    async fn set_status(&self, id: &SessionId, status: SessionStatus) {
        match self.inner.store.update_session(id, SessionUpdate::Status(status)).await {
            Ok(_) => {
                self.inner
                    .bus
                    .emit(Event::SessionStatusChanged { session_id: id.to_string(), status: wire::status(status) })
                    .await;
            }
            // Deleted while running: nothing to record.
            Err(StoreError::SessionNotFound(_)) => {}
            Err(e) => tracing::error!(session = %id, error = %e, "cannot record a session status"),
        }
    }
}

fn cancelled_error() -> EventError {
    EventError {
        message: "the prompt was cancelled".into(),
        kind: "invalid_request_error".into(),
        code: Some("cancelled".into()),
    }
}

/// The runner: answers a session's prompts in queue order until none is left.
async fn run_session(
    engine: Engine,
    id: SessionId,
    queue: Arc<Mutex<SessionQueue>>,
    first: QueuedPrompt,
    first_token: CancellationToken,
) {
    // A round: `busy`, answer prompts while any wait, then the final status
    // and `agent.idle`. The runner lets go of the queue only after that is
    // recorded, so a prompt arriving meanwhile starts another round here
    // instead of a second runner whose `busy` could race this one's `idle`.
    let mut current = Some((first, first_token));
    let mut round_started = false;
    while let Some((prompt, cancel)) = current.take() {
        if !round_started {
            engine.set_status(&id, SessionStatus::Busy).await;
            round_started = true;
        }
        let outcome = answer(&engine, &id, &prompt.prompt_id, prompt.content, &prompt.options, &cancel).await;
        current = pop_next(&queue);
        if current.is_none() {
            let status = match &outcome {
                PromptOutcome::Complete(_) => SessionStatus::Idle,
                PromptOutcome::Cancelled => SessionStatus::Cancelled,
                PromptOutcome::Failed(_) | PromptOutcome::Store(_) => SessionStatus::Error,
            };
            engine.set_status(&id, status).await;
            engine.inner.bus.emit(Event::AgentIdle { session_id: id.to_string() }).await;
            round_started = false;
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            current = pop_locked(&mut q);
            if current.is_none() {
                q.runner = false;
            }
        }
        // Last: a caller waiting on this prompt finds the session as it left it.
        let _ = prompt.done.send(outcome);
    }
}

/// The next waiting prompt, marked running; `None` (and nothing running) when none waits.
fn pop_next(queue: &Mutex<SessionQueue>) -> Option<(QueuedPrompt, CancellationToken)> {
    pop_locked(&mut queue.lock().unwrap_or_else(PoisonError::into_inner))
}

fn pop_locked(q: &mut SessionQueue) -> Option<(QueuedPrompt, CancellationToken)> {
    match q.waiting.pop_front() {
        Some(prompt) => {
            let token = CancellationToken::new();
            q.running = Some((prompt.prompt_id.clone(), token.clone()));
            Some((prompt, token))
        }
        None => {
            q.running = None;
            None
        }
    }
}

/// Answer one prompt: store the user message, generate with the session's
/// history, stream chunks, store the answer.
async fn answer(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    content: String,
    options: &PromptOptions,
    cancel: &CancellationToken,
) -> PromptOutcome {
    let bus = &engine.inner.bus;
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
    bus.emit(Event::MessageStart {
        session_id: id.to_string(),
        prompt_id: prompt_id.to_owned(),
        user_message: wire::message(&user),
    })
    .await;

    let history = match store.messages(id).await {
        Ok(h) => h,
        Err(e) => return PromptOutcome::Store(e),
    };
    let system =
        engine.agents().iter().find(|a| a.name == session.agent).map(|a| a.system_prompt.clone()).unwrap_or_default();
    let mut messages = Vec::with_capacity(history.len() + 1);
    if !system.is_empty() {
        messages.push(ChatMessage::new(Role::System, system));
    }
    messages.extend(history.iter().map(|m| ChatMessage {
        role: m.role,
        content: m.content.clone(),
        name: None,
        tool_call_id: m.tool_call_id.clone(),
        tool_calls: m.tool_calls.clone(),
    }));

    let mut request = GenerateRequest::new(Prompt::Chat(messages));
    request.max_tokens = options.max_tokens;
    request.sampling.ignore_eos = options.ignore_eos;
    let mut stream = match engine.generate(session.model.as_deref(), request) {
        Ok(s) => s,
        Err(e) => return fail(engine, id, prompt_id, e).await,
    };
    let mut text = String::new();
    loop {
        let event = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            event = stream.next() => Some(event),
        };
        let Some(event) = event else {
            // Dropping the stream frees the sequence at the next decode step.
            drop(stream);
            return cancelled(engine, id, prompt_id, text).await;
        };
        match event {
            Some(GenerationEvent::Text(first)) => {
                // Coalesce what is already waiting into one chunk event.
                let mut chunk = first;
                let mut end = None;
                while let Some(Some(next)) = stream.next().now_or_never() {
                    match next {
                        GenerationEvent::Text(t) => chunk.push_str(&t),
                        other => {
                            end = Some(other);
                            break;
                        }
                    }
                }
                text.push_str(&chunk);
                bus.emit(Event::MessageChunk {
                    session_id: id.to_string(),
                    prompt_id: prompt_id.to_owned(),
                    content: chunk,
                })
                .await;
                if let Some(end) = end {
                    return finish(engine, id, prompt_id, text, end).await;
                }
            }
            Some(end) => return finish(engine, id, prompt_id, text, end).await,
            None => return fail(engine, id, prompt_id, EngineError::Backend(crate::BackendError::Unavailable)).await,
        }
    }
}

async fn finish(engine: &Engine, id: &SessionId, prompt_id: &str, text: String, end: GenerationEvent) -> PromptOutcome {
    match end {
        GenerationEvent::Done { finish_reason, usage } => {
            let message = NewMessage {
                usage: Some(TokenUsage {
                    prompt_tokens: u64::from(usage.prompt_tokens),
                    completion_tokens: u64::from(usage.completion_tokens),
                }),
                finish_reason: Some(finish_reason.as_str().to_owned()),
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
        GenerationEvent::Error(e) => fail(engine, id, prompt_id, EngineError::Backend(e)).await,
        GenerationEvent::Text(_) | GenerationEvent::ToolCalls(_) => {
            PromptOutcome::Failed(EngineError::Backend(crate::BackendError::Unavailable))
        }
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

/// `message.error` for a prompt, with the partial answer when one was stored.
async fn emit_error(engine: &Engine, id: &SessionId, prompt_id: &str, error: EventError, message: Option<&Message>) {
    let event = Event::MessageError {
        session_id: id.to_string(),
        prompt_id: prompt_id.to_owned(),
        error,
        message: message.map(wire::message),
    };
    engine.inner.bus.emit(event).await;
}
