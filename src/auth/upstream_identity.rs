//! Who a proxied request acts for, and with which token: the session's (refreshed when
//! due) or, during a migration, the Next.js route's legacy cookie.

use actix_web::{http::header::HeaderValue, HttpRequest};

use super::{
    extractor::CurrentSession,
    refresh::{authorization, bearer, fresh_tokens},
};
use crate::{clock::now, error::ApiError, state::AppState};

/// The identity sent upstream.
pub struct UpstreamIdentity {
    /// `Authorization: Bearer <token>`.
    pub authorization: HeaderValue,
    /// The subject, sent as `X-User-ID` (`None`: a subject no header can carry).
    pub user_id: Option<HeaderValue>,
    /// The session's key hash (none on the legacy path): open streams re-check it.
    pub key_hash: Option<String>,
}

/// The identity of a request on a route that needs one: 401 without it.
pub async fn upstream_identity(
    req: &HttpRequest,
    state: &AppState,
    client: &awc::Client,
    session: Option<CurrentSession>,
) -> Result<UpstreamIdentity, ApiError> {
    if let Some(s) = session {
        let tokens = fresh_tokens(state, client, &s.key_hash, &s.record).await?;
        let authorization =
            authorization(&tokens, state.settings.tokens.forward_token).ok_or(ApiError::SessionExpired)?;
        return Ok(UpstreamIdentity {
            authorization,
            user_id: s.record.user_id_header(),
            key_hash: Some(s.key_hash),
        });
    }
    let (token, sub) = legacy_identity(req, state, client)
        .await?
        .ok_or(ApiError::NotAuthenticated)?;
    Ok(UpstreamIdentity {
        authorization: bearer(&token).ok_or(ApiError::NotAuthenticated)?,
        user_id: crate::session::user_id_header(&sub),
        key_hash: None,
    })
}

/// During a migration from the Next.js route: its id_token cookie, accepted only after
/// full validation (signature, iss, aud, exp) and only if no sign-out has revoked it. It
/// cannot be refreshed; when it expires the user signs in again and gets a real session.
async fn legacy_identity(
    req: &HttpRequest,
    state: &AppState,
    client: &awc::Client,
) -> Result<Option<(String, String)>, ApiError> {
    let Some(name) = state.settings.tokens.legacy_cookie.as_deref() else {
        return Ok(None);
    };
    let Some(cookie) = req.cookie(name) else {
        return Ok(None);
    };
    let token = cookie.value().to_owned();
    let claims = match state.provider.validate_id_token(client, &token, None).await {
        Ok(claims) => claims,
        Err(e) => {
            tracing::info!(error = %e, "legacy cookie refused");
            return Ok(None);
        }
    };
    if state
        .store
        .token_revoked(&token, now())
        .await
        .map_err(ApiError::StoreUnavailable)?
    {
        tracing::info!("legacy cookie refused: its session was signed out");
        return Ok(None);
    }
    tracing::info!("request accepted on the legacy id_token cookie");
    Ok(Some((token, claims.sub)))
}
