//! The session extractor: cookie → store lookup → liveness check.

use std::sync::Arc;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use crate::{clock::now, error::ApiError, ids::sha256_hex, session::SessionRecord, state::AppState};

/// `last_seen` is written at most this often, to keep writes off most requests.
const TOUCH_EVERY_SECS: i64 = 60;

/// A signed-in request; extraction fails with 401 JSON without a live session.
pub struct CurrentSession {
    /// SHA-256 of the cookie key: the store's primary key.
    pub key_hash: String,
    /// The session.
    pub record: Arc<SessionRecord>,
}

/// A request that may or may not be signed in; fails only when the store is down.
pub struct MaybeSession(pub Option<CurrentSession>);

/// Whether a cookie value has the shape of our session keys (43 base64url characters).
pub fn well_formed_key(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Loads the live session named by the request's cookie, if any.
pub async fn load_session(
    state: &AppState,
    cookie: Option<String>,
) -> Result<Option<CurrentSession>, ApiError> {
    let Some(key) = cookie.filter(|k| well_formed_key(k)) else {
        return Ok(None);
    };
    let key_hash = sha256_hex(&key);
    let Some(record) = state
        .store
        .load_cached(&key_hash)
        .await
        .map_err(ApiError::StoreUnavailable)?
    else {
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
        let idle = now + state.settings.session_idle.as_secs() as i64;
        state
            .store
            .touch(&key_hash, now, idle.min(record.expires_at), record.expires_at)
            .await
            .map_err(ApiError::StoreUnavailable)?;
    }
    Ok(Some(CurrentSession { key_hash, record }))
}

fn extract(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Option<CurrentSession>, ApiError>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let cookie = state
        .as_ref()
        .and_then(|s| req.cookie(&s.session_cookie))
        .map(|c| c.value().to_owned());
    Box::pin(async move {
        let state = state.ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("AppState missing")))?;
        load_session(&state, cookie).await
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
