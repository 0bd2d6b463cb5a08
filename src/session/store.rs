//! The session store on sqlx (SQLite), with tokens sealed at rest.
//!
//! Runtime-checked queries (`sqlx::query`) keep the build free of a database and of
//! offline query metadata; each statement is covered by the integration tests.

use std::str::FromStr;

use anyhow::Context;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
    Row, SqlitePool,
};

use super::{crypto::Keys, SessionRecord, Tokens};

/// Sessions, redeemed login states and the audit log.
#[derive(Clone)]
pub struct SessionStore {
    pool: SqlitePool,
    keys: Keys,
}

/// An event written to the audit log.
pub struct AuditEvent<'a> {
    /// Short event name, e.g. `sign_in`.
    pub event: &'a str,
    /// Subject concerned, if known.
    pub sub: Option<&'a str>,
    /// Public session id concerned, if any.
    pub session_id: Option<&'a str>,
    /// Client address.
    pub ip: Option<&'a str>,
    /// Free text without secrets.
    pub detail: Option<&'a str>,
}

impl SessionStore {
    /// Connects (creating the SQLite file and its folder if needed) and runs migrations.
    pub async fn connect(url: &str, keys: Keys) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| "DATABASE_URL is not a valid sqlite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        if let Some(dir) = opts.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .context("cannot open the session database")?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("cannot migrate the session database")?;
        Ok(Self { pool, keys })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Stores a new session under the hash of its cookie key.
    pub async fn create(&self, key_hash: &str, s: &SessionRecord) -> anyhow::Result<()> {
        let sealed = self.seal(key_hash, &s.tokens)?;
        sqlx::query(
            "INSERT INTO sessions (key_hash, id, sub, sid, name, email, tokens, token_expires_at,
               version, created_at, last_seen, idle_expires_at, expires_at, user_agent, ip)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(key_hash)
        .bind(&s.id)
        .bind(&s.sub)
        .bind(&s.sid)
        .bind(&s.name)
        .bind(&s.email)
        .bind(sealed)
        .bind(s.tokens.expires_at)
        .bind(s.version)
        .bind(s.created_at)
        .bind(s.last_seen)
        .bind(s.idle_expires_at)
        .bind(s.expires_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&self.pool)
        .await
        .context("insert session")?;
        Ok(())
    }

    /// Loads a session; a row whose tokens do not decrypt counts as absent.
    pub async fn load(&self, key_hash: &str) -> anyhow::Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT id, sub, sid, name, email, tokens, version, created_at, last_seen,
                    idle_expires_at, expires_at, user_agent, ip
             FROM sessions WHERE key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .context("load session")?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get("tokens")?;
        let Some(tokens) = self.open(key_hash, &sealed) else {
            tracing::warn!("session row does not decrypt (SESSION_SECRET changed?); ignoring it");
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            id: row.try_get("id")?,
            sub: row.try_get("sub")?,
            sid: row.try_get("sid")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            tokens,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            last_seen: row.try_get("last_seen")?,
            idle_expires_at: row.try_get("idle_expires_at")?,
            expires_at: row.try_get("expires_at")?,
            user_agent: row.try_get("user_agent")?,
            ip: row.try_get("ip")?,
        }))
    }

    /// Records activity: moves `last_seen` and the idle deadline.
    pub async fn touch(&self, key_hash: &str, now: i64, idle_expires_at: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE sessions SET last_seen = $1, idle_expires_at = $2 WHERE key_hash = $3")
            .bind(now)
            .bind(idle_expires_at)
            .bind(key_hash)
            .execute(&self.pool)
            .await
            .context("touch session")?;
        Ok(())
    }

    /// Replaces the tokens if the row still has `expected_version`; false when another
    /// request (or replica) updated them first.
    pub async fn update_tokens(
        &self,
        key_hash: &str,
        expected_version: i64,
        tokens: &Tokens,
        name: Option<&str>,
        email: Option<&str>,
    ) -> anyhow::Result<bool> {
        let sealed = self.seal(key_hash, tokens)?;
        let done = sqlx::query(
            "UPDATE sessions SET tokens = $1, token_expires_at = $2, version = version + 1,
                    name = COALESCE($3, name), email = COALESCE($4, email)
             WHERE key_hash = $5 AND version = $6",
        )
        .bind(sealed)
        .bind(tokens.expires_at)
        .bind(name)
        .bind(email)
        .bind(key_hash)
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .context("update session tokens")?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes one session by its cookie key hash.
    pub async fn delete(&self, key_hash: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE key_hash = $1")
            .bind(key_hash)
            .execute(&self.pool)
            .await
            .context("delete session")?;
        Ok(())
    }

    /// Marks a login `state` as redeemed; false if it already was (a replay).
    pub async fn consume_state(&self, state_hash: &str, expires_at: i64, now: i64) -> anyhow::Result<bool> {
        sqlx::query("DELETE FROM consumed_states WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .context("prune consumed states")?;
        let done = sqlx::query(
            "INSERT INTO consumed_states (state_hash, expires_at) VALUES ($1, $2)
             ON CONFLICT (state_hash) DO NOTHING",
        )
        .bind(state_hash)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .context("consume state")?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends to the audit log; failures are logged, never fatal to the request.
    pub async fn audit(&self, e: AuditEvent<'_>) {
        let res = sqlx::query(
            "INSERT INTO audit_log (at, event, sub, session_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(super::now())
        .bind(e.event)
        .bind(e.sub)
        .bind(e.session_id)
        .bind(e.ip)
        .bind(e.detail)
        .execute(&self.pool)
        .await;
        if let Err(err) = res {
            tracing::error!(error = %err, event = e.event, "cannot write audit log");
        }
    }

    /// The most recent audit events, newest first: (event, sub, session id).
    pub async fn recent_audit(
        &self,
        limit: i64,
    ) -> anyhow::Result<Vec<(String, Option<String>, Option<String>)>> {
        let rows = sqlx::query("SELECT event, sub, session_id FROM audit_log ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("read audit log")?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    fn seal(&self, key_hash: &str, tokens: &Tokens) -> anyhow::Result<Vec<u8>> {
        let plain = serde_json::to_vec(tokens).context("serialize tokens")?;
        Ok(self.keys.seal(&plain, key_hash.as_bytes()))
    }

    fn open(&self, key_hash: &str, sealed: &[u8]) -> Option<Tokens> {
        let plain = self.keys.open(sealed, key_hash.as_bytes())?;
        serde_json::from_slice(&plain).ok()
    }
}
