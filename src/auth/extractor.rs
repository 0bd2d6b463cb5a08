//! The session extractor: the session layer's key hash → the record (as loaded by the
//! session layer, or from the store) → liveness check and the once-a-minute touch.

use std::sync::Arc;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use actix_session::SessionExt;

use crate::{
    clock::now,
    error::ApiError,
    session::{cookie, SessionRecord},
    state::AppState,
};

/// `last_seen` is written at most this often, to keep writes off most requests.
const TOUCH_EVERY_SECS: i64 = 60;

/// A signed-in request; extraction fails with 401 JSON without a live session.
#[derive(Clone)]
pub struct CurrentSession {
    /// SHA-256 of the cookie key: the store's primary key.
    pub key_hash: String,
    /// The session.
    pub record: Arc<SessionRecord>,
}

/// A request that may or may not be signed in; fails only when the store is down.
pub struct MaybeSession(pub Option<CurrentSession>);

/// [`MaybeSession`] for routes outside the session layer (the proxy's): the session named
/// by the cookie, read directly. Fails (JSON) only when the store is down.
pub struct CookieSession(pub Option<CurrentSession>);

/// Loads the live session named by the session layer's `_key` entry, if any.
pub async fn load_session(
    state: &AppState,
    key_hash: Option<String>,
) -> Result<Option<CurrentSession>, ApiError> {
    let Some(key_hash) = key_hash else {
        return Ok(None);
    };
    let record = match cookie::loaded(&key_hash) {
        Some(loaded) => loaded,
        None => state
            .store
            .load_cached(&key_hash)
            .await
            .map_err(ApiError::StoreUnavailable)?,
    };
    let Some(record) = record else {
        return Ok(None);
    };
    let now = now();
    if !record.is_live(now) {
        state
            .store
            .delete(&key_hash)
            .await
            .map_err(ApiError::StoreUnavailable)?;
        return Ok(None);
    }
    if now - record.last_seen >= TOUCH_EVERY_SECS {
        // Bookkeeping for the idle deadline, written beside the request rather than before
        // it (a store round trip on the first request of every minute, a stream's included);
        // if it fails, the next request tries again.
        let idle = (now + state.settings.session.idle.as_secs() as i64).min(record.expires_at);
        let (store, key, expires_at) = (state.store.clone(), key_hash.clone(), record.expires_at);
        actix_web::rt::spawn(async move {
            if let Err(e) = store.touch(&key, now, idle, expires_at).await {
                tracing::warn!(error = %format!("{e:#}"), "could not record session activity");
            }
        });
    }
    Ok(Some(CurrentSession { key_hash, record }))
}

fn extract(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Option<CurrentSession>, ApiError>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let key_hash = req.get_session().get::<String>(cookie::KEY_ENTRY).ok().flatten();
    Box::pin(async move {
        let state = state.ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("AppState missing")))?;
        load_session(&state, key_hash).await
    })
}

impl FromRequest for CurrentSession {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = extract(req);
        Box::pin(async move { fut.await?.ok_or(ApiError::NotAuthenticated) })
    }
}

impl FromRequest for CookieSession {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let key_hash = state
            .as_ref()
            .and_then(|s| cookie::key_hash_from_cookie(req, &s.session_cookie, &s.keys));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("AppState missing")))?;
            load_session(&state, key_hash).await.map(CookieSession)
        })
    }
}

impl FromRequest for MaybeSession {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = extract(req);
        let api = crate::error::is_api_path(req.path());
        Box::pin(async move {
            match fut.await {
                Ok(s) => Ok(MaybeSession(s)),
                Err(e) if api => Err(e.into()),
                Err(e) => Err(crate::error::PageError::from(e).into()),
            }
        })
    }
}
