//! Character instances: a character chat is a session bound to a character (its
//! `character` field). Each character has one shared session (`ses_` and a UUID v5 of its id)
//! that every client attaching to it joins; more can be made. A session's state besides its
//! transcript (vitals, rolling summary, turn counter), its memories and its named snapshots are
//! in the store. This module holds the [`Engine`]'s character methods: attach, status,
//! save / load / reset, memory search, edit and forget; the turn itself is [`super::turn`].

use std::path::PathBuf;

use chorus_proto::character::{CharacterStatus, ChorusExtension, MemoryView, VitalChangeView, VitalScope};
use chorus_proto::native::{self, Event};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::card;
use super::dir::{CharacterDir, DirError, StoredCharacter};
use super::memory;
use super::prompt;
use super::vitals::{VitalError, Vitals};
use crate::store::{
    CharacterState, MemoryRecord, Message, NewMessage, NewSession, Session, SessionId, Snapshot, StoreError,
    VitalChange,
};
use crate::{Engine, EngineError, Role, SessionError, ValidationError};

/// `{{user}}` when a client gives no name.
pub const DEFAULT_USER: &str = "User";

/// Why a character operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CharacterError {
    /// The server runs without a characters directory.
    #[error("this server has no characters directory (start it with --characters-dir)")]
    NoDirectory,
    /// No character with that id or name.
    #[error("character `{0}` not found (`chorus characters list` shows them)")]
    NotFound(String),
    /// The session does not play that character.
    #[error("session {0} does not play this character")]
    WrongSession(SessionId),
    /// No snapshot of that name.
    #[error("no snapshot named `{0}` (`status` lists the saved ones)")]
    SnapshotNotFound(String),
    /// No memory with that id.
    #[error("memory {0} not found")]
    MemoryNotFound(String),
    /// A field is out of range.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A vital's value is refused.
    #[error(transparent)]
    Vital(#[from] VitalError),
    /// The characters directory failed (a bad card, an I/O error).
    #[error(transparent)]
    Dir(#[from] DirError),
    /// A session operation failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Generation or embedding failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shared session of a character: `ses_` and the UUID v5 of `character:ID`.
pub fn character_session_id(character: &str) -> SessionId {
    /// Fixed so ids never change.
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x1c0e_42c5_9a4b_4d1e_8f2a_6b3c_7d8e_9f01);
    let key = format!("character:{character}");
    SessionId::from_string(format!("ses_{}", uuid::Uuid::new_v5(&NAMESPACE, key.as_bytes()).simple()))
}

/// A checked `{{user}}` name: trimmed, 1 to 64 characters, no control characters;
/// [`DEFAULT_USER`] when absent or blank.
///
/// # Errors
/// [`ValidationError`] on `user_name`.
pub fn user_name(name: Option<&str>) -> Result<String, ValidationError> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(DEFAULT_USER);
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "user_name",
            "user_name must be 1 to 64 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_snapshot_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("name", "a snapshot name is 1 to 64 letters, digits, `-`, `_` or `.`"))
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A loaded character: its stored card and chorus's additions.
#[derive(Debug, Clone)]
pub struct Character {
    /// The card as the directory holds it.
    pub stored: StoredCharacter,
    /// Its vitals schema and memory settings.
    pub ext: ChorusExtension,
}

impl Character {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.stored.id
    }

    /// `{{char}}`.
    pub fn name(&self) -> &str {
        self.stored.card.data.char_name()
    }
}

/// What a snapshot holds (its JSON is [`Snapshot::data`] and what `GET …/snapshots/{name}`
/// exports).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotData {
    pub(crate) version: u32,
    pub(crate) character: String,
    pub(crate) name: String,
    pub(crate) created_at: i64,
    pub(crate) vitals: Vitals,
    pub(crate) summary: String,
    pub(crate) summarized_seq: u64,
    pub(crate) turns: u64,
    pub(crate) memories: Vec<SnapshotMemory>,
    pub(crate) messages: Vec<native::Message>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotMemory {
    id: String,
    user: Option<String>,
    content: String,
    importance: u8,
    embedding: Vec<f32>,
    created_at: i64,
    accessed_at: i64,
    turn: u64,
    merged: Vec<String>,
}

impl From<&MemoryRecord> for SnapshotMemory {
    fn from(m: &MemoryRecord) -> Self {
        Self {
            id: m.id.clone(),
            user: m.user.clone(),
            content: m.content.clone(),
            importance: m.importance,
            embedding: m.embedding.clone(),
            created_at: m.created_at,
            accessed_at: m.accessed_at,
            turn: m.turn,
            merged: m.merged.clone(),
        }
    }
}

impl From<SnapshotMemory> for MemoryRecord {
    fn from(m: SnapshotMemory) -> Self {
        Self {
            id: m.id,
            user: m.user,
            content: m.content,
            importance: m.importance.clamp(1, 10),
            embedding: m.embedding,
            created_at: m.created_at,
            accessed_at: m.accessed_at,
            turn: m.turn,
            merged: m.merged,
        }
    }
}

/// A memory in its wire form.
pub fn memory_view(m: &MemoryRecord, score: Option<f64>) -> MemoryView {
    MemoryView {
        id: m.id.clone(),
        user: m.user.clone(),
        content: m.content.clone(),
        importance: m.importance,
        created_at: m.created_at,
        accessed_at: m.accessed_at,
        turn: m.turn,
        merged: m.merged.clone(),
        score,
    }
}

/// A vital change in its wire form.
pub fn change_view(c: &VitalChange) -> VitalChangeView {
    let parse = |s: &str| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()));
    VitalChangeView {
        user: c.user.clone(),
        name: c.name.clone(),
        old_value: c.old_value.as_deref().map(parse),
        new_value: parse(&c.new_value),
        source: c.source.clone(),
        turn: c.turn,
        created_at: c.created_at,
    }
}

/// The card's greeting (`first_mes`) for `user`, with the metadata that names its speaker; `None`
/// for a card without one.
fn greeting(character: &Character, state: &CharacterState, user: &str) -> Option<(String, Option<String>)> {
    let vitals = Vitals::parse(&state.vitals, &character.ext.vitals).rendered(&character.ext.vitals, user);
    let text = prompt::greeting(&character.stored.card.data, 0, user, &vitals)?;
    let metadata = native::MessageMetadata { name: Some(character.name().to_owned()), ..Default::default() };
    Some((text, serde_json::to_string(&metadata).ok()))
}

/// The initial state of a character session.
fn initial_state(character: &Character) -> CharacterState {
    CharacterState {
        vitals: Vitals::initial(&character.ext.vitals).to_json(),
        summary: String::new(),
        summarized_seq: 0,
        turns: 0,
        updated_at: now_ms(),
    }
}

impl Engine {
    /// The characters directory, when the server has one.
    ///
    /// # Errors
    /// [`CharacterError::NoDirectory`].
    pub fn character_dir(&self) -> Result<CharacterDir, CharacterError> {
        let path: &Option<PathBuf> = &self.inner.sessions_config.characters_dir;
        path.as_ref().map(CharacterDir::new).ok_or(CharacterError::NoDirectory)
    }

    /// A character by id or name.
    ///
    /// # Errors
    /// [`CharacterError::NotFound`]; the directory's error.
    pub fn character(&self, id_or_name: &str) -> Result<Character, CharacterError> {
        let stored = self
            .character_dir()?
            .resolve(id_or_name)?
            .ok_or_else(|| CharacterError::NotFound(id_or_name.to_owned()))?;
        let ext = card::chorus_extension(&stored.card);
        Ok(Character { stored, ext })
    }

    /// The session a character talks in: `session` when given (it must play the character),
    /// else the character's shared session, created on first use with the card's greeting
    /// (`first_mes`, rendered for `user`) as its first message and the card's initial vitals.
    ///
    /// # Errors
    /// [`CharacterError::NotFound`], [`CharacterError::WrongSession`]; the store's error.
    pub async fn character_session(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        user: &str,
    ) -> Result<(Character, Session), CharacterError> {
        let character = self.character(id_or_name)?;
        if let Some(id) = session {
            let s = self.session(id).await?;
            if s.character.as_deref() != Some(character.id()) {
                return Err(CharacterError::WrongSession(id.clone()));
            }
            return Ok((character, s));
        }
        let id = character_session_id(character.id());
        if let Some(s) = self.inner.store.session(&id).await? {
            return Ok((character, s));
        }
        match self.new_character_session(&character, Some(id.clone()), user).await {
            Err(CharacterError::Session(SessionError::Store(StoreError::SessionExists(_)))) => {
                Ok((character, self.session(&id).await?))
            }
            other => other.map(|s| (character, s)),
        }
    }

    /// A new session playing `character` (a fresh instance, with the greeting and initial
    /// vitals), with a fixed id or a new one.
    ///
    /// # Errors
    /// The store's error.
    pub async fn new_character_session(
        &self,
        character: &Character,
        id: Option<SessionId>,
        user: &str,
    ) -> Result<Session, CharacterError> {
        let new = NewSession {
            id,
            title: character.stored.card.data.name.clone(),
            model: character.ext.model.clone(),
            character: Some(character.id().to_owned()),
            ..NewSession::default()
        };
        let session = self.create_session(new).await?;
        self.seed_character(character, &session.id, user).await?;
        self.session(&session.id).await.map_err(Into::into)
    }

    /// Store the greeting and the initial state of a session that has no messages.
    async fn seed_character(&self, character: &Character, id: &SessionId, user: &str) -> Result<(), CharacterError> {
        let state = initial_state(character);
        self.inner.store.put_character_state(id, &state, &[]).await?;
        if let Some((text, metadata)) = greeting(character, &state, user) {
            let message = NewMessage { metadata, ..NewMessage::text(Role::Assistant, text) };
            self.inner.store.append_message(id, message).await?;
        }
        Ok(())
    }

    /// A character session's state, its vitals as `user` sees them.
    ///
    /// # Errors
    /// As [`Engine::character_session`]; the store's error.
    pub async fn character_status(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        user: &str,
    ) -> Result<CharacterStatus, CharacterError> {
        let (character, s) = self.character_session(id_or_name, session, user).await?;
        let store = &self.inner.store;
        let state = store.character_state(&s.id).await?.unwrap_or_else(|| initial_state(&character));
        let vitals = Vitals::parse(&state.vitals, &character.ext.vitals);
        let changes = store.vital_changes(&s.id, 20).await?;
        let memories = store.memories(&s.id).await?;
        let snapshots = store.snapshots(&s.id).await?;
        Ok(CharacterStatus {
            character: character.id().to_owned(),
            name: character.name().to_owned(),
            session_id: s.id.to_string(),
            user: user.to_owned(),
            turns: state.turns,
            vitals: vitals.values(&character.ext.vitals, user).into_iter().collect(),
            vitals_schema: character.ext.vitals.clone(),
            recent_changes: changes.iter().map(change_view).collect(),
            memory_count: memories.len(),
            message_count: s.message_count,
            summary: state.summary,
            snapshots: snapshots.into_iter().map(|s| s.name).collect(),
        })
    }

    /// Set a vital by hand (`source: api`), announced as `character.updated`.
    ///
    /// # Errors
    /// [`CharacterError::Vital`] for an unknown name or a refused value; as
    /// [`Engine::character_session`].
    pub async fn set_vital(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        user: &str,
        name: &str,
        value: &Value,
    ) -> Result<CharacterStatus, CharacterError> {
        let (character, s) = self.character_session(id_or_name, session, user).await?;
        let store = &self.inner.store;
        let mut state = store.character_state(&s.id).await?.unwrap_or_else(|| initial_state(&character));
        let mut vitals = Vitals::parse(&state.vitals, &character.ext.vitals);
        let now = now_ms();
        let stamp = super::vitals::Stamp { source: "api", turn: state.turns, at: now };
        let change = vitals.set(&character.ext.vitals, user, name, value, stamp)?;
        state.vitals = vitals.to_json();
        state.updated_at = now;
        let changes: Vec<VitalChange> = change.into_iter().collect();
        store.put_character_state(&s.id, &state, &changes).await?;
        self.emit_character_update(&character, &s.id, &state, &vitals, user, &changes, None).await;
        self.character_status(character.id(), Some(&s.id), user).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn emit_character_update(
        &self,
        character: &Character,
        id: &SessionId,
        state: &CharacterState,
        vitals: &Vitals,
        user: &str,
        changes: &[VitalChange],
        memory: Option<&MemoryRecord>,
    ) {
        self.inner
            .bus
            .emit(Event::CharacterUpdated {
                session_id: id.to_string(),
                character: character.id().to_owned(),
                turn: state.turns,
                vitals: vitals.values(&character.ext.vitals, user).into_iter().collect(),
                changes: changes.iter().map(change_view).collect(),
                memory: memory.map(|m| memory_view(m, None)),
            })
            .await;
    }

    /// Save the session's vitals, memories and transcript as snapshot `name` (replacing one of
    /// that name). Returns the snapshot.
    ///
    /// # Errors
    /// [`CharacterError::Invalid`] for a bad name; as [`Engine::character_session`].
    pub async fn save_character(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        name: &str,
    ) -> Result<Snapshot, CharacterError> {
        check_snapshot_name(name)?;
        let (character, s) = self.character_session(id_or_name, session, DEFAULT_USER).await?;
        let store = &self.inner.store;
        let state = store.character_state(&s.id).await?.unwrap_or_else(|| initial_state(&character));
        let data = SnapshotData {
            version: 1,
            character: character.id().to_owned(),
            name: name.to_owned(),
            created_at: now_ms(),
            vitals: Vitals::parse(&state.vitals, &character.ext.vitals),
            summary: state.summary,
            summarized_seq: state.summarized_seq,
            turns: state.turns,
            memories: store.memories(&s.id).await?.iter().map(SnapshotMemory::from).collect(),
            messages: store.messages(&s.id).await?.iter().map(crate::wire::message).collect(),
        };
        let snapshot = Snapshot {
            name: name.to_owned(),
            data: serde_json::to_string(&data).map_err(|e| StoreError::Database(e.to_string()))?,
            created_at: data.created_at,
        };
        store.put_snapshot(&s.id, &snapshot).await?;
        Ok(snapshot)
    }

    /// A snapshot's JSON document (for export).
    ///
    /// # Errors
    /// [`CharacterError::SnapshotNotFound`]; as [`Engine::character_session`].
    pub async fn character_snapshot(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        name: &str,
    ) -> Result<Value, CharacterError> {
        let (_, s) = self.character_session(id_or_name, session, DEFAULT_USER).await?;
        let data = self.snapshot_data(&s.id, name).await?;
        serde_json::to_value(data).map_err(|e| StoreError::Database(e.to_string()).into())
    }

    /// Restore snapshot `name`: vitals, memories, summary and transcript as they were saved.
    /// Refused while the session answers a prompt.
    ///
    /// # Errors
    /// [`CharacterError::SnapshotNotFound`]; [`SessionError::Busy`]; as
    /// [`Engine::character_session`].
    pub async fn load_character(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        name: &str,
    ) -> Result<CharacterStatus, CharacterError> {
        let (character, s) = self.character_session(id_or_name, session, DEFAULT_USER).await?;
        let data = self.snapshot_data(&s.id, name).await?;
        let messages: Vec<Message> =
            data.messages.iter().filter_map(|m| crate::wire::message_record(m, &s.id)).collect();
        let state = CharacterState {
            vitals: data.vitals.to_json(),
            summary: data.summary,
            summarized_seq: data.summarized_seq,
            turns: data.turns,
            updated_at: now_ms(),
        };
        let memories: Vec<MemoryRecord> = data.memories.into_iter().map(Into::into).collect();
        self.restore(&character, &s.id, &state, &memories, &messages, Some(name), "load").await?;
        self.character_status(character.id(), Some(&s.id), DEFAULT_USER).await
    }

    /// A snapshot as saved.
    async fn snapshot_data(&self, id: &SessionId, name: &str) -> Result<SnapshotData, CharacterError> {
        let snapshot =
            self.inner.store.snapshot(id, name).await?.ok_or_else(|| CharacterError::SnapshotNotFound(name.into()))?;
        serde_json::from_str(&snapshot.data)
            .map_err(|e| StoreError::Corrupt { column: "character_snapshots.data", message: e.to_string() }.into())
    }

    /// Reset the session to the card's initial state: the greeting only, initial vitals, no
    /// memories, no summary. Snapshots stay. Refused while the session answers a prompt.
    ///
    /// # Errors
    /// [`SessionError::Busy`]; as [`Engine::character_session`].
    pub async fn reset_character(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        user: &str,
    ) -> Result<CharacterStatus, CharacterError> {
        let (character, s) = self.character_session(id_or_name, session, user).await?;
        let state = initial_state(&character);
        let mut messages = Vec::new();
        if let Some((greeting, metadata)) = greeting(&character, &state, user) {
            messages.push(Message {
                id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
                session_id: s.id.clone(),
                seq: 1,
                created_at: now_ms(),
                role: Role::Assistant,
                content: greeting,
                tool_calls: Vec::new(),
                tool_call_id: None,
                usage: None,
                finish_reason: None,
                metadata,
            });
        }
        self.restore(&character, &s.id, &state, &[], &messages, None, "reset").await?;
        self.character_status(character.id(), Some(&s.id), user).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn restore(
        &self,
        character: &Character,
        id: &SessionId,
        state: &CharacterState,
        memories: &[MemoryRecord],
        messages: &[Message],
        snapshot: Option<&str>,
        source: &str,
    ) -> Result<(), CharacterError> {
        if self.inner.sessions.is_busy(id) {
            return Err(SessionError::Busy(id.clone()).into());
        }
        // The history of the vitals records the jump.
        let store = &self.inner.store;
        let before = match store.character_state(id).await? {
            Some(s) => Vitals::parse(&s.vitals, &character.ext.vitals),
            None => Vitals::initial(&character.ext.vitals),
        };
        let after = Vitals::parse(&state.vitals, &character.ext.vitals);
        let now = now_ms();
        let mut changes = Vec::new();
        let mut users: Vec<&String> = before.users.keys().chain(after.users.keys()).collect();
        users.sort();
        users.dedup();
        for spec in &character.ext.vitals {
            let scoped: Vec<Option<&String>> = match spec.scope {
                VitalScope::Character => vec![None],
                VitalScope::User => users.iter().map(|u| Some(*u)).collect(),
            };
            for user in scoped {
                let u = user.map_or(DEFAULT_USER, String::as_str);
                let (old, new) = (before.values(&character.ext.vitals, u), after.values(&character.ext.vitals, u));
                if old.get(&spec.name) != new.get(&spec.name) {
                    changes.push(VitalChange {
                        id: 0,
                        user: user.cloned(),
                        name: spec.name.clone(),
                        old_value: old.get(&spec.name).map(Value::to_string),
                        new_value: new.get(&spec.name).map(Value::to_string).unwrap_or_default(),
                        source: source.to_owned(),
                        turn: state.turns,
                        created_at: now,
                    });
                }
            }
        }
        store.restore_character(id, state, memories, messages, &changes).await?;
        self.inner.sessions.clear_window(id);
        self.forget_cache(&crate::request::session_cache_key(&id.to_string()));
        self.inner
            .bus
            .emit(Event::CharacterRestored {
                session_id: id.to_string(),
                character: character.id().to_owned(),
                snapshot: snapshot.map(str::to_owned),
            })
            .await;
        Ok(())
    }

    /// A character session's memories, oldest first.
    ///
    /// # Errors
    /// As [`Engine::character_session`]; the store's error.
    pub async fn character_memories(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
    ) -> Result<(Session, Vec<MemoryRecord>), CharacterError> {
        let (_, s) = self.character_session(id_or_name, session, DEFAULT_USER).await?;
        let memories = self.inner.store.memories(&s.id).await?;
        Ok((s, memories))
    }

    /// The memories that best answer `query`, scored as a turn scores them (recency +
    /// importance + relevance), best first; `user` restricts them to that user's and
    /// everyone's. Retrieval here does not refresh their recency.
    ///
    /// # Errors
    /// [`CharacterError::Invalid`] for an empty query or a limit over 50; no embedding model;
    /// as [`Engine::character_session`].
    pub async fn search_memories(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        query: &str,
        user: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<(MemoryRecord, f64)>, CharacterError> {
        if query.trim().is_empty() {
            return Err(ValidationError::new("query", "query must not be empty").into());
        }
        if limit.is_some_and(|l| l == 0 || l > 50) {
            return Err(ValidationError::new("limit", "limit must be from 1 to 50").into());
        }
        let (character, s) = self.character_session(id_or_name, session, user.unwrap_or(DEFAULT_USER)).await?;
        let memories = self.inner.store.memories(&s.id).await?;
        let candidates: Vec<&MemoryRecord> =
            memories.iter().filter(|m| user.is_none() || m.user.is_none() || m.user.as_deref() == user).collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let query = self.embed_text(&character, query).await?;
        let scores = memory::rank(&candidates, &query, now_ms(), character.ext.memory.recency_decay);
        let k = limit.unwrap_or(character.ext.memory.top_k.max(1)) as usize;
        Ok(scores.iter().take(k).map(|sc| (candidates[sc.index].clone(), sc.total)).collect())
    }

    /// Edit a memory's text (its embedding is recomputed) or importance.
    ///
    /// # Errors
    /// [`CharacterError::MemoryNotFound`]; importance outside 1–10 or blank content.
    pub async fn edit_memory(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        memory_id: &str,
        content: Option<String>,
        importance: Option<u8>,
    ) -> Result<MemoryRecord, CharacterError> {
        if importance.is_some_and(|i| !(1..=10).contains(&i)) {
            return Err(ValidationError::new("importance", "importance must be from 1 to 10").into());
        }
        if content.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(ValidationError::new("content", "content must not be empty").into());
        }
        let (character, s) = self.character_session(id_or_name, session, DEFAULT_USER).await?;
        let store = &self.inner.store;
        let mut memory = store
            .memories(&s.id)
            .await?
            .into_iter()
            .find(|m| m.id == memory_id)
            .ok_or_else(|| CharacterError::MemoryNotFound(memory_id.to_owned()))?;
        if let Some(content) = content {
            memory.embedding = self.embed_text(&character, &content).await.unwrap_or_default();
            memory.content = content;
        }
        if let Some(importance) = importance {
            memory.importance = importance;
        }
        store.put_memory(&s.id, &memory).await?;
        Ok(memory)
    }

    /// Forget a memory.
    ///
    /// # Errors
    /// [`CharacterError::MemoryNotFound`]; as [`Engine::character_session`].
    pub async fn forget_memory(
        &self,
        id_or_name: &str,
        session: Option<&SessionId>,
        memory_id: &str,
    ) -> Result<(), CharacterError> {
        let (_, s) = self.character_session(id_or_name, session, DEFAULT_USER).await?;
        if !self.inner.store.delete_memory(&s.id, memory_id).await? {
            return Err(CharacterError::MemoryNotFound(memory_id.to_owned()));
        }
        Ok(())
    }

    /// The embedding model of a character's memories: its own, else the router's, else the
    /// first model that embeds.
    pub(crate) fn memory_embedding_model(&self, character: &Character) -> Option<String> {
        character
            .ext
            .memory
            .embedding_model
            .clone()
            .or_else(|| self.router().embedding_model().map(str::to_owned))
            .or_else(|| {
                self.models().into_iter().find(|m| m.capabilities.iter().any(|c| c == "embedding")).map(|m| m.id)
            })
    }

    /// One text's embedding with the character's memory model.
    pub(crate) async fn embed_text(&self, character: &Character, text: &str) -> Result<Vec<f32>, CharacterError> {
        let model = self
            .memory_embedding_model(character)
            .ok_or_else(|| ValidationError::new("memory", "no embedding model is registered for memories"))?;
        let request =
            crate::EmbedRequest { inputs: vec![crate::EmbeddingInput::Text(text.to_owned())], truncate: true };
        let mut out = self.embed(Some(&model), request, None, None).await?;
        Ok(out.vectors.pop().unwrap_or_default())
    }
}
