//! OIDC Back-Channel Logout 1.0: the provider tells us a user or one of their provider
//! sessions logged out; we end the matching sessions (the store is shared, so on every
//! replica at once).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::provider::TokenError;
use crate::{clock::now, error::ApiError, ids::sha256_hex, session::store::AuditEvent, state::AppState};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The form the provider posts.
#[derive(Deserialize)]
pub struct LogoutForm {
    logout_token: Option<String>,
}

#[derive(Deserialize)]
struct LogoutClaims {
    sub: Option<String>,
    sid: Option<String>,
    iat: Option<i64>,
    jti: Option<String>,
    nonce: Option<serde_json::Value>,
    events: Option<serde_json::Map<String, serde_json::Value>>,
}

fn bad(msg: &str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::BadRequest("invalid_request", msg.to_owned()))
}

/// `POST /api/auth/backchannel-logout`.
pub async fn backchannel_logout(
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = form.logout_token.as_deref() else {
        return bad("logout_token is missing");
    };
    let verified = state
        .provider
        .verify_jwt::<LogoutClaims>(&client, token, &["iss", "aud", "iat"])
        .await;
    let (header, claims) = match verified {
        Ok(v) => v,
        Err(TokenError::Keys(e)) => return Err(ApiError::IdpUnavailable(e)),
        Err(TokenError::Invalid(why)) => return bad(&why),
    };
    // Explicit typing keeps an id_token from being replayed as a logout token.
    if let Some(typ) = header.typ.as_deref() {
        if !typ.eq_ignore_ascii_case("logout+jwt") && !typ.eq_ignore_ascii_case("JWT") {
            return bad("typ must be logout+jwt");
        }
    }
    if !claims
        .events
        .as_ref()
        .is_some_and(|e| e.get(EVENT).is_some_and(|v| v.is_object()))
    {
        return bad("the back-channel logout event is missing");
    }
    if claims.nonce.is_some() {
        return bad("a logout token carries no nonce");
    }
    let leeway = state.provider.leeway().as_secs() as i64;
    let now = now();
    if claims.iat.is_some_and(|iat| iat > now + leeway) {
        return bad("issued in the future");
    }
    if claims.sid.is_none() && claims.sub.is_none() {
        return bad("sid or sub is required");
    }
    let Some(jti) = claims.jti.as_deref() else {
        return bad("jti is required");
    };
    let once = sha256_hex(&format!("logout-jti:{}:{jti}", state.provider.issuer()));
    match state.store.consume_state(&once, now + 3600, now).await {
        Ok(true) => {}
        Ok(false) => return bad("this logout token was already used"),
        Err(e) => return Err(ApiError::StoreUnavailable(e)),
    }
    let found = match (&claims.sid, &claims.sub) {
        (Some(sid), sub) => state.store.by_sid(sid).await.map(|v| {
            v.into_iter()
                .filter(|(_, r)| sub.as_ref().is_none_or(|s| *s == r.sub))
                .collect::<Vec<_>>()
        }),
        (None, Some(sub)) => state.store.by_sub(sub).await,
        (None, None) => Ok(Vec::new()),
    };
    let sessions = found.map_err(ApiError::StoreUnavailable)?;
    for (key_hash, record) in &sessions {
        state
            .store
            .delete(key_hash)
            .await
            .map_err(ApiError::StoreUnavailable)?;
        state
            .store
            .audit(AuditEvent {
                event: "backchannel_logout",
                sub: Some(&record.sub),
                session_id: Some(&record.id),
                ip: None,
                detail: None,
            })
            .await;
        // Some providers keep offline refresh tokens alive after their own logout.
        super::signout::retire_tokens(&state, Some(&client), &record.tokens).await;
    }
    tracing::info!(ended = sessions.len(), "back-channel logout");
    state
        .metrics
        .backchannel_logouts
        .fetch_add(sessions.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .finish())
}
