//! Sessions: conversations the server owns. Each session has a FIFO prompt
//! queue (priority `normal` or `high`) and, while the queue is not empty, one
//! runner task that answers its prompts one at a time: store the user message,
//! generate, stream the text as `message.chunk` events, store the answer.
//! Every step is an event on the [`EventBus`], written to the log before any
//! client sees it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chorus_proto::native::Event;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::store::{Message, NewSession, Session, SessionId, SessionStatus, SessionUpdate, Store, StoreError};
use crate::tools::{ToolChoice, ToolRegistry};
use crate::wire;
use crate::{Engine, EngineError};

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
    /// The tools it may call, by name; every tool of the registry when `None`.
    pub tools: Option<Vec<String>>,
}

impl Default for Agent {
    fn default() -> Self {
        Self::default_agent()
    }
}

impl Agent {
    /// The agent sessions get when they name none.
    pub fn default_agent() -> Self {
        Self {
            name: "default".into(),
            description: "a helpful assistant".into(),
            system_prompt: "You are a helpful assistant.".into(),
            model: None,
            tools: None,
        }
    }
}

/// The session id of a mobile API device: `ses_` and the UUID v5 of `device_id` in a namespace
/// of chorus's own, as 32 hex digits (the shape of every session id).
pub fn device_session_id(device_id: &str) -> SessionId {
    /// `uuid::Uuid::new_v5(&Uuid::NAMESPACE_URL, b"chorus:mobile")`, fixed so ids never change.
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1b_2c1e_4f3a_5d8b_9e0c_7a2d_1b4e_3f50);
    SessionId::from_string(format!("ses_{}", uuid::Uuid::new_v5(&NAMESPACE, device_id.as_bytes()).simple()))
}

/// Settings of the session layer.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// Agents by name; the first is the default.
    pub agents: Vec<Agent>,
    /// The `work_dir` of sessions that name none.
    pub default_work_dir: String,
    /// The tools agents can call, with their permission policies.
    pub tools: ToolRegistry,
    /// How long a `tool.permission_request` waits for a client's answer before it counts as deny.
    pub permission_timeout: Duration,
    /// The most rounds of generation per prompt; the last is generated without tools.
    pub max_tool_rounds: u32,
    /// The characters directory (`--characters-dir`); `None`: no characters.
    pub characters_dir: Option<std::path::PathBuf>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            agents: vec![Agent::default_agent()],
            default_work_dir: ".".into(),
            tools: ToolRegistry::default(),
            permission_timeout: Duration::from_secs(60),
            max_tool_rounds: 8,
            characters_dir: None,
        }
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
    /// `tool_choice` of the first round (`required` or a named tool forces a call); later
    /// rounds are `auto`.
    pub tool_choice: ToolChoice,
    /// Who speaks (OpenAI's message `name`; a character's `{{user}}`), stored in the user
    /// message's metadata; `None`: unnamed (a character session calls them `User`).
    pub user_name: Option<String>,
}

impl PromptOptions {
    /// The one check of a prompt and its options, for every front end: `content` not blank,
    /// `max_tokens` at least 1. [`Engine::prompt`] runs it; a front end that would create a
    /// session for the prompt runs it first.
    ///
    /// # Errors
    /// [`SessionError::EmptyPrompt`], [`SessionError::Invalid`] naming the field.
    pub fn check(&self, content: &str) -> Result<(), SessionError> {
        if content.trim().is_empty() {
            return Err(SessionError::EmptyPrompt);
        }
        if self.max_tokens == Some(0) {
            return Err(crate::ValidationError::new("max_tokens", "max_tokens must be at least 1").into());
        }
        Ok(())
    }
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
    /// No tool call of the session waits for this permission answer.
    #[error("no permission request {0} is waiting in this session (it was answered, timed out, or never existed)")]
    PermissionNotPending(String),
    /// The session is answering a prompt and the operation needs it idle.
    #[error("session {0} is busy; cancel it first (POST /api/v1/sessions/{0}/cancel)")]
    Busy(SessionId),
    /// The prompt was empty.
    #[error("`content` must not be empty")]
    EmptyPrompt,
    /// A prompt option is out of range (the field and the rule).
    #[error(transparent)]
    Invalid(#[from] crate::ValidationError),
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

/// The per-session queues of an engine, and the tool calls waiting for a permission answer.
#[derive(Default)]
pub(crate) struct SessionTable {
    queues: Mutex<HashMap<SessionId, Arc<Mutex<SessionQueue>>>>,
    permissions: Mutex<HashMap<String, (SessionId, oneshot::Sender<bool>)>>,
    /// The id of the first message each compacted session's model sees (`crate::compact`);
    /// kept in memory: after a restart the first prompt that overflows chooses anew.
    windows: Mutex<HashMap<SessionId, String>>,
    /// Running AI-to-AI conversations and the tokens that stop them (cancelling or deleting
    /// the session stops its conversation too).
    pub(crate) conversations: crate::character::conversation::Running,
}

impl SessionTable {
    /// The first message the model sees of a compacted session.
    pub(crate) fn window_start(&self, id: &SessionId) -> Option<String> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// Move a session's window to start at message `first`.
    pub(crate) fn set_window_start(&self, id: &SessionId, first: String) {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), first);
    }

    /// Register a call waiting for permission under `request_id`.
    pub(crate) fn await_permission(&self, request_id: &str, session: SessionId, reply: oneshot::Sender<bool>) {
        self.permissions.lock().unwrap_or_else(PoisonError::into_inner).insert(request_id.to_owned(), (session, reply));
    }

    /// Drop a permission request (answered, timed out or cancelled).
    pub(crate) fn forget_permission(&self, request_id: &str) {
        self.permissions.lock().unwrap_or_else(PoisonError::into_inner).remove(request_id);
    }

    fn queue(&self, id: &SessionId) -> Arc<Mutex<SessionQueue>> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.entry(id.clone()).or_default().clone()
    }

    /// Forget a session's window (its transcript was replaced).
    pub(crate) fn clear_window(&self, id: &SessionId) {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    /// True while a runner answers the session's prompts, or its conversation runs.
    pub(crate) fn is_busy(&self, id: &SessionId) -> bool {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.get(id).is_some_and(|q| q.lock().unwrap_or_else(PoisonError::into_inner).runner)
            || self.conversations.is_running(id)
    }

    fn queue_length(&self, id: &SessionId) -> u32 {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.get(id).map_or(0, |q| q.lock().unwrap_or_else(PoisonError::into_inner).waiting.len() as u32)
    }

    fn remove(&self, id: &SessionId) -> Option<Arc<Mutex<SessionQueue>>> {
        self.conversations.stop(id);
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
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

    /// Answer a `tool.permission_request` of session `id`.
    ///
    /// # Errors
    /// [`SessionError::PermissionNotPending`] when no call of that session waits under
    /// `request_id` (already answered, timed out, or unknown).
    pub fn reply_permission(&self, id: &SessionId, request_id: &str, allow: bool) -> Result<(), SessionError> {
        let mut pending = self.inner.sessions.permissions.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.remove(request_id) {
            Some((session, reply)) if &session == id => {
                // The waiter may have timed out this instant; then the answer is moot.
                let _ = reply.send(allow);
                Ok(())
            }
            Some(other) => {
                pending.insert(request_id.to_owned(), other);
                Err(SessionError::PermissionNotPending(request_id.to_owned()))
            }
            None => Err(SessionError::PermissionNotPending(request_id.to_owned())),
        }
    }

    /// The `work_dir` of sessions that name none.
    pub fn default_work_dir(&self) -> &str {
        &self.inner.sessions_config.default_work_dir
    }

    /// The tools agents can call.
    pub fn tools(&self) -> &ToolRegistry {
        &self.inner.sessions_config.tools
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

    /// The session of one device of the mobile API (`POST /api/v1/mobile/chat`): its id is
    /// derived from `device_id` (`ses_` and a UUID v5 of it), so each device keeps its own
    /// conversation across restarts without a table of its own; created with the default agent,
    /// titled `mobile: DEVICE_ID`, on the device's first message.
    ///
    /// # Errors
    /// The store's error.
    pub async fn device_session(&self, device_id: &str) -> Result<Session, SessionError> {
        let id = device_session_id(device_id);
        if let Some(session) = self.inner.store.session(&id).await? {
            return Ok(session);
        }
        let new = NewSession { id: Some(id.clone()), title: format!("mobile: {device_id}"), ..NewSession::default() };
        match self.create_session(new).await {
            // Created by a concurrent first request of the same device.
            Err(SessionError::Store(StoreError::SessionExists(_))) => self.session(&id).await,
            other => other,
        }
    }

    /// Change a session's title and/or model (`None`: unchanged; `Some(None)`: the model back to
    /// the agent's or the router's choice) and announce it (`session.updated`). The model is
    /// taken as given: callers resolve it first. The next prompt runs on the new model.
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; the store's error.
    pub async fn update_session(
        &self,
        id: &SessionId,
        title: Option<String>,
        model: Option<Option<String>>,
    ) -> Result<Session, SessionError> {
        let mut session = self.session(id).await?;
        if let Some(title) = title {
            session = self.inner.store.update_session(id, SessionUpdate::Title(title.trim().to_owned())).await?;
        }
        if let Some(model) = model {
            session = self.inner.store.update_session(id, SessionUpdate::Model(model)).await?;
        }
        self.inner
            .bus
            .emit(Event::SessionUpdated {
                session_id: id.to_string(),
                session: wire::session(&session, self.queue_length(id)),
            })
            .await;
        Ok(session)
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
    /// The prompt and its options are checked here ([`PromptOptions::check`]), for every front end.
    ///
    /// # Errors
    /// [`SessionError::EmptyPrompt`], [`SessionError::Invalid`], [`SessionError::NotFound`],
    /// the store's error.
    pub async fn prompt(
        &self,
        id: &SessionId,
        content: String,
        options: PromptOptions,
    ) -> Result<PromptTicket, SessionError> {
        options.check(&content)?;
        self.session(id).await?;
        // An AI-to-AI conversation writes this session's messages itself until it ends.
        if self.inner.sessions.conversations.is_running(id) {
            return Err(SessionError::Busy(id.clone()));
        }
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
    /// step; the text so far is stored) and drop the queued ones; stop the session's AI-to-AI
    /// conversation, if one runs. Returns whether a prompt (or a conversation) was running and
    /// how many queued ones were dropped.
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; the store's error.
    pub async fn cancel(&self, id: &SessionId) -> Result<(bool, u32), SessionError> {
        self.session(id).await?;
        let conversation = self.inner.sessions.conversations.stop(id);
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
            crate::agent::emit_error(self, id, &prompt.prompt_id, crate::agent::cancelled_error(), None).await;
            let _ = prompt.done.send(PromptOutcome::Cancelled);
        }
        Ok((running || conversation, n))
    }

    /// Cancel one prompt and leave the session's other prompts alone: the running one stops as
    /// with [`Engine::cancel`] (its text so far is stored), a queued one is dropped (with its
    /// `message.error`). Returns false when the prompt is neither running nor queued (it ended).
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; the store's error.
    pub async fn cancel_prompt(&self, id: &SessionId, prompt_id: &str) -> Result<bool, SessionError> {
        self.session(id).await?;
        let queue = self.inner.sessions.queue(id);
        let dropped = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((running, token)) = &q.running
                && running == prompt_id
            {
                token.cancel();
                return Ok(true);
            }
            match q.waiting.iter().position(|p| p.prompt_id == prompt_id) {
                Some(index) => q.waiting.remove(index),
                None => return Ok(false),
            }
        };
        if let Some(prompt) = dropped {
            crate::agent::emit_error(self, id, &prompt.prompt_id, crate::agent::cancelled_error(), None).await;
            let _ = prompt.done.send(PromptOutcome::Cancelled);
        }
        Ok(true)
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
        self.forget_cache(&crate::request::session_cache_key(&id.to_string()));
        self.inner.bus.emit(Event::SessionDeleted { session_id: id.to_string() }).await;
        Ok(())
    }

    pub(crate) async fn set_status(&self, id: &SessionId, status: SessionStatus) {
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
        let outcome =
            crate::agent::answer(&engine, &id, &prompt.prompt_id, prompt.content, &prompt.options, &cancel).await;
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
