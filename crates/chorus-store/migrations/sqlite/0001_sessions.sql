-- Sessions, their messages, and the event log (SQLite).
-- Times are Unix milliseconds; JSON values are stored as text.
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    title             TEXT NOT NULL,
    work_dir          TEXT NOT NULL,
    agent             TEXT NOT NULL,
    model             TEXT,
    status            TEXT NOT NULL,
    message_count     BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    next_seq          BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX sessions_updated_at ON sessions (updated_at);

CREATE TABLE messages (
    id                TEXT PRIMARY KEY NOT NULL,
    session_id        TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    role              TEXT NOT NULL,
    content           TEXT NOT NULL,
    tool_calls        TEXT,
    tool_call_id      TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    finish_reason     TEXT,
    UNIQUE (session_id, seq)
);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    session_id TEXT,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX events_session ON events (session_id, id);
