//! Hostile requests through the real forwarder to a recording backend: what the backend
//! received and what the browser got. One test per point of the hardening review.

use std::{
    io::{Read, Write},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use taskflow_bff::clock::now;

use crate::{
    helpers::{spawn_app_with, TestApp},
    upstream::{spawn_upstream, TestUpstream},
};

/// A request over a raw socket, so no client library normalises the path first.
/// Returns the status code and the whole response.
fn raw(app: &TestApp, method: &str, path: &str, extra: &str, body: &str) -> (u16, String) {
    let addr = app.origin.trim_start_matches("http://").to_owned();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let cookie = app
        .cookie_header()
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    // Same-origin unless the test brings an Origin of its own.
    let origin = if extra.contains("Origin:") {
        String::new()
    } else {
        format!("Origin: {}\r\n", app.origin)
    };
    let content_type = if extra.contains("Content-Type:") {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{origin}X-CSRF: 1\r\n{cookie}{extra}\
         {content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
    );
    let _ = sock.write_all(req.as_bytes());
    let mut out = Vec::new();
    let _ = sock.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Dot segments, path parameters, control bytes and encoded separators, as sent on the wire.
const SPELLINGS: &[&str] = &[
    "..",
    ".",
    "..%2F..%2Finternal%2Fadmin%3Fuser%3Dall",
    "%2e%2e/%2e%2e/internal",
    "%2E%2E/internal",
    "%2e",
    ".%2e/x",
    "%252e%252e/internal",
    "%25252e%25252e/internal",
    "..;/internal",
    "x;jsessionid=1",
    "a%00b",
    "a%09b",
    "a\\..\\internal",
    "a%5c..%5cinternal",
    "a%2F..%2Finternal",
    "a%2f..",
];

async fn signed_in(vars: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_with(vars).await;
    app.login_as(0, "/dashboard").await;
    app
}

fn received(up: &TestUpstream) -> usize {
    up.signals.received.load(Ordering::SeqCst)
}

#[actix_web::test]
async fn no_spelling_of_a_dot_segment_leaves_any_route() {
    let up = spawn_upstream();
    let routes = format!(r#"[{{"name":"tasks","url":"{}/api/tasks"}}]"#, up.url);
    let chatkit = format!("{}/chatkit", up.url);
    let default_backend = signed_in(&[("BACKEND_URL", &up.url)]).await;
    let table = signed_in(&[("REMOTE_ROUTES", &routes), ("CHATKIT_URL", &chatkit)]).await;
    let cases: Vec<(&TestApp, String, &str)> = SPELLINGS
        .iter()
        .flat_map(|s| {
            [
                (&default_backend, format!("/api/remote/{s}"), "GET"),
                (&default_backend, format!("/api/remote/tasks/{s}"), "DELETE"),
                (&table, format!("/api/remote/tasks/{s}"), "GET"),
                (&table, format!("/api/chatkit/{s}"), "POST"),
            ]
        })
        .collect();
    for (app, path, method) in cases {
        let before = received(&up);
        let (status, text) = raw(app, method, &path, "", "{}");
        assert_eq!(status, 400, "{method} {path}: {text}");
        assert!(
            text.contains("\"bad_path\"") || text.contains("\"bad_route\""),
            "{method} {path}: {text}"
        );
        assert_eq!(received(&up), before, "{method} {path} reached the backend");
    }
    // The ordinary paths still arrive where they should.
    let (status, text) = raw(&table, "GET", "/api/remote/tasks/42?full=1", "", "");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"path\":\"/api/tasks/42\""), "{text}");
    let (status, text) = raw(&default_backend, "GET", "/api/remote/tasks/a..b", "", "");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"path\":\"/api/tasks/a..b\""), "{text}");
}

#[actix_web::test]
async fn the_demo_provider_is_out_of_reach_of_remote_routes() {
    let app = signed_in(&[]).await;
    for p in [
        "/api/remote/..%2F..%2Fidp%2Fjwks",
        "/api/remote/..%2F..%2F..%2Fdemo%2Fidp%2Fjwks",
    ] {
        let r = app.get(p).await;
        assert_eq!(r.status, 400, "{p}: {}", r.text());
        assert!(!r.text().contains("\"keys\""), "{p}");
    }
}

#[actix_web::test]
async fn cross_site_reads_are_refused_and_typed_urls_and_same_origin_pass() {
    let up = spawn_upstream();
    let app = signed_in(&[("BACKEND_URL", &up.url)]).await;
    for header in [
        "Sec-Fetch-Site: cross-site\r\n",
        "Sec-Fetch-Site: same-site\r\n",
        "Origin: https://evil.example\r\n",
    ] {
        for method in ["GET", "HEAD", "POST"] {
            let before = received(&up);
            // `raw` sends our Origin; a second, foreign one must not be trusted either.
            let (status, text) = raw(&app, method, "/api/remote/tasks/1", header, "");
            assert_eq!(status, 403, "{method} with {header}: {text}");
            assert_eq!(
                received(&up),
                before,
                "{method} with {header} reached the backend"
            );
        }
    }
    for site in ["none", "same-origin"] {
        let req = app
            .client
            .get(format!("{}/api/remote/tasks/1", app.origin))
            .insert_header(("Sec-Fetch-Site", site));
        let r = app.send(req, None).await;
        assert_eq!(r.status, 200, "Sec-Fetch-Site: {site}: {}", r.text());
    }
}

#[actix_web::test]
async fn upstream_headers_never_override_ours() {
    let up = spawn_upstream();
    let chatkit = format!("{}/chatkit", up.url);
    let app = signed_in(&[("CHATKIT_URL", &chatkit)]).await;
    let r = app.post_api("/api/chatkit/hostile", "{}").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-security-policy").as_deref(),
        Some("default-src 'none'; frame-ancestors 'none'; sandbox"),
        "proxied content runs no script at our origin"
    );
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        r.header("referrer-policy").as_deref(),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    for gone in [
        "strict-transport-security",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "clear-site-data",
        "set-cookie",
    ] {
        assert!(r.header(gone).is_none(), "{gone}: {:?}", r.header(gone));
    }
    assert_eq!(r.header("x-upstream").as_deref(), Some("kept"));
}

#[actix_web::test]
async fn sign_out_keeps_the_token_off_urls_and_the_legacy_path_refuses_it_afterwards() {
    let app = signed_in(&[("LEGACY_COOKIE", "taskflow_id_token")]).await;
    let key = app.session_cookie().expect("session");
    let token = app.session_record().await.tokens.id_token;
    // The legacy cookie alone works while the session lives...
    app.jar.borrow_mut().clear();
    app.jar
        .borrow_mut()
        .insert("taskflow_id_token".into(), token.clone());
    let r = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // ...and is refused once that session signed out.
    app.jar.borrow_mut().clear();
    app.jar.borrow_mut().insert(app.session_cookie_name(), key);
    let out = app.logout().await;
    assert_eq!(out.status, 200);
    assert!(!out.text().contains(&token), "no token in the sign-out answer");
    app.jar.borrow_mut().clear();
    app.jar
        .borrow_mut()
        .insert("taskflow_id_token".into(), token.clone());
    let r = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
}

#[actix_web::test]
async fn with_the_hint_enabled_it_travels_in_a_post_form_the_provider_accepts() {
    let app = signed_in(&[("LOGOUT_ID_TOKEN_HINT", "true")]).await;
    let out = app.logout().await.json();
    let action = out["redirect_to"].as_str().expect("action").to_owned();
    assert_eq!(out["method"], "POST");
    assert!(
        !action.contains("id_token_hint") && !action.contains("eyJ"),
        "{action}"
    );
    let fields: Vec<(String, String)> = out["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f[0].as_str().expect("name").to_owned(),
                f[1].as_str().expect("value").to_owned(),
            )
        })
        .collect();
    assert!(fields
        .iter()
        .any(|(k, v)| k == "id_token_hint" && v.starts_with("eyJ")));
    let back = app.post_form(&action, &fields).await;
    assert_eq!(back.status, 302, "{}", back.text());
    assert_eq!(back.location(), format!("{}/?state=signed_out", app.origin));
}

#[actix_web::test]
async fn sign_in_is_throttled_per_address_with_a_readable_429() {
    let app = spawn_app_with(&[("AUTH_RATE_PER_MIN", "6")]).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(app.get("/api/auth/login?returnTo=%2Fdashboard").await);
    }
    let ok = statuses.iter().filter(|r| r.status == 302).count();
    assert_eq!(
        ok,
        6,
        "{:?}",
        statuses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let limited = statuses.last().expect("one");
    assert_eq!(limited.status, 429);
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(limited.text().contains("Too many attempts"), "{}", limited.text());
    // Callbacks count against the same budget.
    assert_eq!(app.get("/api/auth/callback?code=x&state=y").await.status, 429);
}

#[actix_web::test]
async fn code_exchanges_are_capped_overall() {
    let app = spawn_app_with(&[("TOKEN_ENDPOINT_RATE_PER_MIN", "1")]).await;
    let first = app.login_as(0, "/dashboard").await;
    assert_eq!(first.status, 302, "{}", first.text());
    app.jar.borrow_mut().clear();
    let second = app.login_as(1, "/dashboard").await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert!(second.header("retry-after").is_some());
    assert!(app.session_cookie().is_none());
}

#[actix_web::test]
async fn a_trickled_body_gets_408_and_an_oversized_form_413() {
    let app = spawn_app_with(&[("BODY_TIMEOUT_SECS", "1"), ("MAX_FORM_BODY_BYTES", "1024")]).await;
    let addr = app.origin.trim_start_matches("http://").to_owned();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /api/auth/backchannel-logout HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nl"
    );
    sock.write_all(head.as_bytes()).expect("write");
    let started = Instant::now();
    // One more byte now and then, as a slow-loris client does, then silence: bytes sent
    // after the answer would sit unread and turn the server's close into a reset.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        sock.write_all(b"o").expect("write");
    }
    let mut buf = vec![0u8; 512];
    let n = sock.read(&mut buf).expect("an answer");
    let line = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    assert!(line.contains(" 408 "), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Refused on its declared length, before a byte of it is read.
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /api/auth/backchannel-logout HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).expect("write");
    let mut raw_answer = Vec::new();
    let _ = sock.read_to_end(&mut raw_answer);
    let text = String::from_utf8_lossy(&raw_answer).into_owned();
    let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
}

#[actix_web::test]
async fn an_upgrade_on_a_proxied_route_is_refused_at_once() {
    let up = spawn_upstream();
    let chatkit = format!("{}/chatkit", up.url);
    let app = signed_in(&[("CHATKIT_URL", &chatkit)]).await;
    let before = received(&up);
    let started = Instant::now();
    let (status, text) = raw(
        &app,
        "POST",
        "/api/chatkit",
        "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        "{}",
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("upgrade_not_supported"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(received(&up), before);
}

#[actix_web::test]
async fn expired_sessions_are_swept_with_their_tokens() {
    let app = signed_in(&[("SWEEP_INTERVAL_SECS", "1")]).await;
    let hash = app.session_key_hash();
    let sub = "usr_7Hq2LmX9aP";
    assert_eq!(app.state.store.by_sub(sub).await.expect("store").len(), 1);
    let t = now();
    app.state
        .store
        .touch(&hash, t - 10, t - 5, t + 3600)
        .await
        .expect("touch");
    let mut left = 1;
    for _ in 0..40 {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        left = app.state.store.by_sub(sub).await.expect("store").len();
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "the expired row is still in the table");
}

#[actix_web::test]
async fn upstream_failures_carry_a_code_and_request_id_but_no_detail() {
    let closed = format!("{}/chatkit", crate::upstream::closed_port_url());
    let app = signed_in(&[("CHATKIT_URL", &closed)]).await;
    let r = app.post_api("/api/chatkit", "{}").await;
    assert_eq!(r.status, 502);
    let body = r.text();
    assert!(!body.contains("os error") && !body.contains("refused"), "{body}");
    assert_eq!(r.json()["error"], "upstream_unavailable");
    assert!(r.json()["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[actix_web::test]
async fn tokens_shorter_than_the_skew_are_not_refreshed_on_every_request() {
    let app = signed_in(&[("DEMO_TOKEN_TTL_SECS", "45")]).await;
    let before = app.demo().refresh_count();
    for _ in 0..40 {
        let r = app
            .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        app.demo().refresh_count(),
        before,
        "no refresh within the first quarter"
    );
}

#[actix_web::test]
async fn sign_out_revokes_the_refresh_token_at_the_demo_provider() {
    let app = signed_in(&[]).await;
    let rt = app
        .session_record()
        .await
        .tokens
        .refresh_token
        .expect("offline_access granted");
    assert_eq!(app.logout().await.status, 200);
    let client = awc::Client::default();
    let refreshed = app.state.provider.refresh(&client, &rt).await;
    assert!(refreshed.is_err(), "a revoked refresh token still works");
}

#[actix_web::test]
async fn sign_out_also_ends_the_nextjs_cookie_the_browser_still_carries() {
    let app = signed_in(&[("LEGACY_COOKIE", "taskflow_id_token")]).await;
    // An id_token the old Next.js route would have put in its cookie: the first
    // sign-in's; the browser then signs in again and carries both cookies.
    let old_token = app.session_record().await.tokens.id_token;
    app.login_as(0, "/dashboard").await;
    app.jar
        .borrow_mut()
        .insert("taskflow_id_token".into(), old_token.clone());
    let out = app.logout().await;
    assert!(out
        .set_cookie("taskflow_id_token")
        .expect("legacy cookie cleared")
        .contains("Max-Age=0"));
    app.jar.borrow_mut().clear();
    app.jar.borrow_mut().insert("taskflow_id_token".into(), old_token);
    let r = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
}
