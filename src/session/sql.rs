//! Sessions, redeemed states and the audit log in SQL: SQLite by default, PostgreSQL to
//! scale out. One implementation over sqlx's `Any` driver with runtime-checked queries
//! (`$n` placeholders work in both dialects); each dialect has its own migrations.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use sqlx::{any::AnyPoolOptions, AnyPool, Row};

use async_trait::async_trait;

use super::backend::{SessionBackend, SessionMeta, Stored};

/// Tables with rows that expire.
#[derive(Clone, Copy)]
enum SweepTable {
    Sessions,
    OneTime,
}

/// The SQL side of the store.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
}

const COLUMNS: &str = "key_hash, id, sub, sid, name, email, tokens, token_expires_at, version, created_at, \
                       last_seen, idle_expires_at, expires_at, user_agent, ip, state";

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Stored> {
    Ok(Stored {
        key_hash: row.try_get("key_hash")?,
        meta: SessionMeta {
            id: row.try_get("id")?,
            sub: row.try_get("sub")?,
            sid: row.try_get("sid")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            last_seen: row.try_get("last_seen")?,
            idle_expires_at: row.try_get("idle_expires_at")?,
            expires_at: row.try_get("expires_at")?,
            user_agent: row.try_get("user_agent")?,
            ip: row.try_get("ip")?,
            state: serde_json::from_str(&row.try_get::<String, _>("state")?).unwrap_or_default(),
        },
        sealed: row.try_get("tokens")?,
        token_expires_at: row.try_get("token_expires_at")?,
    })
}

/// SQLite URLs get their folder created and `mode=rwc` (create the file if missing).
pub(crate) fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" {
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    Ok(if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("{url}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    })
}

impl SqlStore {
    /// Connects and migrates; `sqlite:` and `postgres:` URLs.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite {
            prepare_sqlite_url(url)?
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers proceed during writes; busy_timeout waits out writers.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        // In WAL mode NORMAL syncs at checkpoints, not at every commit: a sign-in
                        // or a last-seen update no longer waits for the disk. A power cut may
                        // lose the last few commits, never the file's consistency.
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .context("cannot open the session database")?;
        let migrated = if sqlite {
            sqlx::migrate!("./migrations/sqlite").run(&pool).await
        } else {
            sqlx::migrate!("./migrations/postgres").run(&pool).await
        };
        migrated.context("cannot migrate the session database")?;
        Ok(Self { pool })
    }

    /// Records a one-time value until `expires_at`; false if it is recorded and not yet
    /// expired (a replay). Expired values are removed by [`SqlStore::sweep`].
    pub async fn consume_once(&self, hash: &str, expires_at: i64, now: i64) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO consumed_states (state_hash, expires_at) VALUES ($1, $2) \
             ON CONFLICT (state_hash) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE consumed_states.expires_at < $3",
        )
        .bind(hash)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .context("consume state")?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether a one-time value is recorded and not yet expired.
    pub async fn is_consumed(&self, hash: &str, now: i64) -> anyhow::Result<bool> {
        let row = sqlx::query("SELECT 1 FROM consumed_states WHERE state_hash = $1 AND expires_at >= $2")
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .context("read consumed state")?;
        Ok(row.is_some())
    }

    /// Deletes up to `batch` rows of `table` whose deadline has passed; how many it deleted.
    /// Small batches keep each statement short, so requests are never blocked for long, and
    /// replicas sweeping at the same time only delete the same rows twice (a no-op).
    async fn sweep_batch(&self, table_key: SweepTable, now: i64, batch: i64) -> anyhow::Result<u64> {
        let sql = match table_key {
            SweepTable::Sessions => {
                "DELETE FROM sessions WHERE key_hash IN (SELECT key_hash FROM sessions \
                 WHERE expires_at < $1 OR idle_expires_at < $1 LIMIT $2)"
            }
            SweepTable::OneTime => {
                "DELETE FROM consumed_states WHERE state_hash IN (SELECT state_hash FROM consumed_states \
                 WHERE expires_at < $1 LIMIT $2)"
            }
        };
        let done = sqlx::query(sql)
            .bind(now)
            .bind(batch)
            .execute(&self.pool)
            .await
            .context("sweep expired rows")?;
        Ok(done.rows_affected())
    }

    /// Removes expired sessions (sealed tokens with them) and spent one-time values, in
    /// batches of `batch` rows and at most `max_batches` statements per table.
    pub async fn sweep(&self, now: i64, batch: i64, max_batches: usize) -> anyhow::Result<(u64, u64)> {
        let mut removed = [0u64; 2];
        for (i, table) in [SweepTable::Sessions, SweepTable::OneTime]
            .into_iter()
            .enumerate()
        {
            for _ in 0..max_batches {
                let n = self.sweep_batch(table, now, batch).await?;
                removed[i] += n;
                if n < batch as u64 {
                    break;
                }
            }
        }
        Ok((removed[0], removed[1]))
    }

    /// Appends to the audit log.
    pub async fn audit(
        &self,
        at: i64,
        event: &str,
        sub: Option<&str>,
        session_id: Option<&str>,
        ip: Option<&str>,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, event, sub, session_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(at)
        .bind(event)
        .bind(sub)
        .bind(session_id)
        .bind(ip)
        .bind(detail)
        .execute(&self.pool)
        .await
        .context("write audit log")?;
        Ok(())
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
}

#[async_trait]
impl SessionBackend for SqlStore {
    /// Whether the database answers.
    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Inserts a session row.
    async fn create(&self, s: &Stored) -> anyhow::Result<()> {
        sqlx::query(&format!(
            "INSERT INTO sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&s.key_hash)
        .bind(&s.meta.id)
        .bind(&s.meta.sub)
        .bind(&s.meta.sid)
        .bind(&s.meta.name)
        .bind(&s.meta.email)
        .bind(&s.sealed)
        .bind(s.token_expires_at)
        .bind(s.meta.version)
        .bind(s.meta.created_at)
        .bind(s.meta.last_seen)
        .bind(s.meta.idle_expires_at)
        .bind(s.meta.expires_at)
        .bind(&s.meta.user_agent)
        .bind(&s.meta.ip)
        .bind(serde_json::to_string(&s.meta.state)?)
        .execute(&self.pool)
        .await
        .context("insert session")?;
        Ok(())
    }

    /// One session by key hash.
    async fn load(&self, key_hash: &str) -> anyhow::Result<Option<Stored>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .context("load session")?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every session of a subject.
    async fn by_sub(&self, sub: &str) -> anyhow::Result<Vec<Stored>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE sub = $1 ORDER BY created_at"
        ))
        .bind(sub)
        .fetch_all(&self.pool)
        .await
        .context("list sessions")?;
        rows.iter().map(from_row).collect()
    }

    /// Key hashes of the sessions with a provider session id.
    async fn by_sid(&self, sid: &str) -> anyhow::Result<Vec<Stored>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE sid = $1"))
            .bind(sid)
            .fetch_all(&self.pool)
            .await
            .context("find sessions by sid")?;
        rows.iter().map(from_row).collect()
    }

    /// Moves `last_seen` and the idle deadline.
    async fn touch(&self, key_hash: &str, now: i64, idle_expires_at: i64, _: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE sessions SET last_seen = $1, idle_expires_at = $2 WHERE key_hash = $3")
            .bind(now)
            .bind(idle_expires_at)
            .bind(key_hash)
            .execute(&self.pool)
            .await
            .context("touch session")?;
        Ok(())
    }

    /// Compare-and-set of the sealed tokens on `version`; releases the refresh lease.
    async fn update_tokens(
        &self,
        key_hash: &str,
        expected_version: i64,
        sealed: &[u8],
        token_expires_at: i64,
        name: Option<&str>,
        email: Option<&str>,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET tokens = $1, token_expires_at = $2, version = version + 1,
                    name = COALESCE($3, name), email = COALESCE($4, email), refresh_lease_until = NULL
             WHERE key_hash = $5 AND version = $6",
        )
        .bind(sealed)
        .bind(token_expires_at)
        .bind(name)
        .bind(email)
        .bind(key_hash)
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .context("update session tokens")?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the refresh lease until `until` unless another holder's lease is still running.
    async fn update_state(&self, key_hash: &str, state: &HashMap<String, String>) -> anyhow::Result<()> {
        sqlx::query("UPDATE sessions SET state = $1 WHERE key_hash = $2")
            .bind(serde_json::to_string(state)?)
            .bind(key_hash)
            .execute(&self.pool)
            .await
            .context("update session state")?;
        Ok(())
    }

    async fn take_refresh_lease(&self, key_hash: &str, now: i64, until: i64) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET refresh_lease_until = $1
             WHERE key_hash = $2 AND (refresh_lease_until IS NULL OR refresh_lease_until < $3)",
        )
        .bind(until)
        .bind(key_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .context("take refresh lease")?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the refresh lease back early (after a failed refresh).
    async fn release_refresh_lease(&self, key_hash: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE sessions SET refresh_lease_until = NULL WHERE key_hash = $1")
            .bind(key_hash)
            .execute(&self.pool)
            .await
            .context("release refresh lease")?;
        Ok(())
    }

    /// Deletes sessions by key hash.
    async fn delete(&self, key_hash: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE key_hash = $1")
            .bind(key_hash)
            .execute(&self.pool)
            .await
            .context("delete session")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn sqlite_runs_in_wal_mode_without_a_sync_per_commit() {
        let dir = std::env::temp_dir().join(format!("taskflow-bff-sql-{}", uuid::Uuid::new_v4()));
        let store = SqlStore::connect(&format!("sqlite://{}/s.db", dir.display()))
            .await
            .expect("connect");
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("journal_mode");
        let sync: (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .expect("synchronous");
        assert_eq!(
            (mode.0.as_str(), sync.0),
            ("wal", 1),
            "WAL with synchronous = NORMAL"
        );
        store.pool.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
