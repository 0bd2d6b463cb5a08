-- Server-side sessions. The cookie holds a random key; only its SHA-256 is stored,
-- so a copy of this table does not let anyone sign in. Tokens are AES-GCM sealed.
CREATE TABLE sessions (
    key_hash TEXT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    sub TEXT NOT NULL,
    sid TEXT,
    name TEXT,
    email TEXT,
    tokens BYTEA NOT NULL,
    token_expires_at BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX sessions_sub ON sessions (sub);
CREATE INDEX sessions_sid ON sessions (sid);

-- Login `state` values (and logout-token ids) already redeemed.
CREATE TABLE consumed_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Who signed in or out, when and from where. Never tokens.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    sub TEXT,
    session_id TEXT,
    ip TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
