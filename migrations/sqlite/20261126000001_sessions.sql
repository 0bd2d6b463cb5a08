-- Server-side sessions. The cookie holds a random key; only its SHA-256 is stored,
-- so a copy of this table does not let anyone sign in. Tokens are AES-GCM sealed.
CREATE TABLE sessions (
    key_hash TEXT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    sub TEXT NOT NULL,
    sid TEXT,
    name TEXT,
    email TEXT,
    tokens BLOB NOT NULL,
    token_expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX sessions_sub ON sessions (sub);
CREATE INDEX sessions_sid ON sessions (sid);

-- Login `state` values already redeemed, so a callback URL cannot be replayed.
CREATE TABLE consumed_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Who signed in or out, when and from where. Never tokens.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    sub TEXT,
    session_id TEXT,
    ip TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
