//! What a place that keeps sessions must do (SQL or Redis), and the two shapes a session
//! has there: its metadata, shared with the session record, and its tokens sealed.
//! Backends never see tokens in clear: the session store seals them first.

use std::collections::HashMap;

use async_trait::async_trait;

/// Everything about a session but its tokens.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    /// Public id, shown on the sessions page; not a credential.
    pub id: String,
    /// Subject at the provider.
    pub sub: String,
    /// The provider's session id (`sid` claim), for back-channel logout.
    pub sid: Option<String>,
    /// Display name from userinfo or the id_token.
    pub name: Option<String>,
    /// Email from userinfo or the id_token.
    pub email: Option<String>,
    /// Incremented on every token update; compare-and-set guard across replicas.
    pub version: i64,
    /// Unix time of sign-in.
    pub created_at: i64,
    /// Unix time of the last request, updated at most once a minute.
    pub last_seen: i64,
    /// The session ends when unused until this time.
    pub idle_expires_at: i64,
    /// The session ends at this time whatever happens.
    pub expires_at: i64,
    /// Browser user agent at sign-in.
    pub user_agent: Option<String>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// The session's own small state (actix-session's map: a form token, preferences);
    /// never tokens.
    pub state: HashMap<String, String>,
}

/// A session as a backend keeps it.
#[derive(Clone)]
pub struct Stored {
    /// SHA-256 of the cookie key.
    pub key_hash: String,
    /// The metadata.
    pub meta: SessionMeta,
    /// The sealed tokens.
    pub sealed: Vec<u8>,
    /// Expiry of the forwarded token (kept in clear for operators' queries).
    pub token_expires_at: i64,
}

/// A place that keeps sessions. Every write is a targeted statement (create, touch,
/// compare-and-set of the tokens, delete): nothing ever writes a whole session back.
#[async_trait]
pub trait SessionBackend: Send + Sync {
    /// Whether the backend answers.
    async fn ping(&self) -> bool;
    /// Stores a new session.
    async fn create(&self, s: &Stored) -> anyhow::Result<()>;
    /// One session by key hash.
    async fn load(&self, key_hash: &str) -> anyhow::Result<Option<Stored>>;
    /// Every session of a subject, oldest first.
    async fn by_sub(&self, sub: &str) -> anyhow::Result<Vec<Stored>>;
    /// Every session with a provider session id.
    async fn by_sid(&self, sid: &str) -> anyhow::Result<Vec<Stored>>;
    /// Moves `last_seen` and the idle deadline.
    async fn touch(
        &self,
        key_hash: &str,
        now: i64,
        idle_expires_at: i64,
        expires_at: i64,
    ) -> anyhow::Result<()>;
    /// Compare-and-set of the sealed tokens on `version`; releases the refresh lease.
    async fn update_tokens(
        &self,
        key_hash: &str,
        expected_version: i64,
        sealed: &[u8],
        token_expires_at: i64,
        name: Option<&str>,
        email: Option<&str>,
    ) -> anyhow::Result<bool>;
    /// Replaces the session's state map, and nothing else (tokens are never touched here).
    async fn update_state(&self, key_hash: &str, state: &HashMap<String, String>) -> anyhow::Result<()>;
    /// Takes the refresh lease until `until` unless another holder's lease still runs.
    async fn take_refresh_lease(&self, key_hash: &str, now: i64, until: i64) -> anyhow::Result<bool>;
    /// Gives the refresh lease back early.
    async fn release_refresh_lease(&self, key_hash: &str) -> anyhow::Result<()>;
    /// Deletes a session (and tells every replica's cache).
    async fn delete(&self, key_hash: &str) -> anyhow::Result<()>;
}
