//! Sign-out: the session ends here, its tokens are retired, and the browser is sent to the
//! provider's end_session endpoint. Whether the id_token goes along as `id_token_hint` is
//! the operator's choice (`LOGOUT_ID_TOKEN_HINT`): it saves the user a confirmation click at
//! some providers, but shows the browser the very token the backend accepts; when sent, it
//! travels in a POST form body, never in a URL (history, logs, `Referer`).

use actix_session::Session;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{extractor::MaybeSession, provider::Provider};
use crate::{
    error::{ApiError, PageError},
    session::{store::AuditEvent, Tokens},
    state::AppState,
};

/// Retires the tokens of a session that just ended: the refresh token is revoked at the
/// provider (when a client is at hand) and, while legacy cookies are accepted, the id_token
/// is denied until it expires, on every replica sharing the database.
pub async fn retire_tokens(state: &AppState, client: Option<&awc::Client>, tokens: &Tokens) {
    if let (Some(client), Some(rt)) = (client, &tokens.refresh_token) {
        state.provider.revoke(client, rt).await;
    }
    if state.settings.tokens.legacy_cookie.is_some() {
        let leeway = state.provider.leeway().as_secs() as i64;
        let until = Provider::expiry_of(&tokens.id_token).unwrap_or(tokens.expires_at) + leeway;
        if let Err(e) = state.store.revoke_token(&tokens.id_token, until).await {
            tracing::error!(error = %format!("{e:#}"), "cannot record a revoked token");
        }
    }
}

/// `state` of RP-initiated logout: the provider hands it back with the user, and the
/// landing page then says "You are signed out".
pub const SIGNED_OUT_STATE: &str = "signed_out";

/// Where the browser goes after `POST /api/auth/logout`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SignedOut {
    /// URL to open (GET), or the form's action when `fields` is set.
    pub redirect_to: String,
    /// `POST` when the browser must submit `fields` to `redirect_to` as a form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// Form fields for the POST (the `id_token_hint` among them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<(&'static str, String)>>,
}

/// The RP-initiated logout step for `end_session` (OIDC RP-Initiated Logout 1.0).
pub fn end_session_step(
    end_session: &str,
    client_id: &str,
    post_logout: &str,
    hint: Option<&str>,
) -> Option<SignedOut> {
    let mut url = url::Url::parse(end_session).ok()?;
    Some(match hint {
        None => {
            url.query_pairs_mut()
                .append_pair("client_id", client_id)
                .append_pair("post_logout_redirect_uri", post_logout)
                .append_pair("state", SIGNED_OUT_STATE);
            SignedOut {
                redirect_to: url.into(),
                method: None,
                fields: None,
            }
        }
        Some(token) => SignedOut {
            redirect_to: url.into(),
            method: Some("POST"),
            fields: Some(vec![
                ("id_token_hint", token.to_owned()),
                ("client_id", client_id.to_owned()),
                ("post_logout_redirect_uri", post_logout.to_owned()),
                ("state", SIGNED_OUT_STATE.to_owned()),
            ]),
        },
    })
}

/// Ends the browser's session here (row, cookie, tokens, a legacy cookie it still
/// carries) and says where to go next: the provider's end_session, or `/`.
async fn sign_out(
    req: &HttpRequest,
    state: &AppState,
    client: &awc::Client,
    session: Option<super::extractor::CurrentSession>,
    cookie: &Session,
    res: &mut actix_web::HttpResponseBuilder,
) -> Result<SignedOut, ApiError> {
    let mut out = SignedOut {
        redirect_to: "/".into(),
        method: None,
        fields: None,
    };
    if let Some(s) = session {
        state
            .store
            .delete(&s.key_hash)
            .await
            .map_err(ApiError::StoreUnavailable)?;
        state
            .store
            .audit(AuditEvent {
                event: "sign_out",
                sub: Some(&s.record.sub),
                session_id: Some(&s.record.id),
                ip: state.client_ip(req).as_deref(),
                detail: None,
            })
            .await;
        tracing::info!(session = %s.record.id, "signed out");
        // The session layer removes the cookie (and would delete the row, already gone).
        cookie.purge();
        retire_tokens(state, Some(client), &s.record.tokens).await;
        if let Ok(md) = state.provider.metadata(client).await {
            let hint = state
                .settings
                .tokens
                .logout_id_token_hint
                .then_some(s.record.tokens.id_token.as_str());
            let step = md.end_session_endpoint.as_deref().and_then(|end| {
                end_session_step(
                    end,
                    state.provider.client_id(),
                    &format!("{}/", state.origin()),
                    hint,
                )
            });
            if let Some(step) = step {
                out = step;
            }
        }
    }
    res.insert_header((header::CACHE_CONTROL, "no-store"));
    // The Next.js route's cookie, if this browser still has one, ends with the session.
    if let Some(name) = state.settings.tokens.legacy_cookie.as_deref() {
        if let Some(legacy) = req.cookie(name) {
            let token = legacy.value();
            let leeway = state.provider.leeway().as_secs() as i64;
            if let Some(exp) = Provider::expiry_of(token) {
                if let Err(e) = state.store.revoke_token(token, exp + leeway).await {
                    tracing::error!(error = %format!("{e:#}"), "cannot record a revoked token");
                }
            }
            res.cookie(super::transaction::removal_cookie(name, state.secure_cookies));
        }
    }
    Ok(out)
}

/// `POST /api/auth/logout`: ends the session and answers where to go next as JSON.
#[tracing::instrument(name = "logout", skip_all)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    session: MaybeSession,
    cookie: Session,
) -> Result<HttpResponse, ApiError> {
    let mut res = HttpResponse::Ok();
    let out = sign_out(&req, &state, &client, session.0, &cookie, &mut res).await?;
    Ok(res.json(out))
}

/// The sign-out form's fields.
#[derive(serde::Deserialize)]
pub struct SignOutForm {
    form_token: String,
}

/// The page that posts the id_token hint to the provider (auto-submitted by app.js).
#[derive(askama::Template)]
#[template(path = "signout.html")]
struct PostToProvider<'a> {
    shell: crate::dashboard::shell::Shell<'static>,
    action: &'a str,
    fields: &'a [(&'static str, String)],
}

/// `POST /signout`: the Sign out form of every page; works without JavaScript. Answers a
/// redirect to the provider's end_session (or `/`), or, when the id_token hint is sent, a
/// page whose form posts it there.
#[tracing::instrument(name = "signout_form", skip_all)]
pub async fn signout_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    session: MaybeSession,
    cookie: Session,
    form: web::Form<SignOutForm>,
) -> Result<HttpResponse, PageError> {
    if session.0.is_some() {
        crate::dashboard::forms::check(&req, state.origin(), &cookie, &form.form_token)?;
    }
    let mut res = HttpResponse::SeeOther();
    let out = sign_out(&req, &state, &client, session.0, &cookie, &mut res)
        .await
        .map_err(PageError::from)?;
    match &out.fields {
        Some(fields) => {
            let page = PostToProvider {
                shell: crate::dashboard::shell::Shell::public(state.demo_banner()),
                action: &out.redirect_to,
                fields,
            };
            let body = askama::Template::render(&page).map_err(|e| PageError::Unexpected(e.into()))?;
            res.status(actix_web::http::StatusCode::OK);
            Ok(res.content_type("text/html; charset=utf-8").body(body))
        }
        None => {
            let to = if out.redirect_to == "/" {
                "/?signed_out=1"
            } else {
                out.redirect_to.as_str()
            };
            Ok(res.insert_header((header::LOCATION, to)).finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_hint_the_token_never_reaches_the_url() {
        let step = end_session_step("https://id.example/end", "c1", "https://app/", None).expect("url");
        assert_eq!(
            step.redirect_to,
            "https://id.example/end?client_id=c1&post_logout_redirect_uri=https%3A%2F%2Fapp%2F&state=signed_out"
        );
        assert!(step.fields.is_none());
    }

    #[test]
    fn with_the_hint_it_travels_in_a_post_body() {
        let step =
            end_session_step("https://id.example/end", "c1", "https://app/", Some("eyJ.x.y")).expect("url");
        assert_eq!(step.redirect_to, "https://id.example/end");
        assert_eq!(step.method, Some("POST"));
        let fields = step.fields.expect("fields");
        assert!(fields.contains(&("id_token_hint", "eyJ.x.y".into())));
        assert!(!step.redirect_to.contains("eyJ"));
    }
}
