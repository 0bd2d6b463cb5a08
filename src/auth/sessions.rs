//! A user's own sessions: list them, end one. Nobody sees or ends another user's.

use actix_web::{web, HttpResponse};

use super::extractor::CurrentSession;
use crate::{
    error::ApiError,
    session::{store::AuditEvent, SessionRecord},
    state::AppState,
};

/// One row of the sessions list, without anything secret.
#[derive(serde::Serialize)]
pub struct SessionView {
    /// Public id, used to end it.
    pub id: String,
    /// Browser at sign-in.
    pub user_agent: Option<String>,
    /// Address at sign-in.
    pub ip: Option<String>,
    /// Sign-in time (Unix seconds).
    pub created_at: i64,
    /// Last request (Unix seconds, to the minute).
    pub last_seen: i64,
    /// Whether it is the session making this request.
    pub current: bool,
}

/// The live sessions of the current user, oldest first.
pub async fn list_for(state: &AppState, me: &CurrentSession) -> Result<Vec<SessionView>, ApiError> {
    let now = crate::clock::now();
    let all = state
        .store
        .by_sub(&me.record.sub)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    Ok(all
        .into_iter()
        .filter(|(_, r)| r.is_live(now))
        .map(|(hash, r): (String, SessionRecord)| SessionView {
            current: hash == me.key_hash,
            id: r.meta.id,
            user_agent: r.meta.user_agent,
            ip: r.meta.ip,
            created_at: r.meta.created_at,
            last_seen: r.meta.last_seen,
        })
        .collect())
}

/// `GET /api/auth/sessions`.
pub async fn list(state: web::Data<AppState>, me: CurrentSession) -> Result<HttpResponse, ApiError> {
    let sessions = list_for(&state, &me).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "sessions": sessions })))
}

/// `DELETE /api/auth/sessions/{id}`: 204, or 404 for an id that is not one of the user's.
pub async fn end(
    state: web::Data<AppState>,
    me: CurrentSession,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
    cookie: actix_session::Session,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let all = state
        .store
        .by_sub(&me.record.sub)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let Some((hash, record)) = all.into_iter().find(|(_, r)| r.id == id) else {
        return Err(ApiError::NotFound("no such session"));
    };
    state
        .store
        .delete(&hash)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    state
        .store
        .audit(AuditEvent {
            event: "revoke",
            sub: Some(&record.sub),
            session_id: Some(&record.id),
            ip: state.client_ip(&req).as_deref(),
            detail: Some(if hash == me.key_hash {
                "own session"
            } else {
                "another device"
            }),
        })
        .await;
    if hash == me.key_hash {
        cookie.purge();
    }
    let client = req.app_data::<web::Data<awc::Client>>().map(|c| c.get_ref());
    super::signout::retire_tokens(&state, client, &record.tokens).await;
    tracing::info!(session = %record.id, "session ended by its user");
    Ok(HttpResponse::NoContent().finish())
}
