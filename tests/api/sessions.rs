//! The sessions page and API: users see and end their own sessions, nobody else's.

use crate::helpers::{spawn_app, TestApp};

async fn sign_in(app: &TestApp, user: usize) -> String {
    app.jar.borrow_mut().clear();
    app.login_as(user, "/dashboard").await;
    app.session_cookie().expect("cookie")
}

fn use_cookie(app: &TestApp, cookie: &str) {
    app.use_cookie(cookie);
}

async fn delete(app: &TestApp, id: &str, csrf: bool) -> u16 {
    let mut req = app
        .client
        .delete(format!("{}/api/auth/sessions/{id}", app.origin))
        .insert_header(("Origin", app.origin.as_str()));
    if csrf {
        req = req.insert_header(("X-CSRF", "1"));
    }
    app.send(req, None).await.status
}

#[actix_web::test]
async fn users_list_and_end_their_own_sessions_only() {
    let app = spawn_app().await;
    let laptop = sign_in(&app, 0).await;
    let phone = sign_in(&app, 0).await;
    let bob = sign_in(&app, 1).await;

    use_cookie(&app, &phone);
    let list = app.get("/api/auth/sessions").await.json();
    let sessions = list["sessions"].as_array().expect("list").clone();
    assert_eq!(sessions.len(), 2, "{list}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions
        .iter()
        .all(|s| s["user_agent"].is_string() && s["ip"] == "127.0.0.1"));
    assert!(!list.to_string().contains("eyJ"), "no tokens in the list");
    let laptop_id = sessions.iter().find(|s| s["current"] == false).expect("other")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Bob sees only his own session and cannot end Alice's.
    use_cookie(&app, &bob);
    let bobs = app.get("/api/auth/sessions").await.json();
    assert_eq!(bobs["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(delete(&app, &laptop_id, true).await, 404);
    use_cookie(&app, &laptop);
    assert_eq!(
        app.get("/api/auth/me").await.status,
        200,
        "still alive after Bob's attempt"
    );

    // Without the anti-forgery header: refused.
    use_cookie(&app, &phone);
    assert_eq!(delete(&app, &laptop_id, false).await, 403);
    // Alice ends her laptop's session from her phone.
    assert_eq!(delete(&app, &laptop_id, true).await, 204);
    assert_eq!(
        app.get("/api/auth/sessions").await.json()["sessions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    use_cookie(&app, &laptop);
    assert_eq!(app.get("/api/auth/me").await.status, 401);
    let audit = app.state.store.recent_audit(1).await.expect("audit");
    assert_eq!(audit[0].0, "revoke");
}

#[actix_web::test]
async fn sessions_page_shows_this_device() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/sessions").await.location(),
        "/api/auth/login?returnTo=%2Fsessions"
    );
    let other = sign_in(&app, 0).await;
    // This device: a Chrome on Linux, signed in second.
    app.jar.borrow_mut().clear();
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    let authorize = app.start_login("/sessions").await;
    let callback = app.authorize(&authorize, 0).await;
    app.send(
        app.client.get(&callback).insert_header(("User-Agent", chrome)),
        None,
    )
    .await;
    let page = app.get("/sessions").await;
    assert_eq!(page.status, 200);
    let body = page.text();
    let mine = body.find("Chrome on Linux").expect("a readable device name");
    let this = body.find("This device").expect("this device marked");
    let theirs = body.find("Unknown browser").expect("the other session");
    assert!(mine < this && this < theirs, "this device first: {body}");
    assert!(body.contains("Active now") && body.contains("just now"), "{body}");
    assert!(!body.contains("data-unix"), "no raw Unix times: {body}");
    assert!(body.contains("Sign out all other sessions"));
    // Ending the other one asks first, on a page of its own.
    let list = app.get("/api/auth/sessions").await.json();
    let other_id = list["sessions"][1]["id"].as_str().expect("id").to_owned();
    assert_eq!(list["sessions"][0]["current"], true);
    let confirm = app.get(&format!("/sessions/{other_id}/end")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.text().contains("End this session?"));
    assert!(app.get("/api/auth/sessions").await.status == 200);
    use_cookie(&app, &other);
    assert_eq!(app.get("/api/auth/me").await.status, 200, "not ended by asking");
    app.jar.borrow_mut().clear();
    assert_eq!(app.get("/api/auth/sessions").await.status, 401);
}

#[actix_web::test]
async fn the_session_cache_never_outlives_a_local_sign_out_or_revocation() {
    let app = crate::helpers::spawn_app_with(&[("SESSION_CACHE_MS", "60000")]).await;
    let laptop = sign_in(&app, 0).await;
    let phone = sign_in(&app, 0).await;
    use_cookie(&app, &laptop);
    assert_eq!(app.get("/api/auth/me").await.status, 200, "now cached");
    // Ended from the phone: the laptop's cached copy is dropped with it.
    use_cookie(&app, &phone);
    let list = app.get("/api/auth/sessions").await.json();
    let laptop_id = list["sessions"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["current"] == false))
        .and_then(|s| s["id"].as_str())
        .expect("laptop")
        .to_owned();
    assert_eq!(delete(&app, &laptop_id, true).await, 204);
    use_cookie(&app, &laptop);
    assert_eq!(app.get("/api/auth/me").await.status, 401);
    // And a sign-out.
    use_cookie(&app, &phone);
    assert_eq!(app.get("/api/auth/me").await.status, 200);
    assert_eq!(app.logout().await.status, 200);
    use_cookie(&app, &phone);
    assert_eq!(app.get("/api/auth/me").await.status, 401);
}

fn form_post(app: &TestApp, origin: &str, token: &str) -> (awc::ClientRequest, Vec<u8>) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("form_token", token)
        .finish();
    let req = app
        .client
        .post(format!("{}/signout", app.origin))
        .insert_header(("Origin", origin))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
    (req, body.into_bytes())
}

#[actix_web::test]
async fn the_sign_out_form_works_without_javascript_and_only_with_its_token() {
    let app = spawn_app().await;
    app.login_as(0, "/dashboard").await;
    let token = app.form_token("/dashboard").await;
    assert_eq!(token.len(), 43);
    // Same token on every page of the session.
    assert_eq!(app.form_token("/sessions").await, token);

    for (origin, t) in [
        (app.origin.clone(), "wrong-token".to_owned()),
        ("https://evil.example".to_owned(), token.clone()),
    ] {
        let (req, body) = form_post(&app, &origin, &t);
        let r = app.send(req, Some(body)).await;
        assert_eq!(r.status, 403, "{origin} {t}: {}", r.text());
        assert!(r.text().contains("This request was refused"));
        assert_eq!(app.get("/api/auth/me").await.status, 200, "still signed in");
    }

    let (req, body) = form_post(&app, &app.origin.clone(), &token);
    let r = app.send(req, Some(body)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(
        r.location().contains("/demo/idp/end_session?"),
        "{}",
        r.location()
    );
    assert!(!r.location().contains("id_token_hint"));
    assert_eq!(app.get("/api/auth/me").await.status, 401);
}

#[actix_web::test]
async fn a_state_change_and_a_concurrent_token_rotation_both_survive() {
    let app = spawn_app().await;
    app.login_as(0, "/dashboard").await;
    app.expire_token().await;
    let before = app.session_record().await;
    assert!(before.state.is_empty());
    // The first page view stores the form token (a state write) while the API call
    // refreshes, rotating the refresh token (a token write).
    let (page, api) = futures_util::join!(
        app.get("/dashboard"),
        app.post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
    );
    assert_eq!(page.status, 200);
    assert_eq!(api.status, 200, "{}", api.text());
    let after = app.session_record().await;
    assert!(after.state.contains_key("form_token"), "the state change is kept");
    assert_eq!(after.version, before.version + 1, "the refresh is kept");
    assert_ne!(after.tokens.refresh_token, before.tokens.refresh_token);
    // The rotated refresh token is the one the provider knows: the next refresh works.
    app.expire_token().await;
    let again = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(app.session_record().await.state.contains_key("form_token"));
}

#[actix_web::test]
async fn signing_out_everywhere_else_ends_the_other_browsers_only() {
    let app = spawn_app().await;
    let first = sign_in(&app, 0).await;
    let second = sign_in(&app, 0).await;
    let bob = sign_in(&app, 1).await;
    let here = sign_in(&app, 0).await;
    let r = app.post_api("/api/auth/sessions/end-others", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ended"], 2);
    assert_eq!(app.get("/api/auth/me").await.status, 200, "this browser stays");
    for gone in [&first, &second] {
        use_cookie(&app, gone);
        assert_eq!(app.get("/api/auth/me").await.status, 401);
    }
    use_cookie(&app, &bob);
    assert_eq!(app.get("/api/auth/me").await.status, 200, "Bob is untouched");

    // The page's form does the same, with its token.
    let again = sign_in(&app, 0).await;
    use_cookie(&app, &here);
    let token = app.form_token("/sessions").await;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("form_token", &token)
        .finish();
    let req = app
        .client
        .post(format!("{}/sessions/end-others", app.origin))
        .insert_header(("Origin", app.origin.as_str()))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
    let r = app.send(req, Some(body.into_bytes())).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), "/sessions?ended=1");
    assert!(app
        .get(&r.location())
        .await
        .text()
        .contains("One session was ended."));
    use_cookie(&app, &again);
    assert_eq!(app.get("/api/auth/me").await.status, 401);
}
