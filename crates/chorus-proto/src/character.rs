//! Character cards: the typed view of Character Card V2 (`chara_card_v2`, spec
//! <https://github.com/malfoyslastname/character-card-spec-v2>) and V3 (`chara_card_v3`, spec
//! <https://github.com/kwaroran/character-card-spec-v3>), and chorus's own additions to a card,
//! kept under `data.extensions.chorus` so the file stays a valid card for SillyTavern and other
//! frontends: a vitals schema ([`VitalSpec`]) and memory settings ([`MemorySettings`]).
//!
//! Lossless by construction: every object keeps the fields this crate does not name in an
//! `extra` map (`#[serde(flatten)]`), `extensions` are kept as JSON, and the engine keeps the
//! card's original JSON besides, which is what an export writes back.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `spec` of a V2 card.
pub const SPEC_V2: &str = "chara_card_v2";
/// `spec` of a V3 card.
pub const SPEC_V3: &str = "chara_card_v3";
/// The key under `data.extensions` where chorus keeps its additions.
pub const CHORUS_EXTENSION: &str = "chorus";

/// A Character Card, V2 or V3: `{spec, spec_version, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Card {
    /// `chara_card_v2` or `chara_card_v3`.
    pub spec: String,
    /// `2.0` for V2, `3.0` for V3.
    pub spec_version: String,
    /// The character.
    pub data: CardData,
    /// Top-level fields the spec does not name, kept as they were.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// A card's `data` object (V2 §"data", with V3's additions).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct CardData {
    /// The character's name: `{{char}}` unless `nickname` is set.
    pub name: String,
    /// Who the character is; always part of the prompt.
    #[serde(default)]
    pub description: String,
    /// A short summary of the personality (`{{char}}'s personality: …` in the prompt).
    #[serde(default)]
    pub personality: String,
    /// The circumstances of the conversation (`Scenario: …`).
    #[serde(default)]
    pub scenario: String,
    /// The character's opening message.
    #[serde(default)]
    pub first_mes: String,
    /// Example dialogue, blocks separated by `<START>`.
    #[serde(default)]
    pub mes_example: String,
    /// Notes for humans; never part of the prompt.
    #[serde(default)]
    pub creator_notes: String,
    /// Replaces the frontend's main prompt; `{{original}}` stands for that prompt.
    #[serde(default)]
    pub system_prompt: String,
    /// Instructions placed after the conversation history; `{{original}}` as above.
    #[serde(default)]
    pub post_history_instructions: String,
    /// Other opening messages a user may pick instead of `first_mes`.
    #[serde(default)]
    pub alternate_greetings: Vec<String>,
    /// The character's lorebook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character_book: Option<CharacterBook>,
    /// Tags for lists.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Who made the card.
    #[serde(default)]
    pub creator: String,
    /// The card's own version.
    #[serde(default)]
    pub character_version: String,
    /// Application data; chorus's own is under [`CHORUS_EXTENSION`].
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    /// V3: the name `{{char}}` stands for, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// V3: greetings only for group chats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_only_greetings: Option<Vec<String>>,
    /// Fields this crate does not name (V3's `assets`, `source`, `creation_date`, …), kept.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl CardData {
    /// The name `{{char}}` stands for: the nickname when set, else the name.
    pub fn char_name(&self) -> &str {
        match self.nickname.as_deref() {
            Some(n) if !n.trim().is_empty() => n,
            _ => &self.name,
        }
    }
}

/// A lorebook (`character_book`): entries inserted into the prompt when their keys appear in
/// recent messages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct CharacterBook {
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How many of the latest messages are searched for keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_depth: Option<u32>,
    /// The most tokens its inserted entries may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u32>,
    /// Whether inserted entries' content is searched for keys too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_scanning: Option<bool>,
    /// Application data.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    /// The entries.
    pub entries: Vec<BookEntry>,
    /// Fields this crate does not name, kept.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// One lorebook entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct BookEntry {
    /// Words (or, with `use_regex`, regular expressions) that trigger it.
    pub keys: Vec<String>,
    /// The text inserted.
    pub content: String,
    /// Application data.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    /// Disabled entries are never inserted.
    pub enabled: bool,
    /// Lower values are inserted first (higher in the prompt).
    #[serde(default)]
    pub insertion_order: i64,
    /// Match keys case-sensitively (default: not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
    /// V3: the keys are regular expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_regex: Option<bool>,
    /// Always inserted, keys or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant: Option<bool>,
    /// Also requires one of `secondary_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selective: Option<bool>,
    /// The second set of keys of a `selective` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_keys: Option<Vec<String>>,
    /// When the token budget is short, lower priorities are dropped first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `before_char` or `after_char`: where it goes relative to the character's definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its id (a number or a string in the wild).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub id: Option<Value>,
    /// A note for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Fields this crate does not name, kept.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// chorus's additions to a card, at `data.extensions.chorus`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ChorusExtension {
    /// The character's vitals: typed, bounded state updated after each turn.
    #[serde(default)]
    pub vitals: Vec<VitalSpec>,
    /// How the character remembers.
    #[serde(default)]
    pub memory: MemorySettings,
    /// The model that plays it; the server's default (or the router's choice) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How vitals are updated after a turn.
    #[serde(default)]
    pub vitals_update: VitalsUpdate,
}

/// How vitals change after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VitalsUpdate {
    /// A grammar-constrained JSON side-generation after each turn asks the model for the changes.
    #[default]
    Generate,
    /// The model may call an `update_vitals` tool during its turn.
    Tool,
    /// Only decay and explicit API writes change them.
    None,
}

/// Whose a vital is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VitalScope {
    /// One value for the character, whoever talks to it.
    #[default]
    Character,
    /// One value per user (`{{user}}`) of the character.
    User,
}

/// One vital's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VitalSpec {
    /// Its name: letters, digits and `_`; `{{vitals.NAME}}` in the prompt.
    pub name: String,
    /// What it means, shown to the model when it updates vitals.
    #[serde(default)]
    pub description: String,
    /// Whose it is.
    #[serde(default)]
    pub scope: VitalScope,
    /// Its type and bounds.
    #[serde(flatten)]
    pub kind: VitalKind,
}

/// A vital's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VitalKind {
    /// A number within `[min, max]`.
    Number {
        /// The least value.
        min: f64,
        /// The greatest value.
        max: f64,
        /// The initial value.
        default: f64,
        /// How much it falls after each turn (negative: rises), within `[min, max]`.
        #[serde(default)]
        decay_per_turn: f64,
        /// How much it falls per hour between turns (negative: rises).
        #[serde(default)]
        decay_per_hour: f64,
    },
    /// One of a set of words.
    Enum {
        /// The allowed values.
        values: Vec<String>,
        /// The initial value, one of `values`.
        default: String,
    },
}

/// How a character remembers (Park et al. 2023, "Generative Agents": retrieval by recency,
/// importance and relevance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct MemorySettings {
    /// Keep episodic memories at all.
    pub enabled: bool,
    /// How many memories are injected into a prompt.
    pub top_k: u32,
    /// Recency decay per hour since a memory was last retrieved (`decay^hours`).
    pub recency_decay: f64,
    /// Cosine similarity at or above which a new memory merges into an old one.
    pub merge_threshold: f64,
    /// The embedding model; the server's first embedding model when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_model: Option<String>,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self { enabled: true, top_k: 3, recency_decay: 0.995, merge_threshold: 0.92, embedding_model: None }
    }
}

/// One character in `GET /api/v1/characters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CharacterSummary {
    /// Its id in the characters directory (a slug of its name).
    pub id: String,
    /// The card's name.
    pub name: String,
    /// `chara_card_v2` or `chara_card_v3`.
    pub spec: String,
    /// The card's tags.
    pub tags: Vec<String>,
    /// Entries in its lorebook (0 without one).
    pub lorebook_entries: usize,
    /// Its vitals' names.
    pub vitals: Vec<String>,
}

/// `GET /api/v1/characters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CharacterList {
    /// Always `"list"`.
    pub object: String,
    /// The characters, by id.
    pub data: Vec<CharacterSummary>,
}

/// A vital's change, in its history and in `character.updated` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VitalChangeView {
    /// The user whose vital it is; absent for a character-wide vital.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The vital.
    pub name: String,
    /// Its value before (absent when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub old_value: Option<Value>,
    /// Its value after: a number or a string.
    #[schema(value_type = Object)]
    pub new_value: Value,
    /// What changed it: `turn`, `tool`, `decay`, `api`, `reset`, `load`.
    pub source: String,
    /// The turn after which it changed.
    pub turn: u64,
    /// Unix time in milliseconds.
    pub created_at: i64,
}

/// A memory as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryView {
    /// `mem_` and 32 hex digits.
    pub id: String,
    /// The user it concerns; absent when it concerns everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What is remembered.
    pub content: String,
    /// 1 (mundane) to 10 (poignant), as the model rated it.
    pub importance: u8,
    /// Unix ms when it was made.
    pub created_at: i64,
    /// Unix ms when it was last retrieved.
    pub accessed_at: i64,
    /// The turn it was made in.
    pub turn: u64,
    /// Texts of near-duplicates merged into it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    /// Its retrieval score for a search (recency + importance + relevance, each in 0..1,
    /// so 0..3); absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// `GET /api/v1/characters/{id}/memories` and `memory_search` results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryList {
    /// Always `"list"`.
    pub object: String,
    /// The memories: oldest first in a list, best first in a search.
    pub data: Vec<MemoryView>,
}

/// A character session's state: `status_request`, `GET /api/v1/characters/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CharacterStatus {
    /// The character's id.
    pub character: String,
    /// Its name (`{{char}}`).
    pub name: String,
    /// The session that holds its conversation.
    pub session_id: String,
    /// The user the vitals are shown for.
    pub user: String,
    /// Turns answered.
    pub turns: u64,
    /// Every vital's value for that user: numbers and strings.
    #[schema(value_type = Object)]
    pub vitals: Map<String, Value>,
    /// The vitals' schema.
    pub vitals_schema: Vec<VitalSpec>,
    /// The latest changes, newest first (at most 20).
    pub recent_changes: Vec<VitalChangeView>,
    /// Memories kept.
    pub memory_count: usize,
    /// Messages in the transcript.
    pub message_count: u64,
    /// The rolling summary of turns that left the model's window; empty until one has.
    pub summary: String,
    /// Saved snapshots' names, oldest first.
    pub snapshots: Vec<String>,
}

/// Body of `POST /api/v1/characters/{id}/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterChatRequest {
    /// What the user says.
    pub message: String,
    /// The user's name (`{{user}}`); `User` when absent.
    #[serde(default)]
    pub user_name: Option<String>,
    /// The session to talk in; the character's own (shared) session when absent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Stream server-sent events: `message.chunk`… then `message.complete` and `character.updated`.
    #[serde(default)]
    pub stream: bool,
}

/// Answer of a character chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CharacterChatResponse {
    /// The session.
    pub session_id: String,
    /// The character's answer.
    pub message: crate::native::Message,
    /// Its vitals after the turn, for the user who spoke.
    #[schema(value_type = Object)]
    pub vitals: Map<String, Value>,
    /// What changed them this turn.
    pub changes: Vec<VitalChangeView>,
    /// The memories injected into this turn's prompt, best first.
    pub memories_used: Vec<MemoryView>,
}

/// Body of `POST /api/v1/characters/{id}/save` and `…/load`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// The snapshot's name (1 to 64 letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The session; the character's own when absent.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Body of `POST /api/v1/characters/{id}/memories/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemorySearchRequest {
    /// What to look for.
    pub query: String,
    /// How many to return (default the character's `top_k`, at most 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Whose memories (the user's and everyone's); every user's when absent.
    #[serde(default)]
    pub user_name: Option<String>,
    /// The session; the character's own when absent.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Body of `PATCH /api/v1/characters/{id}/memories/{memory_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryEdit {
    /// New text (its embedding is recomputed).
    #[serde(default)]
    pub content: Option<String>,
    /// New importance, 1 to 10.
    #[serde(default)]
    pub importance: Option<u8>,
}

/// Body of `PUT /api/v1/characters/{id}/vitals/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalWrite {
    /// The new value: a number within the vital's bounds, or one of its words.
    #[schema(value_type = Object)]
    pub value: Value,
    /// Whose vital, for a per-user vital; `User` when absent.
    #[serde(default)]
    pub user_name: Option<String>,
    /// The session; the character's own when absent.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Body of `POST /api/v1/characters/{id}/reset` and `…/sessions` (all optional; an empty body
/// is the same as `{}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterSessionRequest {
    /// The session; the character's own when absent (ignored by `…/sessions`, which makes one).
    #[serde(default)]
    pub session_id: Option<String>,
    /// The user the greeting and the vitals are rendered for; `User` when absent.
    #[serde(default)]
    pub user_name: Option<String>,
}

/// One saved snapshot in `GET /api/v1/characters/{id}/snapshots`, and `save_request`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// Unix time in milliseconds when it was saved.
    pub created_at: i64,
}

/// `GET /api/v1/characters/{id}/snapshots`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotList {
    /// Always `"list"`.
    pub object: String,
    /// The session whose snapshots they are.
    pub session_id: String,
    /// The snapshots, oldest first.
    pub data: Vec<SnapshotInfo>,
}

/// A response frame of the characters WebSocket (`/ws/characters`, `--character-port`), which
/// answers a request frame `{"type": "KIND_request", "request_id"?, "data": {…}}` (the fields of
/// `data` may also be given at the top level, the seed's flat form): `{"type": "KIND_response",
/// "request_id", "success", "data", "error", "timestamp"}`; `error_response` for a frame that is
/// no request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CharacterWsResponse {
    /// `KIND_response` for `KIND_request`; `error_response` for bad JSON or an unknown type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request's `request_id`, echoed as sent; `null` when it gave none.
    #[schema(value_type = Option<String>)]
    pub request_id: Option<Value>,
    /// Whether the request succeeded.
    pub success: bool,
    /// The answer (see each request); `null` on failure.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Why it failed; `null` on success.
    pub error: Option<CharacterWsError>,
    /// When the server sent it: RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
}

/// [`CharacterWsResponse::error`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CharacterWsError {
    /// What went wrong and what to do, for people.
    pub message: String,
    /// The class, as in the HTTP API's error object (`invalid_request_error`, `server_error`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable code for programs: `not_initialized`, `unknown_request`, `invalid_json`,
    /// `character_not_found`, …; `null` when there is none.
    pub code: Option<String>,
    /// The request field at fault.
    pub param: Option<String>,
}

/// `init_request`'s answer: the connection is attached to the character's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CharacterInit {
    /// The character's id.
    pub character: String,
    /// Its name (`{{char}}`).
    pub name: String,
    /// The session the connection is attached to.
    pub session_id: String,
    /// This connection's user (`{{user}}` of its turns).
    pub user: String,
    /// The transcript's user and assistant messages, oldest first (the last 100).
    pub messages: Vec<crate::native::Message>,
    /// The session's state, the vitals as this user sees them.
    pub status: CharacterStatus,
}

/// A participant of an AI-to-AI conversation: a character card, or an ad-hoc personality (the
/// AI Tester seed's `add_participant(name, personality)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// A character's id or name in the characters directory.
    #[serde(default)]
    pub character: Option<String>,
    /// The speaker's name (required for an ad-hoc participant; a card's name otherwise).
    #[serde(default)]
    pub name: Option<String>,
    /// An ad-hoc participant's personality, a sentence or a paragraph.
    #[serde(default)]
    pub personality: Option<String>,
    /// The model that speaks for it; the card's, else the server's default.
    #[serde(default)]
    pub model: Option<String>,
}

/// Body of `POST /api/v1/conversations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationRequest {
    /// Two or more participants, speaking in turn.
    pub participants: Vec<Participant>,
    /// What they talk about; the first speaker opens on it.
    pub topic: String,
    /// Exchanges in all (one message each), 1 to 100; default 6.
    #[serde(default)]
    pub turns: Option<u32>,
    /// The most tokens per message; default 160.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Stream each exchange as a server-sent event; else answer with the whole conversation.
    #[serde(default)]
    pub stream: bool,
}

/// One message of an AI-to-AI conversation: the SSE `exchange` event's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Exchange {
    /// Who spoke.
    pub speaker: String,
    /// What they said.
    pub message: String,
    /// 1 for the first exchange.
    pub turn: u32,
    /// The model that spoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A finished (or stopped) conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    /// The session that stores it (`GET /api/v1/sessions/{id}/messages`).
    pub session_id: String,
    /// Its topic.
    pub topic: String,
    /// The speakers, in speaking order.
    pub participants: Vec<String>,
    /// The exchanges so far.
    pub exchanges: Vec<Exchange>,
    /// `completed`, `cancelled` or `error`.
    pub status: String,
}
