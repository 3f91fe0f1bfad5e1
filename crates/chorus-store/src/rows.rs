//! Reading rows into the engine's records, and the column lists the queries
//! in `lib.rs` select, kept next to the code that reads them by name.

use chorus_engine::Role;
use chorus_engine::store::{Message, Session, SessionId, SessionStatus, StoreError, StoredEvent, TokenUsage, ToolCall};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

// Macros rather than consts so that `concat!` can build each query as a
// `&'static str` literal, which sqlx accepts without an injection audit.

/// The columns [`session_from_row`] reads.
macro_rules! session_columns {
    () => {
        "id, created_at, updated_at, title, work_dir, agent, model, status, \
         message_count, prompt_tokens, completion_tokens, cached_tokens, character"
    };
}

/// The columns [`message_from_row`] reads.
macro_rules! message_columns {
    () => {
        "id, session_id, seq, created_at, role, content, tool_calls, tool_call_id, \
         prompt_tokens, completion_tokens, cached_tokens, finish_reason, metadata"
    };
}

/// The columns [`event_from_row`] reads.
macro_rules! event_columns {
    () => {
        "id, created_at, session_id, kind, data"
    };
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(|e| StoreError::Corrupt { column, message: e.to_string() })
}

pub(crate) fn count(row: &AnyRow, column: &'static str) -> Result<u64, StoreError> {
    let n: i64 = get(row, column)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt { column, message: format!("negative count {n}") })
}

pub(crate) fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    let status: String = get(row, "status")?;
    Ok(Session {
        id: SessionId::from_string(get::<String>(row, "id")?),
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        title: get(row, "title")?,
        work_dir: get(row, "work_dir")?,
        agent: get(row, "agent")?,
        model: get(row, "model")?,
        status: SessionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt { column: "sessions.status", message: status.clone() })?,
        character: get(row, "character")?,
        message_count: count(row, "message_count")?,
        token_usage: TokenUsage {
            prompt_tokens: count(row, "prompt_tokens")?,
            completion_tokens: count(row, "completion_tokens")?,
            cached_tokens: count(row, "cached_tokens")?,
        },
    })
}

/// One `tool_calls` entry as stored: OpenAI's shape, flattened.
#[derive(Serialize, Deserialize)]
struct StoredToolCall {
    id: String,
    name: String,
    arguments: String,
}

pub(crate) fn tool_calls_to_json(calls: &[ToolCall]) -> Option<String> {
    if calls.is_empty() {
        return None;
    }
    let stored: Vec<StoredToolCall> = calls
        .iter()
        .map(|c| StoredToolCall { id: c.id.clone(), name: c.name.clone(), arguments: c.arguments.clone() })
        .collect();
    serde_json::to_string(&stored).ok()
}

pub(crate) fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    let role: String = get(row, "role")?;
    let tool_calls: Option<String> = get(row, "tool_calls")?;
    let tool_calls = match tool_calls {
        None => Vec::new(),
        Some(json) => serde_json::from_str::<Vec<StoredToolCall>>(&json)
            .map_err(|e| StoreError::Corrupt { column: "messages.tool_calls", message: e.to_string() })?
            .into_iter()
            .map(|c| ToolCall { id: c.id, name: c.name, arguments: c.arguments })
            .collect(),
    };
    let prompt_tokens: Option<i64> = get(row, "prompt_tokens")?;
    let completion_tokens: Option<i64> = get(row, "completion_tokens")?;
    let cached_tokens: Option<i64> = get(row, "cached_tokens")?;
    let usage = match (prompt_tokens, completion_tokens) {
        (Some(p), Some(c)) => Some(TokenUsage {
            prompt_tokens: u64::try_from(p).unwrap_or(0),
            completion_tokens: u64::try_from(c).unwrap_or(0),
            cached_tokens: cached_tokens.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        }),
        _ => None,
    };
    Ok(Message {
        id: get(row, "id")?,
        session_id: SessionId::from_string(get::<String>(row, "session_id")?),
        seq: count(row, "seq")?,
        created_at: get(row, "created_at")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt { column: "messages.role", message: role.clone() })?,
        content: get(row, "content")?,
        tool_calls,
        tool_call_id: get(row, "tool_call_id")?,
        usage,
        finish_reason: get(row, "finish_reason")?,
        metadata: get(row, "metadata")?,
    })
}

pub(crate) fn event_from_row(row: &AnyRow) -> Result<StoredEvent, StoreError> {
    let session_id: Option<String> = get(row, "session_id")?;
    Ok(StoredEvent {
        id: get(row, "id")?,
        created_at: get(row, "created_at")?,
        session_id: session_id.map(SessionId::from_string),
        kind: get(row, "kind")?,
        data: get(row, "data")?,
    })
}
