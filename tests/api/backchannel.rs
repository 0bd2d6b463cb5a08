//! OIDC Back-Channel Logout: valid tokens end the matching sessions, bad ones get 400.

use serde_json::json;
use taskflow_bff::clock::now;

use crate::helpers::{spawn_app, TestApp};

async fn post_logout(app: &TestApp, token: &str) -> crate::helpers::Resp {
    // Server to server: no browser headers, no cookies.
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish();
    let req = app
        .client
        .post(format!("{}/api/auth/backchannel-logout", app.origin))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
    let mut res = req.send_body(body).await.expect("sent");
    let body = res.body().await.expect("body");
    crate::helpers::Resp {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

/// Signs in as `user` in a fresh jar; returns (cookie, provider sid).
async fn session_of(app: &TestApp, user: usize) -> (String, String) {
    app.jar.borrow_mut().clear();
    app.login_as(user, "/dashboard").await;
    let cookie = app.session_cookie().expect("session");
    let rec = app.session_record().await;
    (cookie, rec.sid.clone().expect("the demo provider sends sid"))
}

async fn alive(app: &TestApp, cookie: &str) -> bool {
    app.jar.borrow_mut().clear();
    app.jar
        .borrow_mut()
        .insert(app.session_cookie_name(), cookie.to_owned());
    app.get("/api/auth/me").await.status == 200
}

#[actix_web::test]
async fn logout_token_with_sid_ends_that_session_only() {
    let app = spawn_app().await;
    let (first, sid1) = session_of(&app, 0).await;
    let (second, _) = session_of(&app, 0).await;
    let token = app.demo().logout_token(None, Some(&sid1)).expect("token");
    let r = post_logout(&app, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!alive(&app, &first).await);
    assert!(alive(&app, &second).await);
    let audit = app.state.store.recent_audit(1).await.expect("audit");
    assert_eq!(audit[0].0, "backchannel_logout");
}

#[actix_web::test]
async fn logout_token_with_sub_ends_every_session_of_that_user() {
    let app = spawn_app().await;
    let (a1, _) = session_of(&app, 0).await;
    let (a2, _) = session_of(&app, 0).await;
    let (bob, _) = session_of(&app, 1).await;
    let token = app
        .demo()
        .logout_token(Some("usr_7Hq2LmX9aP"), None)
        .expect("token");
    assert_eq!(post_logout(&app, &token).await.status, 200);
    assert!(!alive(&app, &a1).await && !alive(&app, &a2).await);
    assert!(alive(&app, &bob).await, "Bob is untouched");
}

#[actix_web::test]
async fn replayed_logout_token_is_refused() {
    let app = spawn_app().await;
    let (_, sid) = session_of(&app, 0).await;
    let token = app.demo().logout_token(None, Some(&sid)).expect("token");
    assert_eq!(post_logout(&app, &token).await.status, 200);
    let again = post_logout(&app, &token).await;
    assert_eq!(again.status, 400);
    assert!(again.text().contains("already used"));
}

#[actix_web::test]
async fn malformed_logout_tokens_are_refused_and_end_nothing() {
    let app = spawn_app().await;
    let (cookie, sid) = session_of(&app, 0).await;
    let demo = app.demo();
    let base = || {
        json!({
            "iss": demo.issuer, "aud": demo.client_id, "iat": now(), "exp": now() + 60,
            "jti": uuid::Uuid::new_v4().to_string(), "sid": sid,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        })
    };
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut c = base();
    c.as_object_mut().expect("object").remove("events");
    cases.push(("no event", demo.sign_jwt(&c, "logout+jwt").expect("sign")));
    let mut c = base();
    c["nonce"] = "n".into();
    cases.push(("nonce present", demo.sign_jwt(&c, "logout+jwt").expect("sign")));
    let mut c = base();
    c["aud"] = "another-client".into();
    cases.push(("wrong aud", demo.sign_jwt(&c, "logout+jwt").expect("sign")));
    let mut c = base();
    c["iss"] = "https://evil.example".into();
    cases.push(("wrong iss", demo.sign_jwt(&c, "logout+jwt").expect("sign")));
    let mut c = base();
    c.as_object_mut().expect("object").remove("sid");
    cases.push(("no sid or sub", demo.sign_jwt(&c, "logout+jwt").expect("sign")));
    let mut c = base();
    c.as_object_mut().expect("object").remove("jti");
    cases.push(("no jti", demo.sign_jwt(&c, "logout+jwt").expect("sign")));
    cases.push(("wrong typ", demo.sign_jwt(&base(), "at+jwt").expect("sign")));
    let mut c = base();
    c["iat"] = (now() + 3600).into();
    cases.push((
        "issued in the future",
        demo.sign_jwt(&c, "logout+jwt").expect("sign"),
    ));
    let good = demo.sign_jwt(&base(), "logout+jwt").expect("sign");
    let (head, _) = good.rsplit_once('.').expect("jwt");
    cases.push(("bad signature", format!("{head}.AAAA")));
    cases.push(("not a JWT", "garbage".into()));
    for (why, token) in cases {
        let r = post_logout(&app, &token).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_request", "{why}");
    }
    let r = post_logout(&app, "").await;
    assert_eq!(r.status, 400);
    assert!(alive(&app, &cookie).await, "nothing was ended");
}

#[actix_web::test]
async fn signing_out_at_the_provider_ends_the_session_here() {
    let app = spawn_app().await;
    let (cookie, _) = session_of(&app, 0).await;
    let rec = app.session_record().await;
    // The user signs out at the provider directly (another app, or the provider's own page).
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", &rec.tokens.id_token)
        .append_pair("post_logout_redirect_uri", &format!("{}/", app.origin))
        .finish();
    let r = app.get(&format!("/demo/idp/end_session?{q}")).await;
    assert_eq!(r.status, 302);
    assert!(
        !alive(&app, &cookie).await,
        "the provider's back-channel logout reached us"
    );
}
