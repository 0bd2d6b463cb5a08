//! Server-side session state and its stores.
//!
//! actix-session keeps the cookie and its key's lifecycle (see `cookie`); the session
//! itself lives here, and every write is a targeted statement: create, touch, state,
//! compare-and-set of tokens. Tokens never pass through actix-session's state map, whose
//! write-back would otherwise put back a refresh token another request had rotated.

pub mod backend;
pub mod cache;
pub mod cookie;
pub mod crypto;
pub mod redis;
pub mod sql;
pub mod store;

use std::sync::OnceLock;

use actix_web::http::header::HeaderValue;
use serde::{Deserialize, Serialize};

pub use backend::SessionMeta;
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
    /// `Authorization` values built from these tokens (never stored).
    #[serde(skip)]
    pub bearer: BearerHeaders,
}

/// `Authorization: Bearer …` values for a token set, one per forwardable token, built on
/// first use. A cached session serves many requests, and each would otherwise copy and
/// check a token of a kilobyte or more.
#[derive(Clone, Default)]
pub struct BearerHeaders(pub [OnceLock<Option<HeaderValue>>; 2]);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// One signed-in browser: its metadata (read through `Deref`: `record.sub`) and tokens.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Everything but the tokens.
    pub meta: SessionMeta,
    /// The session's tokens.
    pub tokens: Tokens,
    /// `X-User-ID` for the subject, built on first use: a cached session serves many
    /// proxied requests.
    user_id_header: OnceLock<Option<HeaderValue>>,
}

/// The subject as an `X-User-ID` value; `None` for one no header can carry.
pub fn user_id_header(sub: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(sub).ok()
}

impl std::ops::Deref for SessionRecord {
    type Target = SessionMeta;

    fn deref(&self) -> &SessionMeta {
        &self.meta
    }
}

impl SessionRecord {
    /// A session from its metadata and tokens.
    pub fn new(meta: SessionMeta, tokens: Tokens) -> Self {
        Self {
            meta,
            tokens,
            user_id_header: OnceLock::new(),
        }
    }

    /// What pages call the user: name, else email, else subject.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.email.as_deref())
            .unwrap_or(&self.sub)
    }

    /// [`user_id_header`] of the subject, made once per record.
    pub fn user_id_header(&self) -> Option<HeaderValue> {
        self.user_id_header
            .get_or_init(|| user_id_header(&self.sub))
            .clone()
    }

    /// Whether the session is still valid at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at && now < self.idle_expires_at
    }
}
