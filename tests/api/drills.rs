//! Fault drills: stores, upstreams and the provider going away, and the BFF restarting.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::future::join_all;

use crate::{
    binary::{free_port, header_text, sign_in, BffProcess},
    helpers::{spawn_app_with, TestApp},
    upstream::spawn_upstream,
};

/// A Redis server of this test's own on a free port (never the machine's shared one).
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[actix_web::test]
async fn session_store_outage_gives_503_and_service_resumes_when_it_is_back() {
    if Command::new("redis-server").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "CI has redis-server");
        eprintln!("skipped: no redis-server");
        return;
    }
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = spawn_app_with(&[("SESSION_STORE", "redis"), ("REDIS_URL", &url)]).await;
    app.login_as(0, "/dashboard").await;
    assert_eq!(app.get("/api/auth/me").await.status, 200);

    redis.stop();
    // The session cache is dropped as soon as its subscription to Redis breaks.
    let mut api = app.post_api("/api/chatkit", r#"{"type":"threads.list"}"#).await;
    for _ in 0..100 {
        if api.status != 200 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        api = app.post_api("/api/chatkit", r#"{"type":"threads.list"}"#).await;
    }
    assert_eq!(api.status, 503, "{}", api.text());
    assert_eq!(api.json()["error"], "session_store_unavailable");
    let page = app.get("/dashboard").await;
    assert_eq!(page.status, 503);
    assert!(page
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    assert!(page.text().contains("temporarily unavailable"));
    assert_eq!(app.get("/readyz").await.status, 503);
    assert_eq!(app.get("/healthz").await.status, 200, "alive, just not ready");

    // Back (empty: this Redis keeps nothing on disk), without restarting the BFF.
    let _redis = PrivateRedis::start(port);
    assert!(app.becomes_ready(5).await, "ready again");
    assert_eq!(
        app.get("/api/auth/me").await.status,
        401,
        "the session was in the lost Redis"
    );
    app.jar.borrow_mut().clear();
    let r = app.login_as(0, "/dashboard").await;
    assert_eq!(r.status, 302);
    assert_eq!(app.get("/api/auth/me").await.status, 200);
}

#[actix_web::test]
async fn a_restarted_bff_keeps_users_signed_in() {
    let dir = std::env::temp_dir().join(format!("taskflow-bff-restart-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = format!("sqlite://{}/durable.db", dir.display());
    let secret = "restart-test-secret-0123456789abcdef0123456";
    let first = spawn_app_with(&[("DATABASE_URL", &db), ("SESSION_SECRET", secret)]).await;
    first.login_as(0, "/dashboard").await;
    let cookie = first.session_cookie().expect("cookie");
    first.handle.stop(true).await;
    drop(first);

    let second = spawn_app_with(&[("DATABASE_URL", &db), ("SESSION_SECRET", secret)]).await;
    second
        .jar
        .borrow_mut()
        .insert(second.session_cookie_name(), cookie);
    let me = second.get("/api/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["name"], "Alice Example");
    // A page that needs no backend (the demo backend trusts the new provider's keys only).
    assert_eq!(second.get("/sessions").await.status, 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn upstream_killed_mid_stream_aborts_the_client_and_the_bff_stays_healthy() {
    let up = spawn_upstream();
    let chatkit = format!("{}/chatkit", up.url);
    let app = spawn_app_with(&[("CHATKIT_URL", &chatkit)]).await;
    app.login_as(0, "/dashboard").await;
    let (origin, cookies) = (app.origin.clone(), app.cookie_header());
    let reader = actix_web::rt::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let out = crate::helpers::raw_post_to(&origin, cookies, "/api/chatkit/forever", "{}");
        (out, started)
    });
    // Let the stream start, then kill the upstream (no graceful close).
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let killed = std::time::Instant::now();
    up.handle.stop(false).await;
    let ((status, body, complete), _) = reader.await.expect("reader");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("data: {\"n\":1}"), "{body:?}");
    assert!(
        !complete,
        "the client sees a cut stream, not a clean end: {body:?}"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(1),
        "aborted within a second: {:?}",
        killed.elapsed()
    );
    let r = app.post_api("/api/chatkit", "{}").await;
    assert_eq!(r.status, 502, "the next request gets a clear 502");
    assert_eq!(app.get("/healthz").await.status, 200);
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The real binary, so that its file descriptors can be counted apart from the test's.
/// A same-origin POST of `{}` to `path` on the binary, signed in with `cookie`.
fn proxied_post(client: &awc::Client, bff: &BffProcess, cookie: &str, path: &str) -> awc::SendClientRequest {
    client
        .post(format!("{}{path}", bff.origin))
        .insert_header(("Origin", bff.origin.as_str()))
        .insert_header(("X-CSRF", "1"))
        .insert_header(("Cookie", cookie))
        .send_body("{}")
}

async fn start_binary(chatkit: &str) -> BffProcess {
    start_binary_with(chatkit, &[]).await
}

async fn start_binary_with(chatkit: &str, extra: &[(&str, &str)]) -> BffProcess {
    let mut env = vec![
        ("CHATKIT_URL", chatkit.to_owned()),
        ("WORKERS", "2".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let bff = BffProcess::start(&env);
    bff.ready(10).await;
    bff
}

#[actix_web::test]
async fn a_thousand_abandoned_streams_leave_no_file_descriptors_behind() {
    let up = spawn_upstream();
    let bff = start_binary(&format!("{}/chatkit", up.url)).await;
    let pid = bff.child.id();
    let cookie = sign_in(&bff.origin).await;
    let client = awc::Client::default();
    let open = || proxied_post(&client, &bff, &cookie, "/api/chatkit/forever");
    use futures_util::StreamExt;
    let cycle = || async {
        let mut s = open().await.expect("stream");
        assert!(matches!(s.next().await, Some(Ok(_))), "first event");
        // Abandoned: the client drops the stream here.
    };
    // A first batch grows the pools (database connections) to their working size.
    join_all((0..50).map(|_| cycle())).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let baseline = open_fds(pid);
    for _ in 0..20 {
        join_all((0..50).map(|_| cycle())).await;
    }
    let mut now = open_fds(pid);
    for _ in 0..50 {
        if now <= baseline + 4 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        now = open_fds(pid);
    }
    assert!(
        now <= baseline + 4,
        "the BFF holds {now} fds after 1,000 abandoned streams, {baseline} before"
    );
    let health = client
        .get(format!("{}/healthz", bff.origin))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
}

#[actix_web::test]
async fn provider_down_shows_a_readable_page_and_sign_in_works_when_it_returns() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}/demo/idp");
    let app = spawn_app_with(&[
        ("OIDC_ISSUER", &issuer),
        ("OIDC_CLIENT_ID", "taskflow-demo"),
        ("OIDC_CLIENT_SECRET", "unused-in-this-drill"),
        ("SESSION_SECRET", "provider-drill-secret-0123456789abcdef012"),
    ])
    .await;
    let r = app.get("/api/auth/login?returnTo=/dashboard").await;
    assert_eq!(r.status, 502);
    assert!(r.text().contains("Identity provider unavailable"), "{}", r.text());
    assert_eq!(app.get("/readyz").await.json()["identity_provider"], false);

    // The provider comes up on its address; no restart of the BFF.
    let bind = format!("127.0.0.1:{port}");
    let _idp: TestApp = spawn_app_with(&[("BIND_ADDR", &bind)]).await;
    let r = app.get("/api/auth/login?returnTo=/dashboard").await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(r.location().starts_with(&format!("{issuer}/authorize?")));
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[actix_web::test]
async fn sigterm_lets_requests_finish_and_ends_streams_after_the_grace_period() {
    let up = spawn_upstream();
    let bff = start_binary_with(&format!("{}/chatkit", up.url), &[("SHUTDOWN_GRACE_SECS", "2")]).await;
    let cookie = sign_in(&bff.origin).await;
    let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
    let post = |path: &str| {
        client
            .post(format!("{}/api/chatkit/{path}", bff.origin))
            .insert_header(("Origin", bff.origin.as_str()))
            .insert_header(("X-CSRF", "1"))
            .insert_header(("Cookie", cookie.as_str()))
            .send_body("{}")
    };
    use futures_util::StreamExt;
    let mut stream = post("forever").await.expect("stream");
    assert!(matches!(stream.next().await, Some(Ok(_))));
    let slow = actix_web::rt::spawn(post("slow-json"));
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let pid = bff.child.id().to_string();
    let sent = std::time::Instant::now();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());

    // The in-flight JSON request completes.
    let mut res = slow.await.expect("task").expect("in-flight request finished");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.expect("json")["slow"], true);
    // The stream is ended once the grace period is over, not before the JSON answer.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await {}
    let ended = sent.elapsed();
    assert!(
        ended >= Duration::from_millis(1400),
        "streams get the grace period: {ended:?}"
    );
    assert!(ended < Duration::from_secs(6), "and no more: {ended:?}");
    // New connections are refused.
    assert!(client
        .get(format!("{}/healthz", bff.origin))
        .send()
        .await
        .is_err());
}

#[actix_web::test]
async fn provider_down_signed_in_users_keep_chatting() {
    use secrecy::ExposeSecret;
    let dir = std::env::temp_dir().join(format!("taskflow-bff-idp-down-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = format!("sqlite://{}/shared.db", dir.display());
    let secret = "idp-down-drill-secret-0123456789abcdef0123";
    // A is the provider (demo mode); B is the BFF under test, using A as its provider.
    let a = spawn_app_with(&[("DATABASE_URL", &db), ("SESSION_SECRET", secret)]).await;
    let up = spawn_upstream();
    let chatkit = format!("{}/chatkit", up.url);
    let issuer = a.demo().issuer.clone();
    let client_secret = a.demo().client_secret().expose_secret().to_owned();
    let b = spawn_app_with(&[
        ("DATABASE_URL", &db),
        ("SESSION_SECRET", secret),
        ("OIDC_ISSUER", &issuer),
        ("OIDC_CLIENT_ID", "taskflow-demo"),
        ("OIDC_CLIENT_SECRET", &client_secret),
        ("CHATKIT_URL", &chatkit),
    ])
    .await;
    a.login_as(0, "/dashboard").await;
    b.jar
        .borrow_mut()
        .insert(b.session_cookie_name(), a.session_cookie().expect("cookie"));
    assert_eq!(b.post_api("/api/chatkit", "{}").await.status, 200);
    assert_eq!(b.get("/readyz").await.status, 200);

    a.handle.stop(false).await;
    for _ in 0..3 {
        let r = b.post_api("/api/chatkit", "{}").await;
        assert_eq!(r.status, 200, "chat goes on with the provider down: {}", r.text());
    }
    assert_eq!(b.get("/chat").await.status, 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn the_log_names_each_request_by_id_and_holds_no_secret() {
    let up = spawn_upstream();
    let log = std::env::temp_dir().join(format!("taskflow-bff-log-{}.log", free_port()));
    // The default filter (no RUST_LOG): what an operator gets.
    let env = [("CHATKIT_URL", format!("{}/chatkit", up.url))];
    let bff = BffProcess::start_logging_to(&env, Some(&log));
    bff.ready(10).await;
    let cookie = sign_in(&bff.origin).await;
    let mut res = proxied_post(&awc::Client::default(), &bff, &cookie, "/api/chatkit/echo?page=2")
        .await
        .expect("proxied");
    assert_eq!(res.status(), 200);
    let id = header_text(res.headers(), "x-request-id")
        .expect("request id")
        .to_owned();
    let echoed: serde_json::Value = res.json().await.expect("echo");
    let bearer = echoed["headers"]["authorization"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = bearer
        .strip_prefix("Bearer ")
        .expect("a bearer token reached the upstream");
    // Lines are written by a thread of their own: wait for ours.
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(&id) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let line = text
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("no line names {id}:\n{text}"));
    for part in [
        format!("request_id={id}"),
        "method=POST".into(),
        "path=/api/chatkit/echo".into(),
        "status=200".into(),
    ] {
        assert!(line.contains(&part), "{part} missing from {line}");
    }
    let cookie_value = cookie.split_once('=').map(|(_, v)| v).unwrap_or_default();
    for secret in [cookie_value, token, "page=2", "code="] {
        assert!(!text.contains(secret), "the log holds {secret:?}:\n{text}");
    }
    let _ = std::fs::remove_file(&log);
}
