//! A short-lived in-process copy of recently loaded sessions, so the hot path of the proxy
//! skips the store (a SQL round trip and an AES-GCM open per request otherwise).
//!
//! Revocation stays correct across replicas because every change that can end or alter a
//! session is announced by the store and drops the entry everywhere:
//! - this process's own writes drop the entry before they return;
//! - PostgreSQL: a trigger sends `NOTIFY` on every delete and token update of a session row,
//!   whoever made it (another replica, an operator's `DELETE`), and each replica `LISTEN`s;
//! - Redis: deletes and token updates `PUBLISH` the key hash in the same transaction, and
//!   each replica subscribes.
//!
//! While a replica's listener is not connected (starting, or the connection dropped and
//! notifications may have been missed), its cache is emptied and bypassed. SQLite has no
//! notifications: it is the one-replica store, and processes that share one SQLite file see
//! each other's sign-outs within the TTL (`SESSION_CACHE_MS`).

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use futures_util::{
    stream::{self, BoxStream},
    StreamExt,
};

use super::SessionRecord;

/// Channel (PostgreSQL) and channel suffix (Redis) of session-change notifications.
pub const CHANNEL: &str = "taskflow_bff_sessions";

/// Most entries kept; past it, stale entries are swept and then the map is cleared.
const MAX_ENTRIES: usize = 100_000;

struct Entries {
    map: HashMap<String, (Instant, Arc<SessionRecord>), foldhash::fast::RandomState>,
    /// Bumped by every invalidation, so a load that raced one is not cached.
    epoch: u64,
    /// Expired entries are swept once per TTL, so the map holds about one TTL's sessions.
    swept: Instant,
}

impl Default for Entries {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
            epoch: 0,
            swept: Instant::now(),
        }
    }
}

/// Recently loaded sessions by key hash; see the module docs for how entries are dropped.
pub struct SessionCache {
    ttl: Duration,
    entries: Mutex<Entries>,
    /// Whether invalidations are being received (always true when none are needed).
    following: AtomicBool,
    /// Dropped with the cache, which ends its follower.
    alive: tokio::sync::watch::Sender<()>,
}

impl SessionCache {
    /// A cache keeping entries `ttl` (off when zero); `following` is false until a listener
    /// reports that it receives the store's notifications.
    pub fn new(ttl: Duration, following: bool) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
            following: AtomicBool::new(following),
            alive: tokio::sync::watch::Sender::new(()),
        }
    }

    /// Resolves when the cache is dropped.
    fn dropped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.alive.subscribe();
        async move { while rx.changed().await.is_ok() {} }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.following.load(Ordering::Acquire)
    }

    /// A fresh entry, or the epoch to pass to [`SessionCache::put`] after loading. A copy
    /// that looks expired is a miss: another replica may have extended the session.
    pub fn get(&self, key_hash: &str) -> Result<Arc<SessionRecord>, u64> {
        let entries = self.lock();
        if !self.enabled() {
            return Err(entries.epoch);
        }
        match entries.map.get(key_hash) {
            Some((at, r)) if at.elapsed() < self.ttl && r.is_live(crate::clock::now()) => Ok(r.clone()),
            _ => Err(entries.epoch),
        }
    }

    /// Keeps `r`, unless an invalidation happened since `epoch` was read.
    pub fn put(&self, key_hash: &str, r: Arc<SessionRecord>, epoch: u64) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.lock();
        if entries.epoch != epoch {
            return;
        }
        let ttl = self.ttl;
        if entries.swept.elapsed() >= ttl || entries.map.len() >= MAX_ENTRIES {
            entries.map.retain(|_, (at, _)| at.elapsed() < ttl);
            entries.swept = Instant::now();
            if entries.map.len() >= MAX_ENTRIES {
                entries.map.clear();
            }
        }
        entries.map.insert(key_hash.to_owned(), (Instant::now(), r));
    }

    /// Records a touch in the cached copy, if there is one (a session dropped meanwhile is
    /// not brought back): the requests after it see the new `last_seen`.
    pub fn touched(&self, key_hash: &str, last_seen: i64, idle_expires_at: i64) {
        let mut entries = self.lock();
        if let Some((_, r)) = entries.map.get_mut(key_hash) {
            let mut copy = SessionRecord::clone(r);
            copy.meta.last_seen = last_seen;
            copy.meta.idle_expires_at = idle_expires_at;
            *r = Arc::new(copy);
        }
    }

    /// Drops one session (it changed or ended); returns the new epoch.
    pub fn forget(&self, key_hash: &str) -> u64 {
        let mut entries = self.lock();
        entries.epoch += 1;
        entries.map.remove(key_hash);
        entries.epoch
    }

    /// Starts or stops serving from the cache; either way, what it holds is dropped.
    pub fn set_following(&self, following: bool) {
        let mut entries = self.lock();
        entries.epoch += 1;
        entries.map.clear();
        self.following.store(following, Ordering::Release);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache would be used.
    pub fn is_serving(&self) -> bool {
        self.enabled()
    }
}

/// Starts following the store's notifications until `cache` is dropped.
///
/// A tokio task, not a task of actix's local set: sqlx's listener spawns from its `Drop`,
/// which must happen where a runtime is current (actix drops its local tasks outside it).
pub fn follow(cache: &Arc<SessionCache>, source: Source) {
    let dropped = cache.dropped();
    let weak = Arc::downgrade(cache);
    tokio::spawn(async move {
        tokio::select! {
            _ = dropped => {}
            _ = follow_source(weak, source) => {}
        }
    });
}

/// Where session changes are announced.
pub enum Source {
    /// PostgreSQL `NOTIFY` on [`CHANNEL`], from the database URL.
    Postgres(String),
    /// Redis `PUBLISH` on the given channel.
    Redis(redis::Client, String),
}

/// The store's change notifications as a stream of key hashes. The stream ends when the
/// connection drops: notifications may have been missed from then on.
async fn subscribe(source: &Source) -> anyhow::Result<BoxStream<'static, String>> {
    Ok(match source {
        Source::Postgres(url) => {
            let mut l = sqlx::postgres::PgListener::connect(url).await?;
            l.listen(CHANNEL).await?;
            // `try_recv` answers `None` (or an error) once the connection is gone.
            stream::unfold(l, |mut l| async move {
                let n = l.try_recv().await.ok().flatten()?;
                Some((n.payload().to_owned(), l))
            })
            .boxed()
        }
        Source::Redis(client, channel) => {
            let mut p = client.get_async_pubsub().await?;
            p.subscribe(channel).await?;
            p.into_on_message()
                .filter_map(|m| async move { m.get_payload::<String>().ok() })
                .boxed()
        }
    })
}

async fn follow_source(cache: Weak<SessionCache>, source: Source) {
    // Weak: this task must not keep the cache alive (it ends when the cache is dropped).
    let with = |f: &dyn Fn(&SessionCache)| {
        if let Some(c) = cache.upgrade() {
            f(&c);
        }
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match subscribe(&source).await {
            Ok(mut changes) => {
                with(&|c| c.set_following(true));
                delay = Duration::from_millis(200);
                while let Some(key_hash) = changes.next().await {
                    with(&|c| {
                        c.forget(&key_hash);
                    });
                }
                with(&|c| c.set_following(false));
                tracing::warn!("lost the session-change listener; session cache bypassed until it is back");
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for session changes; session cache bypassed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{SessionMeta, Tokens};

    fn record() -> Arc<SessionRecord> {
        Arc::new(SessionRecord::new(
            SessionMeta {
                id: "s".into(),
                sub: "alice".into(),
                sid: None,
                name: None,
                email: None,
                version: 0,
                created_at: 0,
                last_seen: 0,
                idle_expires_at: i64::MAX,
                expires_at: i64::MAX,
                user_agent: None,
                ip: None,
                state: Default::default(),
            },
            Tokens {
                id_token: "i".into(),
                access_token: Some("a".into()),
                refresh_token: None,
                expires_at: 0,
                issued_at: 0,
                bearer: Default::default(),
            },
        ))
    }

    #[test]
    fn a_copy_that_looks_expired_is_a_miss() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        let mut idle = (*record()).clone();
        idle.meta.idle_expires_at = crate::clock::now() - 1;
        let epoch = c.get("k").expect_err("empty");
        c.put("k", Arc::new(idle), epoch);
        assert!(
            c.get("k").is_err(),
            "read again: another replica may have extended it"
        );
    }

    #[test]
    fn a_touch_shows_in_the_cached_copy_and_brings_nothing_back() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        c.touched("k", 100, 200);
        assert!(c.get("k").is_err(), "a touch does not create an entry");
        let epoch = c.get("k").expect_err("empty");
        c.put("k", record(), epoch);
        c.touched("k", 100, i64::MAX - 1);
        let r = c.get("k").expect("kept");
        assert_eq!((r.last_seen, r.idle_expires_at), (100, i64::MAX - 1));
        c.forget("k"); // signed out
        c.touched("k", 300, i64::MAX);
        assert!(c.get("k").is_err(), "an ended session stays gone");
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_kept() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        let epoch = c.get("k").expect_err("empty");
        c.forget("k"); // another replica ended the session while we were loading
        c.put("k", record(), epoch);
        assert!(c.get("k").is_err());
        let epoch = c.get("k").expect_err("still empty");
        c.put("k", record(), epoch);
        assert!(c.get("k").is_ok());
    }

    #[test]
    fn nothing_is_served_while_not_following() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        let epoch = c.get("k").expect_err("empty");
        c.put("k", record(), epoch);
        c.set_following(false);
        assert!(c.get("k").is_err());
        c.set_following(true);
        assert!(c.get("k").is_err(), "what was held before the gap is dropped");
    }

    #[test]
    fn entries_expire_after_the_ttl_and_zero_turns_it_off() {
        let c = SessionCache::new(Duration::from_millis(20), true);
        let epoch = c.get("k").expect_err("empty");
        c.put("k", record(), epoch);
        assert!(c.get("k").is_ok());
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.get("k").is_err());
        // Expired entries do not pile up: the next put after a TTL sweeps them.
        let epoch = c.get("k2").expect_err("empty");
        c.put("k2", record(), epoch);
        assert_eq!(c.len(), 1, "k swept, k2 kept");
        let off = SessionCache::new(Duration::ZERO, true);
        off.put("k", record(), 0);
        assert!(off.get("k").is_err());
    }
}
