-- Accounts, sessions, API tokens, jobs, settings and the audit log.
-- Secrets are stored as SHA-256 of high-entropy random tokens (sessions, API tokens) or as
-- argon2id PHC strings (passwords); never in clear.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_login    INTEGER
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    last_used   INTEGER
);

-- One row per job. Files live in jobs/<id>/ (input, result); `state` moves
-- queued -> running -> done | failed | cancelled, and running -> queued when an engine
-- disappeared under the job (attempts counts the tries).
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    state             TEXT NOT NULL,
    title             TEXT NOT NULL,
    options           TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    progress          REAL NOT NULL DEFAULT 0,
    engine_job        TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    error_code        TEXT,
    error_message     TEXT,
    detected_language TEXT,
    duration_secs     REAL,
    input_bytes       INTEGER NOT NULL DEFAULT 0,
    parent            TEXT,
    report            TEXT,
    search_text       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_user ON jobs(user_id, created_at);
CREATE INDEX jobs_state ON jobs(state, created_at);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Who did what and when. Never content, never file names: `detail` holds ids, kinds,
-- sizes and counts only.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '',
    ip      TEXT
);
CREATE INDEX audit_at ON audit(at);
