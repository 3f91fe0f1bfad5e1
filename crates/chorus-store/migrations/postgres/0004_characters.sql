-- Characters (issue 14): the character a session plays, its state (vitals, rolling summary),
-- the history of its vitals, its episodic memories with their embeddings, and named snapshots.
ALTER TABLE sessions ADD COLUMN character TEXT;

CREATE TABLE character_state (
    session_id     TEXT PRIMARY KEY NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    vitals         TEXT NOT NULL,
    summary        TEXT NOT NULL,
    summarized_seq BIGINT NOT NULL,
    turns          BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE vital_changes (
    id         BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_name  TEXT,
    name       TEXT NOT NULL,
    old_value  TEXT,
    new_value  TEXT NOT NULL,
    source     TEXT NOT NULL,
    turn       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX vital_changes_session ON vital_changes (session_id, id);

CREATE TABLE memories (
    id          TEXT PRIMARY KEY NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_name   TEXT,
    content     TEXT NOT NULL,
    importance  BIGINT NOT NULL,
    embedding   BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    accessed_at BIGINT NOT NULL,
    turn        BIGINT NOT NULL,
    merged      TEXT NOT NULL
);
CREATE INDEX memories_session ON memories (session_id, created_at);

CREATE TABLE character_snapshots (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, name)
);
