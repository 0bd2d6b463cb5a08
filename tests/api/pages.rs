//! Pages, static assets, headers and probes.

use crate::helpers::spawn_app;

#[actix_web::test]
async fn landing_page_offers_sign_in_and_shows_the_demo_banner() {
    let app = spawn_app().await;
    let r = app.get("/").await;
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("Sign in") && body.contains("/api/auth/login?returnTo="));
    assert!(body.contains("Demo mode"));
    let csp = r.header("content-security-policy").expect("CSP on HTML");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert!(r.header("referrer-policy").is_some());
    assert!(
        r.header("strict-transport-security").is_none(),
        "no HSTS on plain http"
    );
    assert_eq!(r.header("x-request-id").map(|v| v.len()), Some(36));
}

#[actix_web::test]
async fn pages_need_a_session_and_redirect_to_login_with_return_to() {
    let app = spawn_app().await;
    let r = app.get("/dashboard").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.location(), "/api/auth/login?returnTo=%2Fdashboard");

    let r = app.login_as(0, "/dashboard").await;
    assert_eq!(r.location(), "/dashboard");
    let page = app.get("/dashboard").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Alice Example"));
    assert!(page.text().contains("Sign out"));
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    // Signed-in users skip the landing page.
    assert_eq!(app.get("/").await.location(), "/dashboard");
}

#[actix_web::test]
async fn static_assets_have_validators_and_fingerprinted_ones_are_immutable() {
    let app = spawn_app().await;
    let r = app.get("/static/css/app.css").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/css"));
    let etag = r.header("etag").expect("ETag");
    assert!(r.header("last-modified").is_some());
    assert_eq!(r.header("cache-control").as_deref(), Some("no-cache"));

    let again = app
        .send(
            app.client
                .get(format!("{}/static/css/app.css", app.origin))
                .insert_header(("If-None-Match", etag)),
            None,
        )
        .await;
    assert_eq!(again.status, 304);

    let v = app.get("/static/css/app.css?v=abc123").await;
    assert_eq!(
        v.header("cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
}

#[actix_web::test]
async fn path_traversal_and_unknown_pages_get_404_pages() {
    let app = spawn_app().await;
    for p in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%5cCargo.toml",
        "/nope",
    ] {
        let r = app.get(p).await;
        assert!(matches!(r.status, 404 | 400), "{p}: {}", r.status);
        assert!(!r.text().contains("[package]"), "{p} leaked a file");
    }
    let r = app.get("/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("Page not found"));
    let api = app.get("/api/nope").await;
    assert_eq!(api.status, 404);
    assert_eq!(api.json()["error"], "not_found");
}

#[actix_web::test]
async fn unsafe_api_requests_need_same_origin_and_the_csrf_header() {
    let app = spawn_app().await;
    app.login_as(0, "/dashboard").await;
    let cross = app
        .send(
            app.client
                .post(format!("{}/api/auth/logout", app.origin))
                .insert_header(("Origin", "https://evil.example"))
                .insert_header(("X-CSRF", "1")),
            None,
        )
        .await;
    assert_eq!(cross.status, 403);
    assert_eq!(cross.json()["error"], "cross_site_request");
    let no_header = app
        .send(
            app.client
                .post(format!("{}/api/auth/logout", app.origin))
                .insert_header(("Origin", app.origin.as_str())),
            None,
        )
        .await;
    assert_eq!(no_header.status, 403);
    assert_eq!(no_header.json()["error"], "csrf_header_missing");
    assert_eq!(app.get("/api/auth/me").await.status, 200, "still signed in");
    let fetch_meta = app
        .send(
            app.client
                .post(format!("{}/api/auth/logout", app.origin))
                .insert_header(("Sec-Fetch-Site", "same-origin"))
                .insert_header(("X-CSRF", "1")),
            None,
        )
        .await;
    assert_eq!(fetch_meta.status, 200);
    assert_eq!(app.get("/api/auth/me").await.status, 401);
}

#[actix_web::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let h = app.get("/healthz").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    let r = app.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["store"], true);
    assert_eq!(r.json()["identity_provider"], true);
}

#[actix_web::test]
async fn pages_link_fingerprinted_assets() {
    let app = spawn_app().await;
    let body = app.get("/").await.text();
    let start = body.find("/static/css/app.css?v=").expect("versioned CSS link");
    let url: String = body[start..].chars().take_while(|c| *c != '"').collect();
    let r = app.get(&url).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
}

#[actix_web::test]
async fn demo_mode_refuses_a_non_loopback_bind() {
    let vars = [("BIND_ADDR".to_owned(), "0.0.0.0:0".to_owned())]
        .into_iter()
        .collect();
    let settings = taskflow_bff::config::Settings::from_map(&vars).expect("settings");
    let err = taskflow_bff::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("demo mode refuses to listen on 0.0.0.0"),
        "{err}"
    );
}

#[actix_web::test]
async fn a_signed_in_user_lost_on_a_404_keeps_the_nav_and_a_way_back() {
    let app = spawn_app().await;
    let anonymous = app.get("/no-such-page").await;
    assert_eq!(anonymous.status, 404);
    assert!(!anonymous.text().contains("id=\"signout\""));
    app.login_as(0, "/dashboard").await;
    let page = app.get("/no-such-page").await;
    assert_eq!(page.status, 404);
    let body = page.text();
    assert!(
        body.contains("id=\"signout\"") && body.contains("Alice Example"),
        "{body}"
    );
    assert!(body.contains("Go to your dashboard"), "{body}");
}

#[actix_web::test]
async fn a_trailing_slash_leads_to_the_page_and_favicon_ico_to_the_icon() {
    let app = spawn_app().await;
    let r = app.get("/chat/?x=1").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.location(), "/chat?x=1");
    let icon = app.get("/favicon.ico").await;
    assert_eq!(icon.status, 301);
    let svg = app.get(&icon.location()).await;
    assert_eq!(svg.status, 200);
    assert!(svg
        .header("content-type")
        .unwrap_or_default()
        .starts_with("image/svg+xml"));
    assert!(app.get("/").await.text().contains("rel=\"icon\""));
}
