//! actix-session for what it is made for: the session cookie (encrypted, set at sign-in
//! with a fresh key, removed at sign-out) and the session key's lifecycle.
//!
//! Its middleware writes the state map back after a request that changed it. That map
//! therefore never holds tokens: it holds the session's own small state (a form token,
//! preferences) and, while a request runs, the key hash that names the session record
//! (`_key`, never stored). Tokens change only through the store's compare-and-set, so a
//! request that changes the state cannot put back a refresh token that another request
//! has rotated meanwhile. No store write happens per request
//! (`TtlExtensionPolicy::OnStateChanges`); idle expiry is the extractor's touch.

use std::{cell::RefCell, collections::HashMap, sync::Arc};

use actix_session::{
    config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy},
    storage::{LoadError, SaveError, SessionKey, SessionStore as CookieBackedStore, UpdateError},
    SessionMiddleware,
};
use actix_web::{
    body::MessageBody,
    cookie::{time::Duration as CookieDuration, SameSite},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};

use super::{crypto::Keys, SessionRecord, SessionStore};
use crate::ids::{random_token, sha256_hex};

/// State entry naming the session record of this request (its key hash); not stored.
pub const KEY_ENTRY: &str = "_key";
/// State entry naming a session staged at sign-in, to be stored under a fresh key.
pub const STAGED_ENTRY: &str = "_staged";

tokio::task_local! {
    /// The record `load` found in this request, so the extractor does not read it again.
    static LOADED: RefCell<Option<(String, Option<Arc<SessionRecord>>)>>;
}

/// Whether a session key has our shape (43 base64url characters).
pub fn well_formed_key(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Most session-cookie values a worker remembers having opened; then it starts over.
const OPENED_MAX: usize = 4096;

/// Longest cookie value remembered (ours are about 100 characters).
const OPENED_VALUE_MAX: usize = 256;

/// Whether `value` is written the one way actix-session writes ours (base64, its `/` and
/// `=` percent-encoded as `%2F` and `%3D`, nothing to trim or quote): only such values are
/// remembered, so one cookie cannot fill the memory with spellings of itself (raw, padded,
/// quoted, encoded otherwise) that all decrypt alike.
fn canonical(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() > OPENED_VALUE_MAX {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_alphanumeric() || c == b'+' => i += 1,
            b'%' if matches!(b.get(i + 1..i + 3), Some(b"2F" | b"3D")) => i += 3,
            _ => return false,
        }
    }
    true
}

thread_local! {
    /// Session-cookie values this worker has opened: sealed value → (key id, key hash).
    /// Opening is a base64 decode, an AES-GCM decryption and a SHA-256, and a browser sends
    /// the same value with every request. Only canonical values that authenticated under
    /// that key are here, so a lookup needs no check of its own; whether the session still
    /// exists is the store's answer, asked every time.
    static OPENED: RefCell<HashMap<String, (u64, String), foldhash::fast::RandomState>> = RefCell::default();
}

/// The key hash named by the request's session cookie, read without the session layer:
/// for the proxy's routes, which never change session state. The same reading as
/// actix-session's (the first cookie of that name, decrypted with the same key), minus the
/// state map it builds for every request.
pub fn key_hash_from_cookie(req: &actix_web::HttpRequest, name: &str, keys: &Keys) -> Option<String> {
    use actix_web::cookie::{Cookie, CookieJar};
    // Split and decoded as actix-web does (UTF-8 headers); only the pair with our name is
    // parsed.
    let pair = req
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .find(|p| p.strip_prefix(name).is_some_and(|rest| rest.starts_with('=')))?;
    let id = keys.session_cookie_id();
    let value = &pair[name.len() + 1..];
    if value.len() <= OPENED_VALUE_MAX {
        let known = OPENED.with(|o| {
            o.borrow()
                .get(pair)
                .filter(|(opened_by, _)| *opened_by == id)
                .map(|(_, hash)| hash.clone())
        });
        if known.is_some() {
            return known;
        }
    }
    let found = Cookie::parse_encoded(pair).ok()?.into_owned();
    let plain = CookieJar::new()
        .private(keys.session_cookie_key())
        .decrypt(found)?;
    let hash = well_formed_key(plain.value()).then(|| sha256_hex(plain.value()))?;
    if canonical(value) {
        OPENED.with(|o| {
            let mut opened = o.borrow_mut();
            if opened.len() >= OPENED_MAX {
                opened.clear();
            }
            opened.insert(pair.to_owned(), (id, hash.clone()));
        });
    }
    Some(hash)
}

/// Gives each request a place for the record the session layer loads (wraps it).
pub async fn remember_loads(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    LOADED.scope(RefCell::new(None), next.call(req)).await
}

/// The record the session layer loaded for `key_hash` in this request, if it did.
pub fn loaded(key_hash: &str) -> Option<Option<Arc<SessionRecord>>> {
    LOADED
        .try_with(|slot| {
            slot.borrow()
                .as_ref()
                .filter(|(h, _)| h == key_hash)
                .map(|(_, r)| r.clone())
        })
        .ok()
        .flatten()
}

/// The session middleware: our cookie name, `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure`
/// (and the `__Host-` name) on https, encrypted with a key derived from `SESSION_SECRET`,
/// lasting the session's absolute lifetime.
pub fn middleware(
    store: SessionStore,
    name: &str,
    secure: bool,
    key: actix_web::cookie::Key,
    absolute_secs: i64,
) -> SessionMiddleware<CookieSessions> {
    SessionMiddleware::builder(CookieSessions(store), key)
        .cookie_name(name.to_owned())
        .cookie_secure(secure)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned())
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(CookieDuration::seconds(absolute_secs))
                .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
        )
        .build()
}

/// actix-session's storage over our session store.
#[derive(Clone)]
pub struct CookieSessions(SessionStore);

/// The state worth storing: everything but the per-request entries.
fn persistent(mut state: HashMap<String, String>) -> HashMap<String, String> {
    state.retain(|k, _| !k.starts_with('_'));
    state
}

/// `v` as the JSON string actix-session stores; our values are hex or base64url, which need
/// no escaping (the general serializer cost ~2,000 instructions per request).
fn json(v: &str) -> String {
    debug_assert!(v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    out.push_str(v);
    out.push('"');
    out
}

impl CookieBackedStore for CookieSessions {
    async fn load(&self, key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        if !well_formed_key(key.as_ref()) {
            return Ok(None);
        }
        let hash = sha256_hex(key.as_ref());
        match self.0.load_cached(&hash).await {
            Ok(record) => {
                let state = record.as_ref().map(|r| {
                    let mut state = r.state.clone();
                    state.insert(KEY_ENTRY.into(), json(&hash));
                    state
                });
                let _ = LOADED.try_with(|slot| *slot.borrow_mut() = Some((hash, record)));
                Ok(state)
            }
            // The extractor asks again and answers the outage as the page or API expects.
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "session store unavailable");
                Ok(Some(HashMap::from([(KEY_ENTRY.into(), json(&hash))])))
            }
        }
    }

    async fn save(
        &self,
        state: HashMap<String, String>,
        _: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        // Only a sign-in creates a session: anonymous visitors create no rows.
        let staged = state
            .get(STAGED_ENTRY)
            .and_then(|v| serde_json::from_str::<String>(v).ok())
            .and_then(|id| self.0.take_staged(&id))
            .ok_or_else(|| SaveError::Other(anyhow::anyhow!("no signed-in session to store")))?;
        let key = random_token();
        let mut record = staged;
        record.meta.state = persistent(state);
        self.0
            .create(&sha256_hex(&key), &record)
            .await
            .map_err(SaveError::Other)?;
        SessionKey::try_from(key).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        key: SessionKey,
        state: HashMap<String, String>,
        _: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        self.0
            .update_state(&sha256_hex(key.as_ref()), &persistent(state))
            .await
            .map_err(UpdateError::Other)?;
        Ok(key)
    }

    async fn update_ttl(&self, _: &SessionKey, _: &CookieDuration) -> Result<(), anyhow::Error> {
        // Not asked under `OnStateChanges`; idle expiry is the extractor's periodic touch.
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        self.0.delete(&sha256_hex(key.as_ref())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_reads_the_cookie_the_session_layer_wrote() {
        use actix_web::{
            cookie::{Cookie, CookieJar},
            test::TestRequest,
        };
        let keys = Keys::derive(&random_token().into());
        let session_key = random_token();
        let mut jar = CookieJar::new();
        jar.private_mut(keys.session_cookie_key())
            .add(Cookie::new("sid", session_key.clone()));
        // As actix-session writes it in Set-Cookie (and the browser sends it back): encoded,
        // so the base64 padding and any `/` arrive as `%3D` and `%2F`.
        let wire = jar.get("sid").expect("sealed").encoded().to_string();
        let sealed = wire.strip_prefix("sid=").expect("name").to_owned();
        assert!(sealed.contains("%3D"), "the padding is encoded: {sealed}");
        let read = |header: String| {
            let req = TestRequest::default()
                .insert_header(("cookie", header))
                .to_http_request();
            key_hash_from_cookie(&req, "sid", &keys)
        };
        let want = Some(sha256_hex(&session_key));
        assert_eq!(read(format!("sid={sealed}")), want);
        assert_eq!(read(format!("other=1; sidx=2; sid={sealed}; last=3")), want);
        // Tampered, under another key, or not there: no session.
        let mut tampered = sealed.clone().into_bytes();
        tampered[10] ^= 1;
        assert_eq!(
            read(format!("sid={}", String::from_utf8(tampered).expect("ascii"))),
            None
        );
        assert_eq!(read("sidx=1".into()), None);
        let remembered = |v: &str| {
            OPENED.with(|o| {
                o.borrow()
                    .get(v)
                    .is_some_and(|(id, _)| *id == keys.session_cookie_id())
            })
        };
        assert!(remembered(&format!("sid={sealed}")), "the worker remembers it");
        // Other spellings of the same cookie are read but not remembered.
        let before = OPENED.with(|o| o.borrow().len());
        assert_eq!(read(format!("sid=\"{sealed}\"")), want);
        assert_eq!(read(format!("sid=  {sealed}")), want);
        let raw = jar.get("sid").expect("sealed").value().to_owned();
        assert_eq!(
            read(format!("sid={raw}")),
            want,
            "decoded, as a client may send it"
        );
        assert_eq!(read(format!("sid={}", sealed.replace("%3D", "%3d"))), want);
        let after = OPENED.with(|o| o.borrow().len());
        assert_eq!(before, after, "spellings of one cookie take no memory");
        // A value opened (and remembered) under one key means nothing under another.
        let other = Keys::derive(&random_token().into());
        let req = TestRequest::default()
            .insert_header(("cookie", format!("sid={sealed}")))
            .to_http_request();
        assert_eq!(key_hash_from_cookie(&req, "sid", &other), None);
        assert_eq!(
            read(format!("sid={sealed}")),
            want,
            "still opened under its own key"
        );
    }

    #[test]
    fn per_request_entries_are_never_stored() {
        let state = HashMap::from([
            (KEY_ENTRY.to_owned(), json("hash")),
            (STAGED_ENTRY.to_owned(), json("id")),
            ("csrf".to_owned(), json("t")),
        ]);
        assert_eq!(persistent(state), HashMap::from([("csrf".to_owned(), json("t"))]));
    }
}
