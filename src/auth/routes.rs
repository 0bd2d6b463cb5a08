//! Sign-in, callback and `me`.

use actix_session::Session;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{
    extractor::{CurrentSession, MaybeSession},
    provider::{IdClaims, TokenError, TokenResponse},
    refresh::forward_expiry,
    return_to::{validate_return_to, DEFAULT_RETURN_TO},
    transaction::{pkce_challenge, removal_cookie, LoginTransaction, LOGIN_TTL_SECS},
};
use crate::{
    clock::now,
    error::PageError,
    ids::sha256_hex,
    session::{cookie::STAGED_ENTRY, store::AuditEvent, SessionMeta, SessionRecord, Tokens},
    state::AppState,
};

/// Query of `GET /api/auth/login`.
#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(rename = "returnTo")]
    return_to: Option<String>,
}

/// Starts Authorization Code + PKCE: sets the login cookie and redirects to the provider.
#[tracing::instrument(name = "login", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let return_to = match query.return_to.as_deref() {
        None => DEFAULT_RETURN_TO,
        Some(raw) => validate_return_to(raw).ok_or(PageError::BadReturnTo)?,
    };
    let md = state
        .provider
        .metadata(&client)
        .await
        .map_err(PageError::IdpUnavailable)?;
    let tx = LoginTransaction::new(return_to.to_owned());
    let mut url = url::Url::parse(&md.authorization_endpoint)
        .map_err(|e| PageError::IdpUnavailable(anyhow::anyhow!("bad authorization_endpoint: {e}")))?;
    {
        let oidc = state.provider.settings();
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &oidc.client_id)
            .append_pair("redirect_uri", state.provider.redirect_uri())
            .append_pair("scope", &oidc.scopes)
            .append_pair("state", &tx.state)
            .append_pair("nonce", &tx.nonce)
            .append_pair("code_challenge", &pkce_challenge(&tx.verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = &oidc.prompt {
            q.append_pair("prompt", p);
        }
    }
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(tx.to_cookie(&state.login_cookie, state.secure_cookies, &state.keys))
        .finish())
}

/// Query of `GET /api/auth/callback`.
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// Fixed text for an authorization error code (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6); the
/// provider's `error_description` is never shown: anyone can put text into that link.
fn provider_error_text(code: &str) -> (&'static str, &'static str) {
    match code {
        "access_denied" => (
            "Sign-in was cancelled",
            "The sign-in was cancelled at the identity provider, or it refused access.",
        ),
        "login_required" | "interaction_required" | "consent_required" | "account_selection_required" => (
            "Sign-in needs you",
            "The identity provider needs you to sign in or give consent before you can continue.",
        ),
        "temporarily_unavailable" | "server_error" => (
            "Identity provider unavailable",
            "The identity provider could not complete the sign-in right now. Please try again in a moment.",
        ),
        _ => (
            "Sign-in was not completed",
            "The identity provider could not complete the sign-in.",
        ),
    }
}

/// Finishes sign-in: verify the response → exchange the code and validate the id_token →
/// create the session; then redirect to the saved returnTo.
#[tracing::instrument(name = "callback", skip_all)]
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    query: web::Query<CallbackQuery>,
    previous: MaybeSession,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let res = finish_sign_in(&req, &state, &client, query.into_inner(), previous, session).await;
    let failed = res.as_ref().map_or(true, |r| !r.status().is_redirection());
    if failed {
        state
            .metrics
            .login_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    res
}

/// What the callback may go on with once the response is verified.
enum Verified {
    /// A code to exchange, for this browser's login transaction.
    Code(String, LoginTransaction),
    /// Answer this at once (a provider error, a signed-in user on a used callback).
    Done(HttpResponse),
}

async fn finish_sign_in(
    req: &HttpRequest,
    state: &AppState,
    client: &awc::Client,
    q: CallbackQuery,
    previous: MaybeSession,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let (code, tx) = match verify_response(req, state, client, q, previous.0.is_some()).await? {
        Verified::Code(code, tx) => (code, tx),
        Verified::Done(res) => return Ok(res),
    };
    let signed_in = exchange_and_validate(state, client, &code, &tx).await?;
    let record = new_session(req, state, signed_in);
    state
        .store
        .audit(AuditEvent {
            event: "sign_in",
            sub: Some(&record.sub),
            session_id: Some(&record.id),
            ip: record.ip.as_deref(),
            detail: None,
        })
        .await;
    tracing::info!(session = %record.id, "signed in");
    state
        .metrics
        .logins
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A fresh key (no fixation): the session layer drops whatever session the browser had
    // and stores this one under a new key when the response goes out.
    session.renew();
    session
        .insert(STAGED_ENTRY, state.store.stage(record))
        .map_err(|e| PageError::Unexpected(anyhow::anyhow!("cannot stage the session: {e}")))?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, tx.return_to.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(removal_cookie(&state.login_cookie, state.secure_cookies))
        .finish())
}

/// The login cookie and its state come first: a crafted link (with `error=` or not) can
/// neither show text on our origin nor clear a sign-in in progress. Then the provider's
/// error, the issuer (RFC 9207) and single use of the state.
async fn verify_response(
    req: &HttpRequest,
    state: &AppState,
    client: &awc::Client,
    q: CallbackQuery,
    signed_in: bool,
) -> Result<Verified, PageError> {
    let refuse = PageError::BadRequest;
    let Some(tx) = LoginTransaction::from_request(req, &state.login_cookie, &state.keys) else {
        if signed_in {
            // Back to a used callback while signed in: nothing to finish, go on working.
            return Ok(Verified::Done(
                HttpResponse::Found()
                    .insert_header((header::LOCATION, DEFAULT_RETURN_TO))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish(),
            ));
        }
        return Err(refuse(
            "No sign-in is in progress in this browser, or it took too long. Please sign in again.".into(),
        ));
    };
    if q.state.as_deref() != Some(tx.state.as_str()) {
        return Err(refuse(
            "The sign-in response does not belong to this browser's sign-in.".into(),
        ));
    }
    if let Some(err) = q.error.as_deref() {
        let (title, message) = provider_error_text(err);
        tracing::info!(error = ?err.chars().take(64).collect::<String>(), "provider returned an error");
        let mut page = actix_web::ResponseError::error_response(&PageError::SignInFailed { title, message });
        let _ = page.add_cookie(&removal_cookie(&state.login_cookie, state.secure_cookies));
        return Ok(Verified::Done(page));
    }
    let Some(code) = q.code else {
        return Err(refuse("The sign-in response is missing its code.".into()));
    };
    let md = state
        .provider
        .metadata(client)
        .await
        .map_err(PageError::IdpUnavailable)?;
    match q.iss.as_deref() {
        Some(iss) if iss != md.issuer => {
            return Err(refuse("The sign-in response comes from another issuer.".into()))
        }
        None if md.authorization_response_iss_parameter_supported => {
            return Err(refuse("The sign-in response lacks its issuer.".into()))
        }
        _ => {}
    }
    let fresh = state
        .store
        .consume_state(&sha256_hex(&tx.state), tx.started_at + LOGIN_TTL_SECS, now())
        .await
        .map_err(PageError::StoreUnavailable)?;
    if !fresh {
        return Err(refuse("This sign-in response was already used.".into()));
    }
    Ok(Verified::Code(code, tx))
}

/// What the provider said about the user.
struct SignedIn {
    tokens: TokenResponse,
    id_token: String,
    claims: IdClaims,
    name: Option<String>,
    email: Option<String>,
}

/// Exchanges the code (within the token-endpoint budget), validates the id_token with the
/// transaction's nonce, and reads name and email from userinfo (id_token claims otherwise).
async fn exchange_and_validate(
    state: &AppState,
    client: &awc::Client,
    code: &str,
    tx: &LoginTransaction,
) -> Result<SignedIn, PageError> {
    let refuse = PageError::BadRequest;
    // Each code exchange is a call to a token endpoint that providers rate-limit per client.
    // Spent only by a state redeemed just now: replaying one sign-in cannot drain it.
    if let Some(wait) = crate::limits::take(&state.code_exchanges) {
        tracing::warn!(retry_after_secs = wait, "code exchanges over budget");
        return Err(PageError::RateLimited(wait));
    }
    let tokens = state
        .provider
        .exchange_code(client, code, &tx.verifier)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "code exchange failed");
            refuse("The identity provider did not accept the sign-in. Please try again.".into())
        })?;
    let id_token = tokens
        .id_token
        .clone()
        .ok_or_else(|| refuse("The identity provider returned no id_token.".into()))?;
    let claims = state
        .provider
        .validate_id_token(client, &id_token, Some(&tx.nonce))
        .await
        .map_err(|e| match e {
            TokenError::Keys(e) => PageError::IdpUnavailable(e),
            TokenError::Invalid(why) => {
                tracing::warn!(reason = %why, "id_token rejected");
                refuse("The identity provider's answer could not be verified.".into())
            }
        })?;
    let profile = match tokens.access_token.as_deref() {
        Some(at) => match state.provider.userinfo(client, at).await {
            Ok(p) => p.filter(|p| p.sub == claims.sub),
            Err(e) => {
                tracing::warn!(error = %e, "userinfo failed; using id_token claims");
                None
            }
        },
        None => None,
    };
    let (name, email) = match profile {
        Some(p) => (p.name.or(claims.name.clone()), p.email.or(claims.email.clone())),
        None => (claims.name.clone(), claims.email.clone()),
    };
    Ok(SignedIn {
        tokens,
        id_token,
        claims,
        name,
        email,
    })
}

/// A new session for the signed-in user, with the idle and absolute deadlines.
fn new_session(req: &HttpRequest, state: &AppState, s: SignedIn) -> SessionRecord {
    let now = now();
    let settings = &state.settings;
    SessionRecord::new(
        SessionMeta {
            id: uuid::Uuid::new_v4().to_string(),
            sub: s.claims.sub.clone(),
            sid: s.claims.sid.clone(),
            name: s.name,
            email: s.email,
            version: 0,
            created_at: now,
            last_seen: now,
            idle_expires_at: now + settings.session.idle.as_secs() as i64,
            expires_at: now + settings.session.absolute.as_secs() as i64,
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
            ip: state.client_ip(req),
            state: Default::default(),
        },
        Tokens {
            id_token: s.id_token,
            access_token: s.tokens.access_token,
            refresh_token: s.tokens.refresh_token,
            expires_at: forward_expiry(settings.tokens.forward_token, s.claims.exp, s.tokens.expires_in),
            issued_at: now,
            bearer: Default::default(),
        },
    )
}

/// Who is signed in: what the client uses for isAuthenticated/userId.
pub async fn me(session: CurrentSession) -> HttpResponse {
    let r = &session.record;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "sub": r.sub,
            "name": r.name,
            "email": r.email,
            "session_id": r.id,
            "created_at": r.created_at,
            "expires_at": r.expires_at.min(r.idle_expires_at),
        }))
}
