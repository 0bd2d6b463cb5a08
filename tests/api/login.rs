//! The sign-in flow end to end against the demo provider.

use crate::helpers::{assert_is_redirect_to, spawn_app, spawn_app_with};

#[actix_web::test]
async fn full_login_flow_sets_a_safe_cookie_and_logout_deletes_the_session() {
    let app = spawn_app().await;
    let r = app.login_as(0, "/dashboard?tab=1").await;
    assert_is_redirect_to(&r, "/dashboard?tab=1");

    let cookie = r
        .set_cookie(&app.session_cookie_name())
        .expect("session cookie set");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http demo: {cookie}");
    let value = app.session_cookie().expect("cookie in jar");
    assert!(
        !value.contains('.') && !value.contains("eyJ"),
        "not a JWT: {value}"
    );
    assert!(
        cookie.contains("Max-Age="),
        "persists for the session's lifetime: {cookie}"
    );
    // An encrypted random key: it names the stored session, whose tokens are not in it.
    let record = app.session_record().await;
    assert!(!value.contains(&app.session_key_hash()));
    assert!(!value.contains(&record.tokens.id_token[..20]));
    // The login transaction cookie is gone.
    assert!(r
        .set_cookie(&app.state.login_cookie)
        .expect("cleared")
        .contains("Max-Age=0"));

    let me = app.get("/api/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["name"], "Alice Example");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["sub"], "usr_7Hq2LmX9aP");
    assert!(me["expires_at"].as_i64().expect("expiry") > 0);

    let out = app.logout().await;
    assert_eq!(out.status, 200, "{}", out.text());
    let redirect = out.json()["redirect_to"].as_str().expect("redirect").to_owned();
    assert!(
        redirect.starts_with(&format!("{}/demo/idp/end_session?", app.origin)),
        "{redirect}"
    );
    // The forwarded token never reaches the browser by default: client_id names us instead.
    assert!(!redirect.contains("id_token_hint"), "{redirect}");
    assert!(redirect.contains("client_id=taskflow-demo"), "{redirect}");
    assert!(redirect.contains(&format!(
        "post_logout_redirect_uri={}",
        url::form_urlencoded::byte_serialize(format!("{}/", app.origin).as_bytes()).collect::<String>()
    )));
    assert!(out
        .set_cookie(&app.session_cookie_name())
        .expect("cleared")
        .contains("Max-Age=0"));
    assert_eq!(app.get("/api/auth/me").await.status, 401);

    // Replaying the old cookie: the session is gone server-side, not only from the browser.
    app.jar.borrow_mut().insert(app.session_cookie_name(), value);
    let replay = app.get("/api/auth/me").await;
    assert_eq!(replay.status, 401);
    assert_eq!(replay.json()["error"], "not_authenticated");

    // The provider's end_session sends the browser back to us.
    let back = app.get(&redirect).await;
    assert_is_redirect_to(&back, &format!("{}/?state=signed_out", app.origin));
    let landing = app.get(&back.location()).await;
    assert!(
        landing.text().contains("You are signed out"),
        "{}",
        landing.text()
    );
}

#[actix_web::test]
async fn session_id_is_new_after_login_and_planted_cookies_are_ignored() {
    let app = spawn_app().await;
    let planted = "A".repeat(43);
    app.jar
        .borrow_mut()
        .insert(app.session_cookie_name(), planted.clone());
    assert_eq!(app.get("/api/auth/me").await.status, 401);

    app.login_as(0, "/dashboard").await;
    let first = app.session_cookie().expect("cookie");
    assert_ne!(first, planted);

    // Signing in again (as Bob) rotates the id and ends the previous session.
    app.login_as(1, "/dashboard").await;
    let second = app.session_cookie().expect("cookie");
    assert_ne!(second, first);
    assert_eq!(app.get("/api/auth/me").await.json()["name"], "Bob Example");
    app.jar.borrow_mut().insert(app.session_cookie_name(), first);
    assert_eq!(app.get("/api/auth/me").await.status, 401);
}

#[actix_web::test]
async fn tokens_are_encrypted_at_rest_and_the_key_is_stored_hashed() {
    let app = spawn_app().await;
    app.login_as(0, "/dashboard").await;
    let key = app.session_cookie().expect("cookie");
    let url = app.state.settings.session.database_url.clone();
    let pool = sqlx::SqlitePool::connect(&url).await.expect("db");
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT key_hash, tokens FROM sessions")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    let (hash, blob) = &rows[0];
    assert_ne!(hash, &key, "the cookie value is not the primary key");
    let text = String::from_utf8_lossy(blob);
    assert!(!text.contains("eyJ"), "no JWT in clear: {text}");
    assert!(!text.contains("refresh"), "no token JSON in clear");
    let audit: Vec<(String,)> = sqlx::query_as("SELECT event FROM audit_log")
        .fetch_all(&pool)
        .await
        .expect("audit");
    assert_eq!(audit, vec![("sign_in".to_owned(),)]);
}

#[actix_web::test]
async fn anonymous_visitors_create_no_rows() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.start_login("/dashboard").await;
    }
    assert_eq!(session_rows(&app).await, 0);
}

#[actix_web::test]
async fn authorization_request_uses_pkce_s256_state_and_nonce() {
    let app = spawn_app().await;
    let url = url::Url::parse(&app.start_login("/dashboard").await).expect("url");
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert_ne!(q["state"], q["nonce"]);
    assert!(q["scope"].split(' ').any(|s| s == "offline_access"));
    assert_eq!(q["redirect_uri"], format!("{}/api/auth/callback", app.origin));
}

#[actix_web::test]
async fn key_rotation_at_the_provider_is_picked_up_without_restart() {
    let app = spawn_app_with(&[("JWKS_MIN_REFETCH_SECS", "0")]).await;
    app.login_as(0, "/dashboard").await;
    assert_eq!(app.get("/api/auth/me").await.status, 200);
    let before = app.demo().jwks_requests();
    app.demo().rotate_key().expect("new key");
    let r = app.login_as(1, "/dashboard").await;
    assert_is_redirect_to(&r, "/dashboard");
    assert_eq!(app.get("/api/auth/me").await.json()["name"], "Bob Example");
    assert_eq!(
        app.demo().jwks_requests(),
        before + 1,
        "exactly one refetch for the new kid"
    );
}

#[actix_web::test]
async fn an_idle_session_ends_and_the_absolute_lifetime_caps_it() {
    let app = spawn_app_with(&[("SESSION_IDLE_SECS", "1"), ("SESSION_ABSOLUTE_SECS", "60")]).await;
    app.login_as(0, "/dashboard").await;
    let me = app.get("/api/auth/me").await.json();
    let created = me["created_at"].as_i64().expect("created_at");
    assert!(
        me["expires_at"].as_i64().expect("expires_at") <= created + 1,
        "idle deadline first"
    );
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app.get("/api/auth/me").await;
    assert_eq!(r.status, 401, "unused for longer than SESSION_IDLE_SECS");
    assert_eq!(
        session_rows(&app).await,
        0,
        "the expired session was deleted, not just refused"
    );

    let capped = spawn_app_with(&[("SESSION_IDLE_SECS", "3600"), ("SESSION_ABSOLUTE_SECS", "3600")]).await;
    capped.login_as(0, "/dashboard").await;
    let me = capped.get("/api/auth/me").await.json();
    let created = me["created_at"].as_i64().expect("created_at");
    assert_eq!(me["expires_at"].as_i64(), Some(created + 3600));
}

/// Rows in the app's sessions table, read directly from its SQLite file.
async fn session_rows(app: &crate::helpers::TestApp) -> i64 {
    let pool = sqlx::SqlitePool::connect(&app.state.settings.session.database_url)
        .await
        .expect("db");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
        .fetch_one(&pool)
        .await
        .expect("count");
    n
}

#[actix_web::test]
async fn a_burst_due_for_a_touch_is_served_and_moves_the_idle_deadline() {
    let app = spawn_app_with(&[("SESSION_IDLE_SECS", "600")]).await;
    app.login_as(0, "/dashboard").await;
    let hash = app.session_key_hash();
    let t = taskflow_bff::clock::now();
    // Last used two minutes ago, idle deadline close.
    app.state
        .store
        .touch(&hash, t - 120, t + 30, t + 3600)
        .await
        .expect("touch");
    let burst = futures_util::future::join_all((0..20).map(|_| app.get("/api/auth/me"))).await;
    assert!(burst.iter().all(|r| r.status == 200), "the burst is served");
    let mut row = None;
    for _ in 0..50 {
        let r = app.state.store.load(&hash).await.expect("store").expect("row");
        if r.last_seen >= t {
            row = Some(r);
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let row = row.expect("the activity was recorded");
    assert!(
        row.idle_expires_at >= t + 590,
        "idle deadline moved: {}",
        row.idle_expires_at
    );
}
