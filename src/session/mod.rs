//! Server-side session state and its stores.
//!
//! Sessions are not kept in actix-session: its middleware writes the whole state back
//! at the end of every request that touched it, which would overwrite a refresh token
//! rotated meanwhile by a concurrent request (and the IdP then revokes the family).
//! Here every write is a targeted statement: create, touch, compare-and-set of tokens.

pub mod cache;
pub mod crypto;
pub mod redis;
pub mod sql;
pub mod store;

use serde::{Deserialize, Serialize};

pub use store::SessionStore;

/// The tokens of a session; stored sealed, never sent to the browser.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    /// The id_token from the last code exchange or refresh.
    pub id_token: String,
    /// The access token, if the provider issued one.
    pub access_token: Option<String>,
    /// The refresh token, if `offline_access` was granted.
    pub refresh_token: Option<String>,
    /// Unix time at which the forwarded token expires.
    pub expires_at: i64,
    /// Unix time the tokens were received (0 in sessions stored before it was recorded).
    #[serde(default)]
    pub issued_at: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct SessionRecord {
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
    /// The session's tokens.
    pub tokens: Tokens,
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
}

impl SessionRecord {
    /// What pages call the user: name, else email, else subject.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.email.as_deref())
            .unwrap_or(&self.sub)
    }

    /// Whether the session is still valid at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at && now < self.idle_expires_at
    }
}
