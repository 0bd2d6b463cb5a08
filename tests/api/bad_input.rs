//! A sweep of bad input: every request gets a clear 4xx, never a 500.

use std::io::{Read, Write};

use crate::helpers::{assert_is_redirect_to, spawn_app};

fn raw(origin: &str, request: &str) -> String {
    let addr = origin.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    // The server may answer and close before it has read everything we send.
    let _ = sock.write_all(request.as_bytes());
    let mut buf = vec![0u8; 512];
    match sock.read(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        Err(e) => format!("read error: {e}"),
    }
}

fn status_of(line: &str) -> u16 {
    line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[actix_web::test]
async fn malformed_oversized_and_forged_session_cookies_get_401() {
    let app = spawn_app().await;
    let name = app.session_cookie_name();
    let (_, reads_before) = app.state.store.load_counts();
    for value in [
        "x".to_owned(),
        "A".repeat(43),
        "!".repeat(43),
        "a".repeat(8000),
        "%00%0d%0a".to_owned(),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.".to_owned(),
    ] {
        app.jar.borrow_mut().clear();
        app.jar.borrow_mut().insert(name.clone(), value.clone());
        let r = app.get("/api/auth/me").await;
        assert_eq!(r.status, 401, "{value:.20}");
        assert_eq!(r.json()["error"], "not_authenticated");
        let page = app.get("/dashboard").await;
        assert_eq!(page.status, 302, "pages redirect to sign-in");
    }
    // A cookie this app did not encrypt is refused before any store lookup.
    assert_eq!(app.state.store.load_counts().1, reads_before);
}

#[actix_web::test]
async fn huge_headers_unknown_methods_and_garbage_bodies_get_4xx() {
    let app = spawn_app().await;
    let host = app.origin.trim_start_matches("http://").to_owned();
    // Over the server's 128 KiB head buffer: 431, or the connection is cut mid-upload.
    let big = "a".repeat(140 * 1024);
    let line = raw(
        &app.origin,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Big: {big}\r\n\r\n"),
    );
    assert!(
        status_of(&line) == 431 || !line.starts_with("HTTP/"),
        "huge header: {line}"
    );
    let many: String = (0..120).map(|i| format!("X-H{i}: 1\r\n")).collect();
    let line = raw(
        &app.origin,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\n{many}\r\n"),
    );
    assert_eq!(status_of(&line), 431, "too many headers: {line}");

    let line = raw(
        &app.origin,
        &format!("FOO /api/chatkit HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
    );
    let s = status_of(&line);
    assert!((400..500).contains(&s), "unknown method: {line}");

    let line = raw(
        &app.origin,
        &format!("GET /\u{1}bad HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    );
    assert!(
        (400..500).contains(&status_of(&line)),
        "control character in the path: {line}"
    );

    let r = app.get("/api/auth/callback?code=%FF%FE&state=%00").await;
    assert_eq!(r.status, 400, "no sign-in in progress");
    app.login_as(0, "/dashboard").await;
    let r = app.post_api("/api/auth/backchannel-logout", "{not json").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "bad_form");
    let r = app.get("/api/auth/login?returnTo=%ZZ").await;
    assert!(
        (400..500).contains(&r.status),
        "bad percent-encoding: {}",
        r.status
    );
    // Signed in, a stale or garbled callback leads back to work, not to an error.
    let r = app.get("/api/auth/callback?code=%FF%FE&state=%00").await;
    assert_is_redirect_to(&r, "/dashboard");
    let r = app.post_api("/api/chatkit", "\u{0}\u{1}garbage").await;
    assert!(
        r.status < 500,
        "garbage reaches the upstream as bytes; its answer passes through: {}",
        r.status
    );
    let r = app
        .send(
            app.client
                .request(awc::http::Method::PATCH, format!("{}/api/auth/me", app.origin)),
            None,
        )
        .await;
    assert!(
        (400..500).contains(&r.status),
        "wrong method on an auth route: {}",
        r.status
    );
    assert_eq!(
        app.get("/api/auth/me").await.status,
        200,
        "the session survived all of it"
    );
}

#[actix_web::test]
async fn every_json_error_carries_the_request_id_of_its_response() {
    let app = spawn_app().await;
    let csrf_less = app
        .client
        .post(format!("{}/api/auth/logout", app.origin))
        .insert_header(("Origin", app.origin.as_str()));
    let cases = [
        app.get("/api/auth/me").await,
        app.get("/api/no-such-route").await,
        app.send(csrf_less, None).await,
        app.post_form("/api/auth/backchannel-logout", &[]).await,
        app.get("/api/remote/Not-An-Identifier").await,
    ];
    for r in cases {
        assert!(r.status >= 400, "{}", r.text());
        let id = r.header("x-request-id").expect("X-Request-Id");
        assert!(!id.is_empty());
        assert_eq!(r.json()["request_id"], id.as_str(), "{}", r.text());
    }
}
