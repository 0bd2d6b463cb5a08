//! The pages besides tasks and projects (landing, chat, sessions, the 404 page), and how
//! every page answers: rendered, with another status, or a 303 after a form.

use actix_web::{
    http::{header, StatusCode},
    HttpRequest, HttpResponse,
};
use askama::Template;

use super::{
    shell::{Shell, SignedIn},
    time::ShownTime,
};
use crate::{auth::extractor::MaybeSession, error::PageError};

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing {
    shell: Shell<'static>,
    signed_out: bool,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct Chat<'a> {
    shell: Shell<'a>,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct Sessions<'a> {
    shell: Shell<'a>,
    form_token: &'a str,
    ended: Option<usize>,
    sessions: Vec<crate::auth::sessions::SessionView>,
}

/// Renders a template as an uncacheable HTML page.
pub fn render(t: &impl Template) -> Result<HttpResponse, PageError> {
    render_with(StatusCode::OK, t)
}

/// [`render`] with another status (a form with errors, backend trouble).
pub fn render_with(status: StatusCode, t: &impl Template) -> Result<HttpResponse, PageError> {
    let body = t.render().map_err(|e| PageError::Unexpected(e.into()))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
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
        shell: Shell::public(state.demo_banner()),
        signed_out: req
            .query_string()
            .split('&')
            .any(|p| p == "signed_out=1" || p == "state=signed_out"),
    })
}

/// `GET /chat`: the ChatKit widget, with the built-in client as fallback.
pub async fn chat(page: SignedIn) -> Result<HttpResponse, PageError> {
    render(&Chat {
        shell: page.shell("chat"),
    })
}

/// `GET /sessions`: the user's active sessions, each with an End button.
pub async fn sessions(req: HttpRequest, page: SignedIn) -> Result<HttpResponse, PageError> {
    let list = crate::auth::sessions::list_for(&page.state, &page.session).await?;
    render(&Sessions {
        shell: page.shell("sessions"),
        form_token: &page.form_token,
        sessions: list,
        ended: ended_notice(&req),
    })
}

/// `?ended=N` after ending sessions from the page.
fn ended_notice(req: &HttpRequest) -> Option<usize> {
    super::views::query_param(req, "ended").and_then(|n| n.parse().ok())
}

#[derive(Template)]
#[template(path = "end_session.html")]
struct EndSession<'a> {
    shell: Shell<'a>,
    form_token: &'a str,
    id: &'a str,
    device: &'a str,
    last_active: &'a ShownTime,
}

/// The page form's token field.
#[derive(serde::Deserialize)]
pub struct TokenForm {
    form_token: String,
}

/// 303 to `to`: a form's answer, so that reloading does not post again.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// `GET /sessions/{id}/end`: asks before ending another device's session.
pub async fn confirm_end(
    page: SignedIn,
    path: actix_web::web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let list = crate::auth::sessions::list_for(&page.state, &page.session).await?;
    let Some(target) = list.iter().find(|v| v.id == id && !v.current) else {
        return Err(PageError::NotFound);
    };
    render(&EndSession {
        shell: page.shell("sessions"),
        form_token: &page.form_token,
        id: &target.id,
        device: &target.device,
        last_active: &target.last_active,
    })
}

/// `POST /sessions/{id}/end`: ends one of the user's sessions, back to the list.
pub async fn end_session(
    req: HttpRequest,
    page: SignedIn,
    path: actix_web::web::Path<String>,
    form: actix_web::web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    page.check_form(&req, &form.form_token)?;
    if !crate::auth::sessions::end_one(&page.state, &page.session, &req, &page.cookie, &path.into_inner())
        .await?
    {
        return Err(PageError::NotFound);
    }
    Ok(see_other("/sessions?ended=1"))
}

/// `POST /sessions/end-others`: signs out every other browser, back to the list.
pub async fn end_others(
    req: HttpRequest,
    page: SignedIn,
    form: actix_web::web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    page.check_form(&req, &form.form_token)?;
    let n = crate::auth::sessions::end_others_of(&page.state, &page.session, &req, &page.cookie).await?;
    Ok(see_other(&format!("/sessions?ended={n}")))
}

/// Anything else: a path with a trailing slash goes to the page without it (`/chat/` →
/// `/chat`); otherwise the 404 page, with the nav for a signed-in user.
pub async fn not_found(
    req: HttpRequest,
    session: MaybeSession,
    state: actix_web::web::Data<crate::state::AppState>,
    client: actix_web::web::Data<crate::proxy::forward::ProxyClient>,
    cookie: actix_session::Session,
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
    // The nav for a signed-in user, a bare page for anyone else.
    let page = match session.0 {
        Some(session) => Some(SignedIn {
            form_token: super::forms::form_token(&cookie)?,
            session,
            cookie,
            client: client.clone(),
            state: state.clone(),
        }),
        None => None,
    };
    Ok(crate::error::ErrorPage {
        status: 404,
        title: "Page not found",
        message: "There is nothing at this address.",
        action: page.as_ref().map(|_| ("/dashboard", "Go to your dashboard")),
        shell: match &page {
            Some(p) => p.shell(""),
            None => Shell::public(state.demo_banner()),
        },
    }
    .respond())
}
