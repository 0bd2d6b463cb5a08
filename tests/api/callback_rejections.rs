//! Every way a callback can be wrong gets a clear 4xx and no session.

use taskflow_bff::demo::Forgery;

use crate::helpers::{assert_is_redirect_to, spawn_app, spawn_app_with, TestApp};

fn with_query(url: &str, drop: &str, set: Option<(&str, &str)>) -> String {
    let mut u = url::Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = u.query_pairs().into_owned().filter(|(k, _)| k != drop).collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some((k, v)) = set {
            q.append_pair(k, v);
        }
    }
    u.into()
}

async fn assert_refused(app: &TestApp, callback: &str, why: &str) {
    let r = app.get(callback).await;
    assert_eq!(r.status, 400, "{why}: {}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{why}"
    );
    assert!(
        r.set_cookie(&app.session_cookie_name()).is_none(),
        "{why}: no session cookie"
    );
    assert_eq!(app.get("/api/auth/me").await.status, 401, "{why}");
}

#[actix_web::test]
async fn state_missing_mismatched_or_replayed_is_refused() {
    let app = spawn_app().await;
    let cb = app.authorize(&app.start_login("/dashboard").await, 0).await;
    assert_refused(&app, &with_query(&cb, "state", None), "state missing").await;
    assert_refused(
        &app,
        &with_query(&cb, "state", Some(("state", "forged"))),
        "state mismatched",
    )
    .await;

    // The real one works once; the login cookie is kept by an attacker to try again.
    let login_cookie = app
        .jar
        .borrow()
        .get(&app.state.login_cookie)
        .cloned()
        .expect("login cookie");
    let ok = app.get(&cb).await;
    assert_eq!(ok.status, 302, "{}", ok.text());
    app.jar.borrow_mut().clear();
    app.jar
        .borrow_mut()
        .insert(app.state.login_cookie.clone(), login_cookie);
    assert_refused(&app, &cb, "state replayed").await;
    let r = app.get(&cb).await;
    assert!(r.text().contains("already used"), "{}", r.text());
}

#[actix_web::test]
async fn callback_without_the_login_cookie_is_refused() {
    let app = spawn_app().await;
    let cb = app.authorize(&app.start_login("/dashboard").await, 0).await;
    app.jar.borrow_mut().clear();
    assert_refused(&app, &cb, "no login cookie (another browser)").await;
}

#[actix_web::test]
async fn callback_with_a_forged_login_cookie_is_refused() {
    let app = spawn_app().await;
    let cb = app.authorize(&app.start_login("/dashboard").await, 0).await;
    app.jar
        .borrow_mut()
        .insert(app.state.login_cookie.clone(), "eyJzdGF0ZSI6ImZvcmdlZCJ9".into());
    assert_refused(&app, &cb, "forged login cookie").await;
}

#[actix_web::test]
async fn wrong_iss_parameter_on_the_response_is_refused() {
    let app = spawn_app().await;
    let cb = app.authorize(&app.start_login("/dashboard").await, 0).await;
    assert_refused(
        &app,
        &with_query(&cb, "iss", Some(("iss", "https://evil.example"))),
        "iss param",
    )
    .await;
}

async fn forged(f: Forgery) {
    let app = spawn_app_with(&[("JWKS_MIN_REFETCH_SECS", "0")]).await;
    app.demo().set_forgery(Some(f));
    let cb = app.authorize(&app.start_login("/dashboard").await, 0).await;
    assert_refused(&app, &cb, &format!("{f:?}")).await;
    // The same browser can sign in once the provider behaves.
    app.demo().set_forgery(None);
    assert_eq!(app.login_as(0, "/dashboard").await.status, 302, "{f:?}");
}

#[actix_web::test]
async fn id_token_with_wrong_signature_is_refused() {
    forged(Forgery::WrongSignature).await;
}

#[actix_web::test]
async fn id_token_with_alg_none_is_refused() {
    forged(Forgery::AlgNone).await;
}

#[actix_web::test]
async fn id_token_hmac_signed_with_the_public_key_is_refused() {
    forged(Forgery::Hs256WithPublicKey).await;
}

#[actix_web::test]
async fn id_token_with_wrong_issuer_is_refused() {
    forged(Forgery::WrongIssuer).await;
}

#[actix_web::test]
async fn id_token_with_wrong_audience_is_refused() {
    forged(Forgery::WrongAudience).await;
}

#[actix_web::test]
async fn expired_id_token_is_refused() {
    forged(Forgery::Expired).await;
}

#[actix_web::test]
async fn id_token_with_wrong_nonce_is_refused() {
    forged(Forgery::WrongNonce).await;
}

#[actix_web::test]
async fn id_token_with_unknown_kid_is_refused_after_one_refetch() {
    let app = spawn_app_with(&[("JWKS_MIN_REFETCH_SECS", "0")]).await;
    app.start_login("/dashboard").await; // discovery and first JWKS fetch
    let before = app.demo().jwks_requests();
    app.demo().set_forgery(Some(Forgery::UnknownKid));
    let cb = app.authorize(&app.start_login("/dashboard").await, 0).await;
    assert_refused(&app, &cb, "unknown kid").await;
    assert_eq!(
        app.demo().jwks_requests(),
        before + 1,
        "one refetch, then refused"
    );
}

#[actix_web::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let app = spawn_app_with(&[("JWKS_MIN_REFETCH_SECS", "3600")]).await;
    app.start_login("/dashboard").await;
    let before = app.demo().jwks_requests();
    app.demo().set_forgery(Some(Forgery::UnknownKid));
    for _ in 0..3 {
        let cb = app.authorize(&app.start_login("/dashboard").await, 0).await;
        assert_refused(&app, &cb, "unknown kid").await;
    }
    assert_eq!(app.demo().jwks_requests(), before, "no refetch storm");
}

#[actix_web::test]
async fn open_redirect_return_to_values_are_refused() {
    let app = spawn_app().await;
    for bad in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
    ] {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("returnTo", bad)
            .finish();
        let r = app.get(&format!("/api/auth/login?{q}")).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.header("location").is_none(), "{bad}");
        assert!(r.text().contains("must be a path on this site"), "{bad}");
        assert!(r.text().contains("id=\"error-action\""), "a link onwards: {bad}");
    }
}

#[actix_web::test]
async fn provider_error_shows_a_fixed_page_with_a_way_to_try_again() {
    let app = spawn_app().await;
    let authorize = app.start_login("/dashboard").await;
    let state = url::Url::parse(&authorize)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let r = app
        .get(&format!(
            "/api/auth/callback?error=access_denied&state={state}&error_description=Call%20%2B1-555%20to%20unlock%20%3Cscript%3E"
        ))
        .await;
    assert_eq!(r.status, 400);
    let body = r.text();
    assert!(body.contains("Sign-in was cancelled"), "{body}");
    assert!(
        body.contains("Try again") && body.contains("/api/auth/login"),
        "{body}"
    );
    assert!(
        !body.contains("555") && !body.contains("unlock"),
        "description never shown: {body}"
    );
    assert!(r
        .set_cookie(&app.state.login_cookie)
        .expect("cleared")
        .contains("Max-Age=0"));
}

#[actix_web::test]
async fn a_crafted_error_link_neither_shows_text_nor_clears_a_sign_in_in_progress() {
    let app = spawn_app().await;
    let authorize = app.start_login("/dashboard").await;
    // Without the right state: no provider text, and the sign-in in progress survives.
    for q in [
        "error=access_denied&error_description=Your%20account%20is%20locked",
        "error=access_denied&state=forged&error_description=Your%20account%20is%20locked",
    ] {
        let r = app.get(&format!("/api/auth/callback?{q}")).await;
        assert_eq!(r.status, 400, "{q}");
        assert!(!r.text().contains("locked"), "{q}: {}", r.text());
        assert!(
            r.set_cookie(&app.state.login_cookie).is_none(),
            "{q}: login cookie kept"
        );
    }
    let callback = app.authorize(&authorize, 0).await;
    assert_is_redirect_to(&app.get(&callback).await, "/dashboard");
}
