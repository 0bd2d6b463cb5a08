//! Several replicas sharing one store behave as one: SQLite file, PostgreSQL, Redis.

use futures_util::future::join_all;
use secrecy::ExposeSecret;

use crate::helpers::{spawn_app_with, TestApp};

const SECRET: &str = "replica-test-secret-0123456789abcdef0123";

/// Replica A runs the demo provider and backend; replica B uses them as any provider.
async fn replicas(store: &[(&str, &str)]) -> (TestApp, TestApp) {
    let mut a_vars = vec![("SESSION_SECRET", SECRET)];
    a_vars.extend_from_slice(store);
    let a = spawn_app_with(&a_vars).await;
    let issuer = a.demo().issuer.clone();
    let secret = a.demo().client_secret().expose_secret().to_owned();
    let backend = a.state.routes.backend.clone().expect("demo backend").to_string();
    let mut b_vars = vec![
        ("SESSION_SECRET", SECRET),
        ("OIDC_ISSUER", issuer.as_str()),
        ("OIDC_CLIENT_ID", "taskflow-demo"),
        ("OIDC_CLIENT_SECRET", secret.as_str()),
        ("BACKEND_URL", backend.as_str()),
    ];
    b_vars.extend_from_slice(store);
    let b = spawn_app_with(&b_vars).await;
    (a, b)
}

fn share_cookie(from: &TestApp, to: &TestApp) {
    let c = from.session_cookie().expect("signed in");
    to.jar.borrow_mut().insert(to.session_cookie_name(), c);
}

const LIST: &str = r#"{"type":"threads.list","params":{}}"#;

#[actix_web::test]
async fn a_replica_with_a_real_provider_shows_no_demo_banner_beside_a_demo_app() {
    let (a, b) = replicas(&[]).await;
    assert!(a.get("/").await.text().contains("Demo mode"));
    let page = b.get("/").await.text();
    assert!(!page.contains("Demo mode"), "{page}");
    let missing = b.get("/no-such-page").await.text();
    assert!(!missing.contains("Demo mode"), "{missing}");
}

async fn sign_in_on_a_chat_on_b_log_out_on_b(store: &[(&str, &str)]) {
    let (a, b) = replicas(store).await;
    a.login_as(0, "/dashboard").await;
    share_cookie(&a, &b);
    // A has now loaded (and, with a session cache, kept) the session.
    assert_eq!(a.post_api("/api/chatkit", LIST).await.status, 200);
    assert_eq!(b.get("/api/auth/me").await.json()["name"], "Alice Example");
    let r = b.post_api("/api/chatkit", LIST).await;
    assert_eq!(r.status, 200, "chat through B: {}", r.text());
    assert_eq!(b.logout().await.status, 200);
    signed_out_soon(&a).await;
}

/// With PostgreSQL or Redis the store's notification reaches a replica's cache a moment
/// after the delete commits; the cache's TTL (a minute in these tests) cannot be what ends it.
async fn signed_out_soon(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let status = app.get("/api/auth/me").await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the signed-out cookie is still accepted"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.post_api("/api/chatkit", LIST).await.status, 401);
}

/// Keeps sessions in memory for a minute: only the store's notifications can end them early.
const LONG_CACHE: (&str, &str) = ("SESSION_CACHE_MS", "60000");

async fn concurrent_refresh_on_two_replicas_refreshes_once(store: &[(&str, &str)]) {
    let (a, b) = replicas(store).await;
    a.login_as(0, "/dashboard").await;
    share_cookie(&a, &b);
    a.expire_token().await;
    let before = a.demo().refresh_count();
    let calls = (0..20).map(|i| {
        if i % 2 == 0 {
            a.post_api("/api/chatkit", LIST)
        } else {
            b.post_api("/api/chatkit", LIST)
        }
    });
    for r in join_all(calls).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The demo provider rotates refresh tokens and revokes the family on reuse, like
    // Better Auth: a second refresh would have logged the user out.
    assert_eq!(
        a.demo().refresh_count(),
        before + 1,
        "one refresh across both replicas"
    );
    assert_eq!(a.get("/api/auth/me").await.status, 200);
    assert_eq!(b.get("/api/auth/me").await.status, 200);
    // The refresh-token family is intact: the next refresh works too (once B's cache has
    // heard of the update, when the store sends notifications).
    a.expire_token().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while a.demo().refresh_count() < before + 2 {
        assert!(std::time::Instant::now() < deadline, "B never refreshed");
        assert_eq!(b.post_api("/api/chatkit", LIST).await.status, 200);
    }
    assert_eq!(a.demo().refresh_count(), before + 2);
}

/// SQLite sends no change notifications: processes sharing one file run without the cache.
const NO_CACHE: (&str, &str) = ("SESSION_CACHE_MS", "0");

fn shared_sqlite() -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("taskflow-bff-replicas-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    (format!("sqlite://{}/shared.db", dir.display()), dir)
}

#[actix_web::test]
async fn sqlite_replicas_share_sign_in_and_sign_out() {
    let (url, dir) = shared_sqlite();
    sign_in_on_a_chat_on_b_log_out_on_b(&[("DATABASE_URL", &url), NO_CACHE]).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn sqlite_replicas_refresh_once() {
    let (url, dir) = shared_sqlite();
    concurrent_refresh_on_two_replicas_refreshes_once(&[("DATABASE_URL", &url), NO_CACHE]).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A fresh PostgreSQL database for one test, dropped by [`drop_postgres`].
pub async fn fresh_postgres() -> Option<(String, String)> {
    let Ok(admin) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(std::env::var("CI").is_err(), "CI sets TEST_POSTGRES_URL");
        eprintln!("skipped: TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!("taskflow_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL");
    url.set_path(&format!("/{name}"));
    Some((url.into(), name))
}

pub async fn drop_postgres(name: &str) {
    if let Ok(admin) = std::env::var("TEST_POSTGRES_URL") {
        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await;
        }
    }
}

#[actix_web::test]
async fn postgres_replicas_share_sessions_and_refresh_once() {
    let Some((url, name)) = fresh_postgres().await else {
        return;
    };
    sign_in_on_a_chat_on_b_log_out_on_b(&[("DATABASE_URL", &url), LONG_CACHE]).await;
    concurrent_refresh_on_two_replicas_refreshes_once(&[("DATABASE_URL", &url), LONG_CACHE]).await;

    // An operator ending every session by hand reaches the replicas' caches too.
    let a = spawn_app_with(&[("DATABASE_URL", &url), LONG_CACHE]).await;
    a.login_as(0, "/dashboard").await;
    assert_eq!(a.post_api("/api/chatkit", LIST).await.status, 200);
    let pool = sqlx::PgPool::connect(&url).await.expect("postgres");
    sqlx::query("DELETE FROM sessions")
        .execute(&pool)
        .await
        .expect("delete");
    pool.close().await;
    signed_out_soon(&a).await;
    drop_postgres(&name).await;
}

/// A Redis key prefix for one test; [`drop_redis`] deletes its keys.
pub fn redis_prefix() -> Option<(String, String)> {
    let Ok(url) = std::env::var("TEST_REDIS_URL") else {
        assert!(std::env::var("CI").is_err(), "CI sets TEST_REDIS_URL");
        eprintln!("skipped: TEST_REDIS_URL is not set");
        return None;
    };
    Some((
        url,
        format!("taskflow-bff-test:{}:", uuid::Uuid::new_v4().simple()),
    ))
}

pub async fn drop_redis(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
    }
}

#[actix_web::test]
async fn redis_replicas_share_sessions_and_refresh_once() {
    let Some((url, prefix)) = redis_prefix() else {
        return;
    };
    let (db, dir) = shared_sqlite();
    let store = [
        ("SESSION_STORE", "redis"),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("DATABASE_URL", db.as_str()),
        LONG_CACHE,
    ];
    sign_in_on_a_chat_on_b_log_out_on_b(&store).await;
    concurrent_refresh_on_two_replicas_refreshes_once(&store).await;
    drop_redis(&url, &prefix).await;
    let _ = std::fs::remove_dir_all(dir);
}
