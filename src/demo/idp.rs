//! HTTP endpoints of the demo provider: discovery, JWKS, authorize, token, userinfo,
//! revocation and end_session.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use askama::Template;
use base64::{engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{CodeGrant, DemoIdp, Forgery, RefreshGrant, USERS};
use crate::{auth::transaction::pkce_challenge, clock::now, error::html_page, ids::random_token};

/// Mounts the provider under `/demo/idp`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/demo/idp")
            .route("/.well-known/openid-configuration", web::get().to(discovery))
            .route("/jwks", web::get().to(jwks))
            .route("/authorize", web::get().to(authorize_page))
            .route("/authorize", web::post().to(authorize_submit))
            .route("/token", web::post().to(token))
            .route("/userinfo", web::get().to(userinfo))
            .route("/revoke", web::post().to(revoke))
            .route("/end_session", web::get().to(end_session))
            .route("/end_session", web::post().to(end_session_form)),
    );
}

async fn discovery(idp: web::Data<DemoIdp>) -> HttpResponse {
    let i = &idp.issuer;
    HttpResponse::Ok().json(serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "revocation_endpoint": format!("{i}/revoke"),
        "end_session_endpoint": format!("{i}/end_session"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(idp: web::Data<DemoIdp>) -> HttpResponse {
    let mut inner = idp.lock();
    inner.jwks_requests += 1;
    let keys: Vec<_> = inner.keys.iter().map(|k| k.jwk.clone()).collect();
    HttpResponse::Ok().json(serde_json::json!({ "keys": keys }))
}

/// Parameters of an authorization request (query on GET, form on POST).
#[derive(Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    user: Option<usize>,
}

impl DemoIdp {
    /// Refuses requests for another client, callback, flow or without PKCE S256.
    fn check(&self, p: &AuthorizeParams) -> Result<(), &'static str> {
        if p.client_id.as_deref() != Some(self.client_id.as_str()) {
            return Err("unknown client_id");
        }
        if p.redirect_uri.as_deref() != Some(self.redirect_uri.as_str()) {
            return Err("redirect_uri is not registered for this client");
        }
        if p.response_type.as_deref() != Some("code") {
            return Err("only response_type=code is supported");
        }
        if p.code_challenge_method.as_deref() != Some("S256") || p.code_challenge.is_none() {
            return Err("PKCE with S256 is required");
        }
        if !p.scope.as_deref().unwrap_or("").split(' ').any(|s| s == "openid") {
            return Err("scope must include openid");
        }
        Ok(())
    }
}

/// The sign-in page: pick a demo user.
#[derive(Template)]
#[template(path = "demo_authorize.html")]
struct AuthorizePage<'a> {
    shell: crate::dashboard::shell::Shell<'static>,
    users: Vec<(usize, &'a str, &'a str)>,
    hidden: Vec<(&'static str, String)>,
}

async fn authorize_page(idp: web::Data<DemoIdp>, q: web::Query<AuthorizeParams>) -> HttpResponse {
    if let Err(why) = idp.check(&q) {
        return html_page(
            actix_web::http::StatusCode::BAD_REQUEST,
            "Invalid sign-in request",
            why,
        );
    }
    let hidden = [
        ("response_type", &q.response_type),
        ("client_id", &q.client_id),
        ("redirect_uri", &q.redirect_uri),
        ("scope", &q.scope),
        ("state", &q.state),
        ("nonce", &q.nonce),
        ("code_challenge", &q.code_challenge),
        ("code_challenge_method", &q.code_challenge_method),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect();
    let page = AuthorizePage {
        shell: crate::dashboard::shell::Shell::public(true),
        users: USERS.iter().enumerate().map(|(i, u)| (i, u.1, u.2)).collect(),
        hidden,
    };
    match page.render() {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn authorize_submit(idp: web::Data<DemoIdp>, f: web::Form<AuthorizeParams>) -> HttpResponse {
    if let Err(why) = idp.check(&f) {
        return html_page(
            actix_web::http::StatusCode::BAD_REQUEST,
            "Invalid sign-in request",
            why,
        );
    }
    let Some(user) = f.user.filter(|u| *u < USERS.len()) else {
        return html_page(
            actix_web::http::StatusCode::BAD_REQUEST,
            "Invalid sign-in request",
            "pick a user",
        );
    };
    let code = random_token();
    let redirect_uri = f.redirect_uri.clone().unwrap_or_default();
    idp.lock().codes.insert(
        code.clone(),
        CodeGrant {
            user,
            nonce: f.nonce.clone(),
            challenge: f.code_challenge.clone().unwrap_or_default(),
            redirect_uri: redirect_uri.clone(),
            offline: f
                .scope
                .as_deref()
                .unwrap_or("")
                .split(' ')
                .any(|s| s == "offline_access"),
            expires_at: now() + 60,
        },
    );
    let mut url = match url::Url::parse(&redirect_uri) {
        Ok(u) => u,
        Err(_) => return HttpResponse::BadRequest().finish(),
    };
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("iss", &idp.issuer);
    if let Some(s) = &f.state {
        url.query_pairs_mut().append_pair("state", s);
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .finish()
}

#[derive(Deserialize)]
struct TokenForm {
    /// Absent on revocation requests (RFC 7009 has none).
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

fn oauth_error(status: u16, code: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(serde_json::json!({ "error": code }))
}

impl DemoIdp {
    /// Client authentication by Basic header or form fields.
    fn client_authenticated(&self, req: &HttpRequest, f: &TokenForm) -> bool {
        let from_basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                let (id, secret) = s.split_once(':')?;
                let dec = |v: &str| {
                    url::form_urlencoded::parse(format!("v={v}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                Some((dec(id)?, dec(secret)?))
            });
        let (id, secret) = match from_basic {
            Some(pair) => pair,
            None => match (&f.client_id, &f.client_secret) {
                (Some(i), Some(s)) => (i.clone(), s.clone()),
                _ => return false,
            },
        };
        id == self.client_id && secret == self.client_secret.expose_secret()
    }

    /// Signs an id_token for `user`, applying the configured forgery if any.
    fn id_token(
        &self,
        inner: &super::Inner,
        user: usize,
        nonce: Option<&str>,
        sid: &str,
    ) -> anyhow::Result<String> {
        let (sub, name, email) = USERS[user];
        let now = now();
        let mut claims = serde_json::json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": self.client_id,
            "iat": now,
            "exp": now + self.token_ttl.as_secs() as i64,
            "auth_time": now,
            "sid": sid,
            "name": name,
            "email": email,
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        let current = inner
            .keys
            .last()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        match inner.forgery {
            None => current.sign(&claims, &current.kid),
            Some(Forgery::WrongIssuer) => {
                claims["iss"] = "https://evil.example".into();
                current.sign(&claims, &current.kid)
            }
            Some(Forgery::WrongAudience) => {
                claims["aud"] = "another-client".into();
                current.sign(&claims, &current.kid)
            }
            Some(Forgery::Expired) => {
                claims["iat"] = (now - 7200).into();
                claims["exp"] = (now - 3600).into();
                current.sign(&claims, &current.kid)
            }
            Some(Forgery::WrongNonce) => {
                claims["nonce"] = "not-the-nonce".into();
                current.sign(&claims, &current.kid)
            }
            Some(Forgery::WrongSignature) => super::keys::SigningKey::generate()?.sign(&claims, &current.kid),
            Some(Forgery::UnknownKid) => {
                super::keys::SigningKey::generate()?.sign(&claims, "kid-nobody-published")
            }
            Some(Forgery::AlgNone) => {
                let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
                let c = URL_SAFE_NO_PAD.encode(claims.to_string());
                Ok(format!("{h}.{c}."))
            }
            Some(Forgery::Hs256WithPublicKey) => {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                header.kid = Some(current.kid.clone());
                let key = jsonwebtoken::EncodingKey::from_secret(current.public_pem.as_bytes());
                Ok(jsonwebtoken::encode(&header, &claims, &key)?)
            }
        }
    }

    fn issue(
        &self,
        inner: &mut super::Inner,
        user: usize,
        nonce: Option<&str>,
        offline: bool,
        family: Option<(String, String)>,
    ) -> anyhow::Result<serde_json::Value> {
        let (family, sid) = family.unwrap_or_else(|| (random_token(), random_token()[..12].to_owned()));
        let id_token = self.id_token(inner, user, nonce, &sid)?;
        let access = random_token();
        let ttl = self.token_ttl.as_secs() as i64;
        inner.access.insert(access.clone(), (user, now() + ttl));
        let mut body = serde_json::json!({
            "token_type": "Bearer",
            "id_token": id_token,
            "access_token": access,
            "expires_in": ttl,
        });
        if offline {
            let rt = random_token();
            inner
                .refresh
                .insert(rt.clone(), RefreshGrant { user, family, sid });
            body["refresh_token"] = rt.into();
        }
        Ok(body)
    }
}

async fn token(req: HttpRequest, idp: web::Data<DemoIdp>, f: web::Form<TokenForm>) -> HttpResponse {
    if !idp.client_authenticated(&req, &f) {
        return oauth_error(401, "invalid_client");
    }
    let mut inner = idp.lock();
    let result = match f.grant_type.as_deref().unwrap_or("") {
        "authorization_code" => {
            let Some(grant) = f.code.as_ref().and_then(|c| inner.codes.remove(c)) else {
                return oauth_error(400, "invalid_grant");
            };
            let verifier_ok =
                f.code_verifier.as_deref().map(pkce_challenge).as_deref() == Some(grant.challenge.as_str());
            if grant.expires_at < now()
                || f.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str())
                || !verifier_ok
            {
                return oauth_error(400, "invalid_grant");
            }
            idp.issue(
                &mut inner,
                grant.user,
                grant.nonce.as_deref(),
                grant.offline,
                None,
            )
        }
        "refresh_token" => {
            inner.refresh_count += 1;
            let Some(rt) = f.refresh_token.as_deref() else {
                return oauth_error(400, "invalid_request");
            };
            let Some(grant) = inner.refresh.remove(rt) else {
                // Reuse of a rotated token: treat as theft and revoke the whole family.
                if let Some(family) = inner.rotated.get(rt).cloned() {
                    inner.refresh.retain(|_, g| g.family != family);
                }
                return oauth_error(400, "invalid_grant");
            };
            if inner.fail_refresh {
                return oauth_error(400, "invalid_grant");
            }
            inner.rotated.insert(rt.to_owned(), grant.family.clone());
            idp.issue(
                &mut inner,
                grant.user,
                None,
                true,
                Some((grant.family, grant.sid)),
            )
        }
        _ => return oauth_error(400, "unsupported_grant_type"),
    };
    match result {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body),
        Err(e) => {
            tracing::error!(error = %e, "demo provider cannot sign");
            oauth_error(500, "server_error")
        }
    }
}

async fn userinfo(req: HttpRequest, idp: web::Data<DemoIdp>) -> HttpResponse {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let found = token.and_then(|t| idp.lock().access.get(t).copied());
    match found {
        Some((user, exp)) if exp > now() => {
            let (sub, name, email) = USERS[user];
            HttpResponse::Ok().json(serde_json::json!({ "sub": sub, "name": name, "email": email }))
        }
        _ => oauth_error(401, "invalid_token"),
    }
}

async fn revoke(req: HttpRequest, idp: web::Data<DemoIdp>, f: web::Form<TokenForm>) -> HttpResponse {
    if !idp.client_authenticated(&req, &f) {
        return oauth_error(401, "invalid_client");
    }
    if let Some(t) = &f.token {
        let mut inner = idp.lock();
        if let Some(g) = inner.refresh.remove(t) {
            let family = g.family;
            inner.refresh.retain(|_, g| g.family != family);
        }
    }
    HttpResponse::Ok().finish()
}

#[derive(Deserialize)]
struct EndSession {
    post_logout_redirect_uri: Option<String>,
    id_token_hint: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

/// Tells the relying party, server to server, that this provider session ended.
async fn send_backchannel_logout(idp: &DemoIdp, id_token: &str) {
    #[derive(Deserialize)]
    struct Hint {
        sub: String,
        sid: Option<String>,
    }
    // The hint may be expired: only its signature matters here.
    let Ok(header) = jsonwebtoken::decode_header(id_token) else {
        return;
    };
    let hint = {
        let inner = idp.lock();
        let Some(key) = inner.keys.iter().find(|k| Some(&k.kid) == header.kid.as_ref()) else {
            return;
        };
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_exp = false;
        v.set_audience(&[&idp.client_id]);
        v.set_issuer(&[&idp.issuer]);
        jsonwebtoken::decode::<Hint>(id_token, &key.decoding, &v)
            .ok()
            .map(|d| d.claims)
    };
    let Some(hint) = hint else { return };
    let Ok(token) = idp.logout_token(Some(&hint.sub), hint.sid.as_deref()) else {
        return;
    };
    let res = awc::Client::default()
        .post(idp.backchannel_logout_uri())
        .send_form(&[("logout_token", token)])
        .await;
    match res {
        Ok(r) => tracing::info!(
            status = r.status().as_u16(),
            "demo provider sent a back-channel logout"
        ),
        Err(e) => tracing::warn!(error = %e, "demo provider could not deliver a back-channel logout"),
    }
}

/// RP-initiated logout sent as a form POST (how a relying party sends `id_token_hint`
/// without putting it in a URL).
async fn end_session_form(idp: web::Data<DemoIdp>, f: web::Form<EndSession>) -> HttpResponse {
    end_session(idp, web::Query(f.into_inner())).await
}

async fn end_session(idp: web::Data<DemoIdp>, q: web::Query<EndSession>) -> HttpResponse {
    if q.client_id.as_deref().is_some_and(|c| c != idp.client_id) {
        return html_page(
            actix_web::http::StatusCode::BAD_REQUEST,
            "Invalid sign-out request",
            "client_id is not registered",
        );
    }
    if let Some(hint) = &q.id_token_hint {
        send_backchannel_logout(&idp, hint).await;
    }
    match q.post_logout_redirect_uri.as_deref() {
        Some(u) if u == idp.post_logout_redirect_uri => {
            // RP-Initiated Logout: `state` goes back to the relying party unchanged.
            let mut back = url::Url::parse(u).map_err(|_| ()).ok();
            if let (Some(b), Some(st)) = (back.as_mut(), q.state.as_deref()) {
                b.query_pairs_mut().append_pair("state", st);
            }
            let to = back.map(String::from).unwrap_or_else(|| u.to_owned());
            HttpResponse::Found()
                .insert_header((header::LOCATION, to))
                .finish()
        }
        None => HttpResponse::Found()
            .insert_header((header::LOCATION, idp.post_logout_redirect_uri.as_str()))
            .finish(),
        Some(_) => html_page(
            actix_web::http::StatusCode::BAD_REQUEST,
            "Invalid sign-out request",
            "post_logout_redirect_uri is not registered",
        ),
    }
}
