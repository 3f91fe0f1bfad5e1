//! [`SqlStore`]: the engine's [`Store`] on sqlx, one implementation over
//! SQLite (the default: a file in the platform data dir) and PostgreSQL (for
//! several nodes sharing one database), through sqlx's `Any` driver.
//!
//! Both databases get the same queries (`$1` placeholders work on both) and
//! their own migration directory (`migrations/sqlite`, `migrations/postgres`),
//! applied on [`SqlStore::open`]. Times are Unix milliseconds, JSON is text.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so a committed session
//! or message survives a power cut; every transaction starts with a write so
//! that concurrent writers queue on `busy_timeout` instead of failing with
//! `SQLITE_BUSY`.
//!
//! Events are the exception: one is appended per streamed chunk, and waiting
//! for the disk on each (an fsync can take seconds while other programs
//! write) would stall the stream. They commit without waiting (SQLite:
//! their own connection with `synchronous=NORMAL`; PostgreSQL:
//! `synchronous_commit = off` for that transaction). Both databases write one
//! log in commit order, so the next durable commit (every message is one)
//! makes all earlier events durable too: a crash can lose only the events
//! after the last stored message, never an event that a stored message
//! follows.

#[macro_use]
mod rows;
mod characters;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_engine::store::{
    CharacterState, MemoryRecord, Message, NewEvent, NewMessage, NewSession, Session, SessionId, SessionStatus,
    SessionUpdate, Snapshot, Store, StoreError, StoredEvent, VitalChange,
};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::rows::{db_err, event_from_row, message_from_row, session_from_row};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:PATH` (`sqlite://PATH`, `sqlite::memory:`).
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl DatabaseKind {
    /// The kind of a database URL, or `None` for a scheme chorus does not support.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// A sqlx database URL: `sqlite:///path/to/chorus.db` or `postgres://user@host/db`.
    /// A SQLite file is created when missing (its directory must exist).
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a writer waits for SQLite's write lock, or anyone for a pool connection.
    pub busy_timeout: Duration,
}

impl StoreConfig {
    /// A config for a database URL with default pool settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), max_connections: 8, busy_timeout: Duration::from_secs(10) }
    }

    /// The URL of a SQLite file at `path`, created on first open.
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self::new(format!("sqlite://{}?mode=rwc", path.display()))
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL's scheme is neither `sqlite:` nor `postgres://`.
    #[error("unsupported database URL `{0}`: use sqlite:///PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// The [`Store`] on SQLite or PostgreSQL. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// SQLite: one connection with `synchronous=NORMAL` for event appends
    /// (see the module docs); PostgreSQL: the main pool.
    events: AnyPool,
    kind: DatabaseKind,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl SqlStore {
    /// Connect, set SQLite's durability pragmas, and apply pending migrations.
    ///
    /// # Errors
    /// [`OpenError`]: an unsupported URL, an unreachable database, a failed migration.
    pub async fn open(config: &StoreConfig) -> Result<Self, OpenError> {
        let kind = DatabaseKind::of_url(&config.url).ok_or_else(|| OpenError::UnsupportedUrl(config.url.clone()))?;
        install_default_drivers();
        let pool = connect(config, kind, config.max_connections.max(1), "FULL").await?;
        let migrator = match kind {
            DatabaseKind::Sqlite => &SQLITE_MIGRATIONS,
            DatabaseKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(OpenError::Migrate)?;
        let events = match kind {
            DatabaseKind::Sqlite => connect(config, kind, 1, "NORMAL").await?,
            DatabaseKind::Postgres => pool.clone(),
        };
        tracing::debug!(kind = ?kind, "store open");
        Ok(Self { pool, events, kind })
    }

    /// Which database this is.
    pub fn database_kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Close the pools, waiting for connections in use.
    pub async fn close(&self) {
        self.events.close().await;
        self.pool.close().await;
    }
}

/// A pool whose SQLite connections run in WAL mode with `synchronous` as given.
async fn connect(
    config: &StoreConfig,
    kind: DatabaseKind,
    max_connections: u32,
    synchronous: &'static str,
) -> Result<AnyPool, OpenError> {
    let busy_ms = config.busy_timeout.as_millis();
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(config.busy_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if kind == DatabaseKind::Sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA synchronous = {synchronous}"))).await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {busy_ms}"))).await?;
                }
                Ok(())
            })
        })
        .connect(&connect_url(&config.url, kind))
        .await
        .map_err(OpenError::Connect)
}

/// The URL to connect with: a SQLite URL that does not choose a `mode` gets `mode=rwc`, so a
/// missing file is created as [`StoreConfig::url`] promises (sqlx's default mode opens
/// existing files only).
fn connect_url(url: &str, kind: DatabaseKind) -> String {
    if kind != DatabaseKind::Sqlite || url.contains("mode=") || url.contains(":memory:") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn kind(&self) -> &'static str {
        match self.kind {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
        }
    }

    async fn create_session(&self, new: NewSession) -> Result<Session, StoreError> {
        let id = new.id.clone().unwrap_or_default();
        let now = now_ms();
        let row = sqlx::query(concat!(
            "INSERT INTO sessions (id, created_at, updated_at, title, work_dir, agent, model, status, character) \
             VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
            session_columns!()
        ))
        .bind(id.as_str())
        .bind(now)
        .bind(&new.title)
        .bind(&new.work_dir)
        .bind(&new.agent)
        .bind(new.model.as_deref())
        .bind(SessionStatus::Idle.as_str())
        .bind(new.character.as_deref())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(ref d) if d.is_unique_violation() => StoreError::SessionExists(id.clone()),
            e => db_err(e),
        })?;
        session_from_row(&row)
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions ORDER BY updated_at DESC, id DESC"))
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn update_session(&self, id: &SessionId, update: SessionUpdate) -> Result<Session, StoreError> {
        let (sql, value) = match update {
            SessionUpdate::Status(status) => (
                concat!(
                    "UPDATE sessions SET status = $1, updated_at = $2 WHERE id = $3 RETURNING ",
                    session_columns!()
                ),
                Some(status.as_str().to_owned()),
            ),
            SessionUpdate::Title(title) => (
                concat!("UPDATE sessions SET title = $1, updated_at = $2 WHERE id = $3 RETURNING ", session_columns!()),
                Some(title),
            ),
            SessionUpdate::Model(model) => (
                concat!("UPDATE sessions SET model = $1, updated_at = $2 WHERE id = $3 RETURNING ", session_columns!()),
                model,
            ),
        };
        let row = sqlx::query(sql)
            .bind(value)
            .bind(now_ms())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            Some(row) => session_from_row(&row),
            None => Err(StoreError::SessionNotFound(id.clone())),
        }
    }

    async fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Messages explicitly, not through ON DELETE CASCADE, so this holds
        // whatever a connection's foreign_keys pragma says.
        sqlx::query("DELETE FROM messages WHERE session_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        characters::delete_all(&mut tx, id).await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn append_message(&self, id: &SessionId, message: NewMessage) -> Result<Message, StoreError> {
        let now = now_ms();
        let usage = message.usage.unwrap_or_default();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The write that takes the lock comes first (see the module docs).
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET next_seq = next_seq + 1, message_count = message_count + 1, \
             prompt_tokens = prompt_tokens + $1, completion_tokens = completion_tokens + $2, \
             cached_tokens = cached_tokens + $3, updated_at = $4 \
             WHERE id = $5 RETURNING next_seq - 1",
        )
        .bind(to_i64(usage.prompt_tokens))
        .bind(to_i64(usage.completion_tokens))
        .bind(to_i64(usage.cached_tokens))
        .bind(now)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(seq) = seq else {
            return Err(StoreError::SessionNotFound(id.clone()));
        };
        let tool_calls = rows::tool_calls_to_json(&message.tool_calls);
        let row = sqlx::query(concat!(
            "INSERT INTO messages (id, session_id, seq, created_at, role, content, tool_calls, tool_call_id, \
             prompt_tokens, completion_tokens, cached_tokens, finish_reason, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ",
            message_columns!()
        ))
        .bind(format!("msg_{}", uuid::Uuid::now_v7().simple()))
        .bind(id.as_str())
        .bind(seq)
        .bind(now)
        .bind(message.role.as_str())
        .bind(&message.content)
        .bind(tool_calls)
        .bind(message.tool_call_id.as_deref())
        .bind(message.usage.map(|u| to_i64(u.prompt_tokens)))
        .bind(message.usage.map(|u| to_i64(u.completion_tokens)))
        .bind(message.usage.map(|u| to_i64(u.cached_tokens)))
        .bind(message.finish_reason.as_deref())
        .bind(message.metadata.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let stored = message_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn messages(&self, id: &SessionId) -> Result<Vec<Message>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE session_id = $1 ORDER BY seq"))
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn clear_messages(&self, id: &SessionId) -> Result<Session, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(concat!(
            "UPDATE sessions SET message_count = 0, updated_at = $1 WHERE id = $2 RETURNING ",
            session_columns!()
        ))
        .bind(now_ms())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Err(StoreError::SessionNotFound(id.clone()));
        };
        sqlx::query("DELETE FROM messages WHERE session_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let session = session_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(session)
    }

    async fn append_events(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut tx = self.events.begin().await.map_err(db_err)?;
        if self.kind == DatabaseKind::Postgres {
            // Commit without waiting for the WAL flush (see the module docs).
            sqlx::query("SET LOCAL synchronous_commit TO OFF").execute(&mut *tx).await.map_err(db_err)?;
        }
        let mut stored = Vec::with_capacity(events.len());
        for event in events {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO events (created_at, session_id, kind, data) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(now)
            .bind(event.session_id.as_ref().map(SessionId::as_str))
            .bind(&event.kind)
            .bind(&event.data)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            stored.push(StoredEvent {
                id,
                created_at: now,
                session_id: event.session_id,
                kind: event.kind,
                data: event.data,
            });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.pool).await.map_err(db_err)
    }

    async fn events_after(
        &self,
        session: Option<&SessionId>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = match session {
            Some(session) => {
                sqlx::query(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(session.as_str())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(concat!("SELECT ", event_columns!(), " FROM events WHERE id > $1 ORDER BY id LIMIT $2"))
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn character_state(&self, id: &SessionId) -> Result<Option<CharacterState>, StoreError> {
        characters::state(&self.pool, id).await
    }

    async fn put_character_state(
        &self,
        id: &SessionId,
        state: &CharacterState,
        changes: &[VitalChange],
    ) -> Result<(), StoreError> {
        characters::put_state(&self.pool, id, state, changes, now_ms()).await
    }

    async fn vital_changes(&self, id: &SessionId, limit: u32) -> Result<Vec<VitalChange>, StoreError> {
        characters::vital_changes(&self.pool, id, limit).await
    }

    async fn put_memory(&self, id: &SessionId, memory: &MemoryRecord) -> Result<(), StoreError> {
        characters::put_memory(&self.pool, id, memory, now_ms()).await
    }

    async fn memories(&self, id: &SessionId) -> Result<Vec<MemoryRecord>, StoreError> {
        characters::memories(&self.pool, id).await
    }

    async fn touch_memories(&self, id: &SessionId, memory_ids: &[String], at: i64) -> Result<(), StoreError> {
        characters::touch_memories(&self.pool, id, memory_ids, at).await
    }

    async fn delete_memory(&self, id: &SessionId, memory_id: &str) -> Result<bool, StoreError> {
        characters::delete_memory(&self.pool, id, memory_id).await
    }

    async fn put_snapshot(&self, id: &SessionId, snapshot: &Snapshot) -> Result<(), StoreError> {
        characters::put_snapshot(&self.pool, id, snapshot, now_ms()).await
    }

    async fn snapshot(&self, id: &SessionId, name: &str) -> Result<Option<Snapshot>, StoreError> {
        characters::snapshot(&self.pool, id, name).await
    }

    async fn snapshots(&self, id: &SessionId) -> Result<Vec<Snapshot>, StoreError> {
        characters::snapshots(&self.pool, id).await
    }

    async fn restore_character(
        &self,
        id: &SessionId,
        state: &CharacterState,
        memories: &[MemoryRecord],
        messages: &[Message],
        changes: &[VitalChange],
    ) -> Result<(), StoreError> {
        characters::restore(&self.pool, id, state, memories, messages, changes, now_ms()).await
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_missing_files() {
        assert_eq!(connect_url("sqlite:///tmp/a.db", DatabaseKind::Sqlite), "sqlite:///tmp/a.db?mode=rwc");
        assert_eq!(
            connect_url("sqlite:///a.db?cache=shared", DatabaseKind::Sqlite),
            "sqlite:///a.db?cache=shared&mode=rwc"
        );
        assert_eq!(connect_url("sqlite:///a.db?mode=ro", DatabaseKind::Sqlite), "sqlite:///a.db?mode=ro");
        assert_eq!(connect_url("postgres://u@h/db", DatabaseKind::Postgres), "postgres://u@h/db");
    }
}
