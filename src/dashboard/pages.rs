//! Page handlers and their templates.

use actix_web::{http::header, HttpRequest, HttpResponse};
use askama::Template;

use actix_session::Session;

use super::{forms::form_token, time::ShownTime};
use crate::{auth::extractor::MaybeSession, error::PageError};

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing {
    demo: bool,
    signed_out: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard<'a> {
    form_token: String,
    demo: bool,
    name: &'a str,
    email: Option<&'a str>,
    expires: ShownTime,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct Chat<'a> {
    form_token: String,
    user: &'a str,
    demo: bool,
    name: &'a str,
    domain_key: &'a str,
    script_url: &'a str,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct Sessions<'a> {
    form_token: String,
    ended: Option<usize>,
    demo: bool,
    name: &'a str,
    sessions: Vec<crate::auth::sessions::SessionView>,
}

/// Renders a template as an uncacheable HTML page.
pub fn render(t: &impl Template) -> Result<HttpResponse, PageError> {
    let body = t.render().map_err(|e| PageError::Unexpected(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// Redirect to sign-in, coming back to the current path.
pub fn to_login(req: &HttpRequest) -> HttpResponse {
    let target = match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_owned(),
        None => "/dashboard".to_owned(),
    };
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("returnTo", &target)
        .finish();
    HttpResponse::Found()
        .insert_header((header::LOCATION, format!("/api/auth/login?{q}")))
        .finish()
}

/// `GET /`: the landing page, or the dashboard for signed-in users.
pub async fn landing(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
) -> Result<HttpResponse, PageError> {
    if session.0.is_some() {
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, "/dashboard"))
            .finish());
    }
    render(&Landing {
        demo: state.demo_banner(),
        signed_out: req
            .query_string()
            .split('&')
            .any(|p| p == "signed_out=1" || p == "state=signed_out"),
    })
}

/// `GET /dashboard`.
pub async fn dashboard(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    cookie: Session,
) -> Result<HttpResponse, PageError> {
    let Some(s) = session.0 else {
        return Ok(to_login(&req));
    };
    let form_token = form_token(&cookie)?;
    let r = &s.record;
    render(&Dashboard {
        demo: state.demo_banner(),
        form_token,
        name: r.display_name(),
        email: r.email.as_deref(),
        expires: ShownTime::new(r.expires_at.min(r.idle_expires_at), crate::clock::now()),
    })
}

/// `GET /chat`: the ChatKit widget, with the built-in client as fallback.
pub async fn chat(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    cookie: Session,
) -> Result<HttpResponse, PageError> {
    let Some(s) = session.0 else {
        return Ok(to_login(&req));
    };
    let form_token = form_token(&cookie)?;
    let r = &s.record;
    render(&Chat {
        demo: state.demo_banner(),
        form_token,
        name: r.display_name(),
        user: &r.sub,
        domain_key: &state.settings.chat.domain_key,
        script_url: &state.settings.chat.script_url,
    })
}

/// `GET /sessions`: the user's active sessions, each with an End button.
pub async fn sessions(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    cookie: Session,
) -> Result<HttpResponse, PageError> {
    let Some(s) = session.0 else {
        return Ok(to_login(&req));
    };
    let form_token = form_token(&cookie)?;
    let list = crate::auth::sessions::list_for(&state, &s)
        .await
        .map_err(|e| match e {
            crate::error::ApiError::StoreUnavailable(e) => PageError::StoreUnavailable(e),
            other => PageError::Unexpected(other.into()),
        })?;
    let r = &s.record;
    render(&Sessions {
        demo: state.demo_banner(),
        form_token,
        name: r.display_name(),
        sessions: list,
        ended: ended_notice(&req),
    })
}

/// `?ended=N` after ending sessions from the page.
fn ended_notice(req: &HttpRequest) -> Option<usize> {
    req.query_string()
        .split('&')
        .find_map(|p| p.strip_prefix("ended="))
        .and_then(|n| n.parse().ok())
}

#[derive(Template)]
#[template(path = "end_session.html")]
struct EndSession<'a> {
    demo: bool,
    form_token: String,
    name: &'a str,
    id: &'a str,
    device: &'a str,
    last_active: &'a ShownTime,
}

/// The page form's token field.
#[derive(serde::Deserialize)]
pub struct TokenForm {
    form_token: String,
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// `GET /sessions/{id}/end`: asks before ending another device's session.
pub async fn confirm_end(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    cookie: Session,
    path: actix_web::web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let Some(s) = session.0 else {
        return Ok(to_login(&req));
    };
    let form_token = form_token(&cookie)?;
    let id = path.into_inner();
    let list = crate::auth::sessions::list_for(&state, &s).await?;
    let Some(target) = list.iter().find(|v| v.id == id && !v.current) else {
        return Err(PageError::NotFound);
    };
    render(&EndSession {
        demo: state.demo_banner(),
        form_token,
        name: s.record.display_name(),
        id: &target.id,
        device: &target.device,
        last_active: &target.last_active,
    })
}

/// `POST /sessions/{id}/end`: ends one of the user's sessions, back to the list.
pub async fn end_session(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    cookie: Session,
    path: actix_web::web::Path<String>,
    form: actix_web::web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let Some(s) = session.0 else {
        return Ok(to_login(&req));
    };
    super::forms::check(&req, state.origin(), &cookie, &form.form_token)?;
    if !crate::auth::sessions::end_one(&state, &s, &req, &cookie, &path.into_inner()).await? {
        return Err(PageError::NotFound);
    }
    Ok(see_other("/sessions?ended=1"))
}

/// `POST /sessions/end-others`: signs out every other browser, back to the list.
pub async fn end_others(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    cookie: Session,
    form: actix_web::web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let Some(s) = session.0 else {
        return Ok(to_login(&req));
    };
    super::forms::check(&req, state.origin(), &cookie, &form.form_token)?;
    let n = crate::auth::sessions::end_others_of(&state, &s, &req, &cookie).await?;
    Ok(see_other(&format!("/sessions?ended={n}")))
}

/// Anything else: a path with a trailing slash goes to the page without it (`/chat/` →
/// `/chat`); otherwise the 404 page, with the nav for a signed-in user.
pub async fn not_found(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    cookie: Session,
) -> Result<HttpResponse, PageError> {
    let path = req.path();
    if path.len() > 1 && path.ends_with('/') && !path.starts_with("//") {
        let mut to = path.trim_end_matches('/').to_owned();
        if !req.query_string().is_empty() {
            to.push('?');
            to.push_str(req.query_string());
        }
        return Ok(HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, to))
            .finish());
    }
    let form_token = match &session.0 {
        Some(_) => form_token(&cookie)?,
        None => String::new(),
    };
    Ok(crate::error::ErrorPage {
        status: 404,
        title: "Page not found",
        message: "There is nothing at this address.",
        demo: state.demo_banner(),
        action: session.0.as_ref().map(|_| ("/dashboard", "Go to your dashboard")),
        name: session.0.as_ref().map(|s| s.record.display_name()),
        form_token: &form_token,
    }
    .respond())
}
