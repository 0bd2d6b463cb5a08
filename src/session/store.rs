//! The session store: sessions in SQL (SQLite or PostgreSQL) or Redis, with the audit log
//! and redeemed one-time values always in SQL. Tokens are sealed here, before any backend
//! sees them.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
};

use super::{
    backend::{SessionBackend, Stored},
    cache::{self, SessionCache},
    crypto::Keys,
    redis::RedisSessions,
    sql::SqlStore,
    SessionRecord, Tokens,
};

/// Where sessions live: SQL, or Redis with its change channel for the caches.
enum Sessions {
    Sql,
    Redis(RedisSessions),
}

/// Sessions, redeemed one-time values and the audit log.
#[derive(Clone)]
pub struct SessionStore {
    sql: SqlStore,
    sessions: Arc<dyn SessionBackend>,
    keys: Keys,
    cache: Arc<SessionCache>,
    loading: Arc<InFlight>,
    counts: Arc<LoadCounts>,
    staged: Arc<std::sync::Mutex<HashMap<String, (std::time::Instant, SessionRecord)>>>,
    /// Sessions whose touch is being written by this process.
    touching: Arc<TouchSet>,
}

/// Key hashes of the sessions whose touch is in progress.
type TouchSet = std::sync::Mutex<std::collections::HashSet<String>>;

/// Marks a session's touch as in progress until dropped (written, failed or cancelled).
struct Touching<'a>(&'a TouchSet, &'a str);

impl<'a> Touching<'a> {
    /// `None` when a touch of that session is already in progress.
    fn begin(set: &'a TouchSet, key_hash: &'a str) -> Option<Self> {
        let fresh = set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_hash.to_owned());
        fresh.then_some(Self(set, key_hash))
    }
}

impl Drop for Touching<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(self.1);
    }
}

/// How session lookups were answered.
#[derive(Default)]
struct LoadCounts {
    hits: AtomicU64,
    reads: AtomicU64,
}

/// Store loads in progress by key hash; concurrent misses share one.
type InFlight = std::sync::Mutex<
    std::collections::HashMap<String, Arc<tokio::sync::OnceCell<Option<Arc<SessionRecord>>>>>,
>;

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

/// Revoked tokens share the one-time table; the prefix keeps them apart from states.
fn revoked_token_hash(token: &str) -> String {
    crate::ids::sha256_hex(&format!("revoked-token:{token}"))
}

impl SessionStore {
    /// Connects the SQL database (migrating it) and, with `redis = Some((url, prefix))`, Redis;
    /// `cache_ttl` > 0 keeps loaded sessions in memory that long, and starts following the
    /// store's change notifications (see [`super::cache`]).
    pub async fn connect(
        database_url: &str,
        redis: Option<(&str, &str)>,
        keys: Keys,
        cache_ttl: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let sql = SqlStore::connect(database_url).await?;
        let sessions = match redis {
            Some((url, prefix)) => Sessions::Redis(RedisSessions::connect(url, prefix).await?),
            None => Sessions::Sql,
        };
        let notified = match &sessions {
            Sessions::Redis(_) => true,
            Sessions::Sql => database_url.starts_with("postgres"),
        };
        let cache = Arc::new(SessionCache::new(cache_ttl, !notified));
        if !cache_ttl.is_zero() {
            match &sessions {
                Sessions::Redis(r) => {
                    cache::follow(&cache, cache::Source::Redis(r.client(), r.changes_channel()));
                }
                Sessions::Sql if notified => {
                    cache::follow(&cache, cache::Source::Postgres(database_url.to_owned()));
                }
                Sessions::Sql => {}
            }
        }
        let sessions: Arc<dyn SessionBackend> = match sessions {
            Sessions::Sql => Arc::new(sql.clone()),
            Sessions::Redis(r) => Arc::new(r),
        };
        Ok(Self {
            sql,
            sessions,
            keys,
            cache,
            loading: Arc::default(),
            counts: Arc::default(),
            staged: Arc::default(),
            touching: Arc::default(),
        })
    }

    /// Like [`SessionStore::load`], served from the in-process cache when fresh enough.
    /// Concurrent misses for one session wait for a single load (a page opening many
    /// streams at once would otherwise send them all to the store).
    pub async fn load_cached(&self, key_hash: &str) -> anyhow::Result<Option<Arc<SessionRecord>>> {
        if let Ok(hit) = self.cache.get(key_hash) {
            self.counts.hits.fetch_add(1, Relaxed);
            return Ok(Some(hit));
        }
        if !self.cache.is_serving() {
            return Ok(self.load(key_hash).await?.map(Arc::new));
        }
        // Waiters are all woken by the one load's result (a lock would hand over one by one).
        let cell = self
            .loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key_hash.to_owned())
            .or_default()
            .clone();
        let loaded = cell
            .get_or_try_init(|| async {
                let epoch = match self.cache.get(key_hash) {
                    Ok(r) => return Ok(Some(r)),
                    Err(epoch) => epoch,
                };
                let r = self.load(key_hash).await?.map(Arc::new);
                if let Some(r) = &r {
                    self.cache.put(key_hash, r.clone(), epoch);
                }
                Ok::<_, anyhow::Error>(r)
            })
            .await
            .cloned();
        let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if loading.get(key_hash).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            loading.remove(key_hash);
        }
        loaded
    }

    /// Session lookups answered from the cache, and session reads from the store, so far.
    pub fn load_counts(&self) -> (u64, u64) {
        (self.counts.hits.load(Relaxed), self.counts.reads.load(Relaxed))
    }

    /// Whether every backend answers (SQL twice when it also keeps the sessions: cheap).
    pub async fn ping(&self) -> bool {
        self.sql.ping().await && self.sessions.ping().await
    }

    fn seal(&self, key_hash: &str, tokens: &Tokens) -> anyhow::Result<Vec<u8>> {
        let plain = serde_json::to_vec(tokens)?;
        Ok(self.keys.seal(&plain, key_hash.as_bytes()))
    }

    fn open(&self, s: Stored) -> Option<(String, SessionRecord)> {
        let plain = self.keys.open(&s.sealed, s.key_hash.as_bytes());
        let Some(tokens) = plain.and_then(|p| serde_json::from_slice::<Tokens>(&p).ok()) else {
            tracing::warn!("a session does not decrypt (SESSION_SECRET changed?); ignoring it");
            return None;
        };
        Some((s.key_hash, SessionRecord::new(s.meta, tokens)))
    }

    /// Stores a new session under the hash of its cookie key.
    pub async fn create(&self, key_hash: &str, s: &SessionRecord) -> anyhow::Result<()> {
        let stored = Stored {
            key_hash: key_hash.to_owned(),
            meta: s.meta.clone(),
            sealed: self.seal(key_hash, &s.tokens)?,
            token_expires_at: s.tokens.expires_at,
        };
        self.sessions.create(&stored).await
    }

    /// Loads a session; one whose tokens do not decrypt counts as absent.
    pub async fn load(&self, key_hash: &str) -> anyhow::Result<Option<SessionRecord>> {
        self.counts.reads.fetch_add(1, Relaxed);
        let stored = self.sessions.load(key_hash).await?;
        Ok(stored.and_then(|s| self.open(s)).map(|(_, r)| r))
    }

    /// Every session of a subject, oldest first, with its key hash.
    pub async fn by_sub(&self, sub: &str) -> anyhow::Result<Vec<(String, SessionRecord)>> {
        let list = self.sessions.by_sub(sub).await?;
        Ok(list.into_iter().filter_map(|s| self.open(s)).collect())
    }

    /// Every session with a provider session id, with its key hash.
    pub async fn by_sid(&self, sid: &str) -> anyhow::Result<Vec<(String, SessionRecord)>> {
        let list = self.sessions.by_sid(sid).await?;
        Ok(list.into_iter().filter_map(|s| self.open(s)).collect())
    }

    /// Records activity: moves `last_seen` and the idle deadline. One write per session at
    /// a time: a burst of requests on a session due for a touch (a page opening many
    /// streams) would otherwise each write the same row and wait for it; the others go on.
    /// The cached copy is updated, so the requests after it do not touch again.
    pub async fn touch(
        &self,
        key_hash: &str,
        now: i64,
        idle_expires_at: i64,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        let Some(_busy) = Touching::begin(&self.touching, key_hash) else {
            return Ok(());
        };
        self.sessions
            .touch(key_hash, now, idle_expires_at, expires_at)
            .await?;
        self.cache.touched(key_hash, now, idle_expires_at);
        Ok(())
    }

    /// Replaces the tokens if the session still has `expected_version`; false when another
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
        self.cache.forget(key_hash);
        self.sessions
            .update_tokens(
                key_hash,
                expected_version,
                &sealed,
                tokens.expires_at,
                name,
                email,
            )
            .await
    }

    /// Replaces a session's state map (never its tokens).
    pub async fn update_state(&self, key_hash: &str, state: &HashMap<String, String>) -> anyhow::Result<()> {
        self.cache.forget(key_hash);
        self.sessions.update_state(key_hash, state).await
    }

    /// Holds a new session until the cookie layer stores it under a fresh key at the end
    /// of the sign-in request; returns the name it is held under.
    pub fn stage(&self, record: SessionRecord) -> String {
        let id = crate::ids::random_token();
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        // A sign-in that failed after staging leaves its record behind: not for long.
        staged.retain(|_, (at, _)| at.elapsed() < std::time::Duration::from_secs(60));
        staged.insert(id.clone(), (std::time::Instant::now(), record));
        id
    }

    /// The session staged under `id`, once.
    pub fn take_staged(&self, id: &str) -> Option<SessionRecord> {
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        staged.remove(id).map(|(_, r)| r)
    }

    /// Takes the session's refresh lease for `secs` seconds; false while another holds it.
    pub async fn take_refresh_lease(&self, key_hash: &str, now: i64, secs: i64) -> anyhow::Result<bool> {
        self.sessions.take_refresh_lease(key_hash, now, now + secs).await
    }

    /// Releases the refresh lease early.
    pub async fn release_refresh_lease(&self, key_hash: &str) -> anyhow::Result<()> {
        self.sessions.release_refresh_lease(key_hash).await
    }

    /// Deletes one session by its cookie key hash.
    pub async fn delete(&self, key_hash: &str) -> anyhow::Result<()> {
        self.cache.forget(key_hash);
        self.sessions.delete(key_hash).await
    }

    /// Marks a one-time value (login state, logout-token jti) as used; false on a replay.
    pub async fn consume_state(&self, hash: &str, expires_at: i64, now: i64) -> anyhow::Result<bool> {
        self.sql.consume_once(hash, expires_at, now).await
    }

    /// Records that `token` (an id_token a signed-out session held) must no longer be
    /// accepted, until its own expiry; kept in SQL, so every replica sharing it sees it.
    pub async fn revoke_token(&self, token: &str, expires_at: i64) -> anyhow::Result<()> {
        self.sql
            .consume_once(&revoked_token_hash(token), expires_at, crate::clock::now())
            .await
            .map(|_| ())
    }

    /// Whether `token` was revoked by a sign-out.
    pub async fn token_revoked(&self, token: &str, now: i64) -> anyhow::Result<bool> {
        self.sql.is_consumed(&revoked_token_hash(token), now).await
    }

    /// Removes expired sessions and spent one-time values from SQL (Redis expires its own).
    pub async fn sweep(&self, now: i64) -> anyhow::Result<(u64, u64)> {
        self.sql.sweep(now, 500, 20).await
    }

    /// Appends to the audit log; failures are logged, never fatal to the request.
    pub async fn audit(&self, e: AuditEvent<'_>) {
        if let Err(err) = self
            .sql
            .audit(crate::clock::now(), e.event, e.sub, e.session_id, e.ip, e.detail)
            .await
        {
            tracing::error!(error = %format!("{err:#}"), event = e.event, "cannot write audit log");
        }
    }

    /// The most recent audit events, newest first: (event, sub, session id).
    pub async fn recent_audit(
        &self,
        limit: i64,
    ) -> anyhow::Result<Vec<(String, Option<String>, Option<String>)>> {
        self.sql.recent_audit(limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_touch_per_session_at_a_time() {
        let set = std::sync::Mutex::default();
        let first = Touching::begin(&set, "a").expect("first");
        assert!(Touching::begin(&set, "a").is_none(), "a burst writes once");
        assert!(
            Touching::begin(&set, "b").is_some(),
            "other sessions are not held up"
        );
        drop(first);
        assert!(
            Touching::begin(&set, "a").is_some(),
            "the next minute's touch happens"
        );
    }
}
