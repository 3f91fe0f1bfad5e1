//! The [`Store`] trait: where sessions, their messages and the event log live,
//! and the plain records it reads and writes ([`Session`], [`Message`],
//! [`StoredEvent`]). `chorus-store` implements it on SQLite and PostgreSQL.
//!
//! Durability is part of the contract: when a write method returns `Ok`, the
//! write has been committed (on SQLite with `synchronous=FULL`), so the engine
//! may acknowledge it to a client.

use std::fmt;

use crate::Role;

/// A session id, `ses_` followed by 32 hex digits (a UUID v7, so ids sort by
/// creation time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(format!("ses_{}", uuid::Uuid::now_v7().simple()))
    }

    /// Wrap an id read from a client or the store; no check of its shape, an
    /// unknown id is simply not found.
    pub fn from_string(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Waiting for a prompt.
    Idle,
    /// Answering a prompt (generating or running tools).
    Busy,
    /// The last prompt was cancelled.
    Cancelled,
    /// The last prompt failed.
    Error,
}

impl SessionStatus {
    /// The status as the native API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }

    /// Parse [`SessionStatus::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "idle" => Self::Idle,
            "busy" => Self::Busy,
            "cancelled" => Self::Cancelled,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// Tokens a session has used, summed over its prompts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens (OpenAI's `prompt_tokens`), cached ones included.
    pub prompt_tokens: u64,
    /// Generated tokens (OpenAI's `completion_tokens`).
    pub completion_tokens: u64,
    /// Prompt tokens that came from the prompt cache rather than being computed (OpenAI's
    /// `prompt_tokens_details.cached_tokens`).
    pub cached_tokens: u64,
}

/// A conversation the server owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Unix time in milliseconds when it was created.
    pub created_at: i64,
    /// Unix time in milliseconds of its last change (a message, a status).
    pub updated_at: i64,
    /// A title for lists; empty until set.
    pub title: String,
    /// The directory its tools work in.
    pub work_dir: String,
    /// The agent (named system prompt, model and tools) it runs.
    pub agent: String,
    /// The model it uses; `None` for the server's default.
    pub model: Option<String>,
    /// What it is doing.
    pub status: SessionStatus,
    /// The character it plays (the id in the characters directory); `None` for an agent session.
    pub character: Option<String>,
    /// Messages stored for it.
    pub message_count: u64,
    /// Tokens used by its prompts.
    pub token_usage: TokenUsage,
}

/// The fields a client chooses when it creates a session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewSession {
    /// A fixed id (the simple agent API's default session); a new one when `None`.
    pub id: Option<SessionId>,
    /// A title; may be empty.
    pub title: String,
    /// The directory its tools work in.
    pub work_dir: String,
    /// The agent it runs.
    pub agent: String,
    /// The model; `None` for the server's default.
    pub model: Option<String>,
    /// The character it plays; `None` for an agent session.
    pub character: Option<String>,
}

pub use crate::tools::ToolCall;

/// A message to append to a session.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text; may be empty for an assistant message that only calls tools.
    pub content: String,
    /// For [`Role::Assistant`]: the tools it calls.
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`]: the id of the call it answers.
    pub tool_call_id: Option<String>,
    /// For [`Role::Assistant`]: the tokens this answer used, added to the session's [`TokenUsage`].
    pub usage: Option<TokenUsage>,
    /// For [`Role::Assistant`]: OpenAI's `finish_reason` (`stop`, `length`, `tool_calls`, `cancelled`).
    pub finish_reason: Option<String>,
    /// How it was produced, a JSON object (the native API's `MessageMetadata`); stored as is.
    pub metadata: Option<String>,
}

impl NewMessage {
    /// A message with just a role and text.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            usage: None,
            finish_reason: None,
            metadata: None,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its id, `msg_` followed by 32 hex digits.
    pub id: String,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Its place in the session, from 1.
    pub seq: u64,
    /// Unix time in milliseconds when it was stored.
    pub created_at: i64,
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// The tools it calls.
    pub tool_calls: Vec<ToolCall>,
    /// The call it answers.
    pub tool_call_id: Option<String>,
    /// Tokens used to produce it.
    pub usage: Option<TokenUsage>,
    /// Why generation stopped.
    pub finish_reason: Option<String>,
    /// As [`NewMessage::metadata`].
    pub metadata: Option<String>,
}

/// An event to append to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The session it concerns; `None` for server-wide events.
    pub session_id: Option<SessionId>,
    /// Its type, such as `message.complete` (the native API's names).
    pub kind: String,
    /// Its payload, a JSON object as text.
    pub data: String,
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its id: increasing in the order events were appended, never reused;
    /// what SSE clients send back as `Last-Event-ID`.
    pub id: i64,
    /// Unix time in milliseconds when it was appended.
    pub created_at: i64,
    /// The session it concerns.
    pub session_id: Option<SessionId>,
    /// Its type.
    pub kind: String,
    /// Its payload, a JSON object as text.
    pub data: String,
}

/// A character session's state besides its transcript: the vitals' current values, the rolling
/// summary of turns that left the model's window, and the turn counter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CharacterState {
    /// The vitals, a JSON object as text: `{"character": {NAME: VALUE}, "users": {USER: {NAME:
    /// VALUE}}}` (values are JSON numbers or strings).
    pub vitals: String,
    /// What the turns before the window said, in a few sentences; empty until the window moves.
    pub summary: String,
    /// The `seq` of the last message the summary covers (0: none).
    pub summarized_seq: u64,
    /// Turns answered so far.
    pub turns: u64,
    /// Unix time in milliseconds of the last change (hourly decay counts from here).
    pub updated_at: i64,
}

/// One change of a vital, for its history.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalChange {
    /// Its id in the history (increasing); 0 before it is stored.
    pub id: i64,
    /// The user whose vital changed; `None` for a character-wide vital.
    pub user: Option<String>,
    /// The vital.
    pub name: String,
    /// The value before, as JSON text; `None` when it was unset.
    pub old_value: Option<String>,
    /// The value after, as JSON text.
    pub new_value: String,
    /// What changed it: `turn` (the side-generation), `tool` (`update_vitals`), `decay`, `api`,
    /// `reset`, `load`.
    pub source: String,
    /// The turn it happened after.
    pub turn: u64,
    /// Unix time in milliseconds.
    pub created_at: i64,
}

/// An episodic memory of a character session.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRecord {
    /// `mem_` and 32 hex digits.
    pub id: String,
    /// The user it is about; `None` for what concerns every user.
    pub user: Option<String>,
    /// What is remembered, one or two sentences.
    pub content: String,
    /// How much it matters, 1 (mundane) to 10 (life-changing), as the model rated it.
    pub importance: u8,
    /// Its embedding (unit length), empty when no embedding model was available.
    pub embedding: Vec<f32>,
    /// Unix time in milliseconds when it was made.
    pub created_at: i64,
    /// Unix time in milliseconds when it was last retrieved (recency counts from here).
    pub accessed_at: i64,
    /// The turn it was made in.
    pub turn: u64,
    /// The texts of near-duplicates merged into it, oldest first: nothing is dropped silently.
    pub merged: Vec<String>,
}

/// A named snapshot of a character session (vitals, memories, transcript), as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Its name, unique per session.
    pub name: String,
    /// The snapshot, a JSON document (the native API's `CharacterSnapshot`).
    pub data: String,
    /// Unix time in milliseconds when it was saved.
    pub created_at: i64,
}

/// Which part of a session a partial update changes.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionUpdate {
    /// A new status.
    Status(SessionStatus),
    /// A new title.
    Title(String),
    /// A new model for its next prompts (`None`: the agent's, else the router's choice).
    Model(Option<String>),
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The session does not exist.
    #[error("session {0} not found")]
    SessionNotFound(SessionId),
    /// A session with that id exists already.
    #[error("session {0} exists already")]
    SessionExists(SessionId),
    /// The database refused or failed; the message says why.
    #[error("database error: {0}")]
    Database(String),
    /// A stored value could not be read back (a bug or a foreign write).
    #[error("corrupt stored value in {column}: {message}")]
    Corrupt {
        /// Table and column.
        column: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// Where sessions, messages and events persist.
///
/// Implementations are cheap to share (`Arc<dyn Store>`) and safe to call
/// from many tasks at once. Every write is committed when it returns `Ok`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is, for `/info` and logs (`sqlite`, `postgres`).
    fn kind(&self) -> &'static str;

    /// Create a session, `idle`, with no messages.
    async fn create_session(&self, new: NewSession) -> Result<Session, StoreError>;

    /// One session, or `None`.
    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;

    /// Sessions, most recently updated first.
    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError>;

    /// Change a session's status or title and its `updated_at`.
    ///
    /// # Errors
    /// [`StoreError::SessionNotFound`].
    async fn update_session(&self, id: &SessionId, update: SessionUpdate) -> Result<Session, StoreError>;

    /// Delete a session and its messages; its events stay in the log.
    /// Returns false when there was no such session.
    async fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// Append a message, in one transaction with the session's
    /// `message_count`, `token_usage` and `updated_at`.
    ///
    /// # Errors
    /// [`StoreError::SessionNotFound`].
    async fn append_message(&self, id: &SessionId, message: NewMessage) -> Result<Message, StoreError>;

    /// A session's messages in order.
    async fn messages(&self, id: &SessionId) -> Result<Vec<Message>, StoreError>;

    /// Delete a session's messages (its token usage stays: it was spent).
    ///
    /// # Errors
    /// [`StoreError::SessionNotFound`].
    async fn clear_messages(&self, id: &SessionId) -> Result<Session, StoreError>;

    /// Append events in one transaction, in order; returns them with their ids.
    /// Committed, but an implementation may skip waiting for the disk here:
    /// events must become durable no later than the next durable write (a
    /// message), so a crash never loses an event that a stored message follows.
    async fn append_events(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, StoreError>;

    /// The id of the newest event in the log, 0 when it is empty.
    async fn last_event_id(&self) -> Result<i64, StoreError>;

    /// Events with an id above `after`, oldest first, at most `limit`; only
    /// those of `session` when given.
    async fn events_after(
        &self,
        session: Option<&SessionId>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// A character session's state, `None` before its first write.
    async fn character_state(&self, id: &SessionId) -> Result<Option<CharacterState>, StoreError>;

    /// Write a character session's state and append `changes` to its vitals' history, in one
    /// transaction.
    ///
    /// # Errors
    /// [`StoreError::SessionNotFound`].
    async fn put_character_state(
        &self,
        id: &SessionId,
        state: &CharacterState,
        changes: &[VitalChange],
    ) -> Result<(), StoreError>;

    /// The latest `limit` changes of a session's vitals, newest first.
    async fn vital_changes(&self, id: &SessionId, limit: u32) -> Result<Vec<VitalChange>, StoreError>;

    /// Add a memory, or replace the one with the same id (a merge, an edit).
    ///
    /// # Errors
    /// [`StoreError::SessionNotFound`].
    async fn put_memory(&self, id: &SessionId, memory: &MemoryRecord) -> Result<(), StoreError>;

    /// A session's memories, oldest first.
    async fn memories(&self, id: &SessionId) -> Result<Vec<MemoryRecord>, StoreError>;

    /// Mark memories as retrieved at `at` (Unix ms): their recency starts again.
    async fn touch_memories(&self, id: &SessionId, memory_ids: &[String], at: i64) -> Result<(), StoreError>;

    /// Forget a memory; false when there was none with that id.
    async fn delete_memory(&self, id: &SessionId, memory_id: &str) -> Result<bool, StoreError>;

    /// Save a snapshot under its name, replacing one of the same name.
    ///
    /// # Errors
    /// [`StoreError::SessionNotFound`].
    async fn put_snapshot(&self, id: &SessionId, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// One snapshot by name.
    async fn snapshot(&self, id: &SessionId, name: &str) -> Result<Option<Snapshot>, StoreError>;

    /// A session's snapshots, oldest first, without their data (`data` empty).
    async fn snapshots(&self, id: &SessionId) -> Result<Vec<Snapshot>, StoreError>;

    /// Replace a character session's state, memories and transcript in one transaction (a
    /// `load` or a `reset`): the messages are stored as given (ids, seq and times kept), and
    /// the session's `message_count` and next `seq` follow them. Token usage stays (it was spent).
    ///
    /// # Errors
    /// [`StoreError::SessionNotFound`].
    async fn restore_character(
        &self,
        id: &SessionId,
        state: &CharacterState,
        memories: &[MemoryRecord],
        messages: &[Message],
        changes: &[VitalChange],
    ) -> Result<(), StoreError>;
}
