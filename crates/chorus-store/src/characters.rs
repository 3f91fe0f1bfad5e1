//! The character tables (migration `0004_characters`): a character session's state, its
//! vitals' history, its memories (embeddings as little-endian `f32` bytes) and its snapshots.
//! [`crate::SqlStore`]'s `Store` methods for characters call these.

use chorus_engine::store::{CharacterState, MemoryRecord, Message, SessionId, Snapshot, StoreError, VitalChange};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Transaction};

use crate::rows::{count, db_err, get, tool_calls_to_json};
use crate::to_i64;

/// The columns [`memory_from_row`] reads.
macro_rules! memory_columns {
    () => {
        "id, user_name, content, importance, embedding, created_at, accessed_at, turn, merged"
    };
}

/// Fail with [`StoreError::SessionNotFound`] unless the session exists (inside `tx`, whose first
/// statement this is: it takes the write lock on SQLite).
async fn lock_session(tx: &mut Transaction<'_, Any>, id: &SessionId, now: i64) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE sessions SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::SessionNotFound(id.clone()));
    }
    Ok(())
}

pub(crate) async fn state(pool: &AnyPool, id: &SessionId) -> Result<Option<CharacterState>, StoreError> {
    let row = sqlx::query(
        "SELECT vitals, summary, summarized_seq, turns, updated_at FROM character_state WHERE session_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    row.map(|row| {
        Ok(CharacterState {
            vitals: get(&row, "vitals")?,
            summary: get(&row, "summary")?,
            summarized_seq: count(&row, "summarized_seq")?,
            turns: count(&row, "turns")?,
            updated_at: get(&row, "updated_at")?,
        })
    })
    .transpose()
}

async fn write_state(tx: &mut Transaction<'_, Any>, id: &SessionId, state: &CharacterState) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO character_state (session_id, vitals, summary, summarized_seq, turns, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO UPDATE SET vitals = excluded.vitals, \
         summary = excluded.summary, summarized_seq = excluded.summarized_seq, turns = excluded.turns, \
         updated_at = excluded.updated_at",
    )
    .bind(id.as_str())
    .bind(&state.vitals)
    .bind(&state.summary)
    .bind(to_i64(state.summarized_seq))
    .bind(to_i64(state.turns))
    .bind(state.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn write_changes(
    tx: &mut Transaction<'_, Any>,
    id: &SessionId,
    changes: &[VitalChange],
) -> Result<(), StoreError> {
    for c in changes {
        sqlx::query(
            "INSERT INTO vital_changes (session_id, user_name, name, old_value, new_value, source, turn, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(c.user.as_deref())
        .bind(&c.name)
        .bind(c.old_value.as_deref())
        .bind(&c.new_value)
        .bind(&c.source)
        .bind(to_i64(c.turn))
        .bind(c.created_at)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

pub(crate) async fn put_state(
    pool: &AnyPool,
    id: &SessionId,
    state: &CharacterState,
    changes: &[VitalChange],
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    lock_session(&mut tx, id, now).await?;
    write_state(&mut tx, id, state).await?;
    write_changes(&mut tx, id, changes).await?;
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn vital_changes(pool: &AnyPool, id: &SessionId, limit: u32) -> Result<Vec<VitalChange>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, user_name, name, old_value, new_value, source, turn, created_at FROM vital_changes \
         WHERE session_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(id.as_str())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            Ok(VitalChange {
                id: get(row, "id")?,
                user: get(row, "user_name")?,
                name: get(row, "name")?,
                old_value: get(row, "old_value")?,
                new_value: get(row, "new_value")?,
                source: get(row, "source")?,
                turn: count(row, "turn")?,
                created_at: get(row, "created_at")?,
            })
        })
        .collect()
}

fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn memory_from_row(row: &AnyRow) -> Result<MemoryRecord, StoreError> {
    let bytes: Vec<u8> = get(row, "embedding")?;
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt { column: "memories.embedding", message: format!("{} bytes", bytes.len()) });
    }
    let embedding = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let merged: String = get(row, "merged")?;
    let merged = serde_json::from_str(&merged)
        .map_err(|e| StoreError::Corrupt { column: "memories.merged", message: e.to_string() })?;
    let importance = count(row, "importance")?;
    Ok(MemoryRecord {
        id: get(row, "id")?,
        user: get(row, "user_name")?,
        content: get(row, "content")?,
        importance: u8::try_from(importance.clamp(1, 10)).unwrap_or(1),
        embedding,
        created_at: get(row, "created_at")?,
        accessed_at: get(row, "accessed_at")?,
        turn: count(row, "turn")?,
        merged,
    })
}

async fn write_memory(tx: &mut Transaction<'_, Any>, id: &SessionId, m: &MemoryRecord) -> Result<(), StoreError> {
    let merged = serde_json::to_string(&m.merged).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO memories (id, session_id, user_name, content, importance, embedding, created_at, accessed_at, \
         turn, merged) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
         user_name = excluded.user_name, content = excluded.content, importance = excluded.importance, \
         embedding = excluded.embedding, accessed_at = excluded.accessed_at, merged = excluded.merged",
    )
    .bind(&m.id)
    .bind(id.as_str())
    .bind(m.user.as_deref())
    .bind(&m.content)
    .bind(i64::from(m.importance))
    .bind(embedding_bytes(&m.embedding))
    .bind(m.created_at)
    .bind(m.accessed_at)
    .bind(to_i64(m.turn))
    .bind(merged)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn put_memory(pool: &AnyPool, id: &SessionId, m: &MemoryRecord, now: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    lock_session(&mut tx, id, now).await?;
    write_memory(&mut tx, id, m).await?;
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn memories(pool: &AnyPool, id: &SessionId) -> Result<Vec<MemoryRecord>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        memory_columns!(),
        " FROM memories WHERE session_id = $1 ORDER BY created_at, id"
    ))
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    rows.iter().map(memory_from_row).collect()
}

pub(crate) async fn touch_memories(pool: &AnyPool, id: &SessionId, ids: &[String], at: i64) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(db_err)?;
    for memory in ids {
        sqlx::query("UPDATE memories SET accessed_at = $1 WHERE session_id = $2 AND id = $3")
            .bind(at)
            .bind(id.as_str())
            .bind(memory)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn delete_memory(pool: &AnyPool, id: &SessionId, memory: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM memories WHERE session_id = $1 AND id = $2")
        .bind(id.as_str())
        .bind(memory)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn put_snapshot(pool: &AnyPool, id: &SessionId, s: &Snapshot, now: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    lock_session(&mut tx, id, now).await?;
    sqlx::query(
        "INSERT INTO character_snapshots (session_id, name, data, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (session_id, name) DO UPDATE SET data = excluded.data, created_at = excluded.created_at",
    )
    .bind(id.as_str())
    .bind(&s.name)
    .bind(&s.data)
    .bind(s.created_at)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn snapshot(pool: &AnyPool, id: &SessionId, name: &str) -> Result<Option<Snapshot>, StoreError> {
    let row = sqlx::query("SELECT name, data, created_at FROM character_snapshots WHERE session_id = $1 AND name = $2")
        .bind(id.as_str())
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.map(|row| {
        Ok(Snapshot { name: get(&row, "name")?, data: get(&row, "data")?, created_at: get(&row, "created_at")? })
    })
    .transpose()
}

pub(crate) async fn snapshots(pool: &AnyPool, id: &SessionId) -> Result<Vec<Snapshot>, StoreError> {
    let rows =
        sqlx::query("SELECT name, created_at FROM character_snapshots WHERE session_id = $1 ORDER BY created_at, name")
            .bind(id.as_str())
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
    rows.iter()
        .map(|row| Ok(Snapshot { name: get(row, "name")?, data: String::new(), created_at: get(row, "created_at")? }))
        .collect()
}

/// The rows a character session owns besides its snapshots, deleted with the session.
pub(crate) async fn delete_all(tx: &mut Transaction<'_, Any>, id: &SessionId) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM character_state WHERE session_id = $1",
        "DELETE FROM vital_changes WHERE session_id = $1",
        "DELETE FROM memories WHERE session_id = $1",
        "DELETE FROM character_snapshots WHERE session_id = $1",
    ] {
        sqlx::query(sql).bind(id.as_str()).execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

pub(crate) async fn restore(
    pool: &AnyPool,
    id: &SessionId,
    state: &CharacterState,
    memories: &[MemoryRecord],
    messages: &[Message],
    changes: &[VitalChange],
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let next_seq = messages.iter().map(|m| m.seq).max().unwrap_or(0) + 1;
    let done = sqlx::query("UPDATE sessions SET message_count = $1, next_seq = $2, updated_at = $3 WHERE id = $4")
        .bind(to_i64(messages.len() as u64))
        .bind(to_i64(next_seq))
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::SessionNotFound(id.clone()));
    }
    for sql in ["DELETE FROM messages WHERE session_id = $1", "DELETE FROM memories WHERE session_id = $1"] {
        sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await.map_err(db_err)?;
    }
    for m in messages {
        sqlx::query(
            "INSERT INTO messages (id, session_id, seq, created_at, role, content, tool_calls, tool_call_id, \
             prompt_tokens, completion_tokens, cached_tokens, finish_reason, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&m.id)
        .bind(id.as_str())
        .bind(to_i64(m.seq))
        .bind(m.created_at)
        .bind(m.role.as_str())
        .bind(&m.content)
        .bind(tool_calls_to_json(&m.tool_calls))
        .bind(m.tool_call_id.as_deref())
        .bind(m.usage.map(|u| to_i64(u.prompt_tokens)))
        .bind(m.usage.map(|u| to_i64(u.completion_tokens)))
        .bind(m.usage.map(|u| to_i64(u.cached_tokens)))
        .bind(m.finish_reason.as_deref())
        .bind(m.metadata.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    for m in memories {
        write_memory(&mut tx, id, m).await?;
    }
    write_state(&mut tx, id, state).await?;
    write_changes(&mut tx, id, changes).await?;
    tx.commit().await.map_err(db_err)
}
