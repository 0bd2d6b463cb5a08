//! A user's own sessions: list them (this device first, readable device names and times),
//! end one, end all the others. Nobody sees or ends another user's.

use actix_web::{web, HttpRequest, HttpResponse};

use super::extractor::CurrentSession;
use crate::{
    dashboard::time::ShownTime,
    error::ApiError,
    session::{store::AuditEvent, SessionRecord},
    state::AppState,
};

/// "Chrome on Linux", "Safari on iPhone", or "Unknown browser", from a User-Agent.
pub fn device_name(user_agent: Option<&str>) -> String {
    let parsed = user_agent.and_then(|ua| woothee::parser::Parser::new().parse(ua));
    match parsed {
        Some(r) if r.name != "UNKNOWN" && r.os != "UNKNOWN" => format!("{} on {}", r.name, r.os),
        Some(r) if r.name != "UNKNOWN" => r.name.to_owned(),
        _ => "Unknown browser".into(),
    }
}

/// One row of the sessions list, without anything secret.
#[derive(serde::Serialize)]
pub struct SessionView {
    /// Public id, used to end it.
    pub id: String,
    /// Browser and system, readable.
    pub device: String,
    /// Sign-in, as pages show it.
    pub signed_in: ShownTime,
    /// Last request, as pages show it ("just now" for this device).
    pub last_active: ShownTime,
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

/// The live sessions of the current user: this device first, then the most recently used.
pub async fn list_for(state: &AppState, me: &CurrentSession) -> Result<Vec<SessionView>, ApiError> {
    let now = crate::clock::now();
    let all = state
        .store
        .by_sub(&me.record.sub)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let mut list: Vec<SessionView> = all
        .into_iter()
        .filter(|(_, r)| r.is_live(now))
        .map(|(hash, r): (String, SessionRecord)| {
            let current = hash == me.key_hash;
            // This request is the current session's latest activity.
            let last_seen = if current { now } else { r.meta.last_seen };
            SessionView {
                current,
                device: device_name(r.meta.user_agent.as_deref()),
                signed_in: ShownTime::new(r.meta.created_at, now),
                last_active: ShownTime::new(last_seen, now),
                id: r.meta.id,
                user_agent: r.meta.user_agent,
                ip: r.meta.ip,
                created_at: r.meta.created_at,
                last_seen,
            }
        })
        .collect();
    list.sort_by_key(|v| (!v.current, -v.last_seen));
    Ok(list)
}

/// Ends one session of the current user (found by `pred`), with audit and token
/// retirement; the current one also loses its cookie.
async fn end_where(
    state: &AppState,
    me: &CurrentSession,
    req: &HttpRequest,
    cookie: &actix_session::Session,
    pred: impl Fn(&str, &SessionRecord) -> bool,
) -> Result<usize, ApiError> {
    let all = state
        .store
        .by_sub(&me.record.sub)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    let client = req.app_data::<web::Data<awc::Client>>().map(|c| c.get_ref());
    let mut ended = 0;
    for (hash, record) in all.into_iter().filter(|(h, r)| pred(h, r)) {
        state
            .store
            .delete(&hash)
            .await
            .map_err(ApiError::StoreUnavailable)?;
        let own = hash == me.key_hash;
        state
            .store
            .audit(AuditEvent {
                event: "revoke",
                sub: Some(&record.sub),
                session_id: Some(&record.id),
                ip: state.client_ip(req).as_deref(),
                detail: Some(if own { "own session" } else { "another device" }),
            })
            .await;
        if own {
            cookie.purge();
        }
        super::signout::retire_tokens(state, client, &record.tokens).await;
        tracing::info!(session = %record.id, "session ended by its user");
        ended += 1;
    }
    Ok(ended)
}

/// Ends the session `id` of the current user; `Ok(false)` when it is not one of theirs.
pub async fn end_one(
    state: &AppState,
    me: &CurrentSession,
    req: &HttpRequest,
    cookie: &actix_session::Session,
    id: &str,
) -> Result<bool, ApiError> {
    Ok(end_where(state, me, req, cookie, |_, r| r.id == id).await? > 0)
}

/// Ends every session of the current user but this one; how many.
pub async fn end_others_of(
    state: &AppState,
    me: &CurrentSession,
    req: &HttpRequest,
    cookie: &actix_session::Session,
) -> Result<usize, ApiError> {
    end_where(state, me, req, cookie, |hash, _| hash != me.key_hash).await
}

/// `POST /api/auth/sessions/end-others`: signs out every other browser; `{"ended": n}`.
pub async fn end_others(
    state: web::Data<AppState>,
    me: CurrentSession,
    req: HttpRequest,
    cookie: actix_session::Session,
) -> Result<HttpResponse, ApiError> {
    let ended = end_others_of(&state, &me, &req, &cookie).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "ended": ended })))
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
    req: HttpRequest,
    cookie: actix_session::Session,
) -> Result<HttpResponse, ApiError> {
    if !end_one(&state, &me, &req, &cookie, &path.into_inner()).await? {
        return Err(ApiError::NotFound("no such session"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_get_readable_names() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
        assert_eq!(device_name(Some(chrome)), "Chrome on Linux");
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
        assert_eq!(device_name(Some(firefox)), "Firefox on Windows 10");
        assert_eq!(device_name(Some("curl/8.0")), "HTTP Library");
        assert_eq!(device_name(Some("taskflow tests")), "Unknown browser");
        assert_eq!(device_name(None), "Unknown browser");
    }
}
