//! The in-process session cache: one store read serves a burst of requests. What ends a
//! session ends it in the cache too: locally in `sessions`, across replicas in `replicas`.

use futures_util::future::join_all;

use crate::helpers::{spawn_app_with, TestApp};

const LIST: &str = r#"{"type":"threads.list","params":{}}"#;

/// Sends `n` API requests of the signed-in user at once; returns the store reads they made.
async fn store_reads_for_burst(app: &TestApp, n: usize) -> u64 {
    let (_, before) = app.state.store.load_counts();
    for r in join_all((0..n).map(|_| app.post_api("/api/chatkit", LIST))).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    app.state.store.load_counts().1 - before
}

#[actix_web::test]
async fn a_burst_of_requests_reads_the_session_from_the_store_once() {
    let app = spawn_app_with(&[("SESSION_CACHE_MS", "60000")]).await;
    app.login_as(0, "/dashboard").await;
    assert_eq!(
        store_reads_for_burst(&app, 30).await,
        1,
        "cold cache: one shared read"
    );
    assert_eq!(store_reads_for_burst(&app, 30).await, 0, "warm cache: none");
    let (hits, _) = app.state.store.load_counts();
    assert!(hits >= 30, "{hits} cache hits");
}

#[actix_web::test]
async fn without_the_cache_every_request_reads_the_store() {
    let app = spawn_app_with(&[("SESSION_CACHE_MS", "0")]).await;
    app.login_as(0, "/dashboard").await;
    assert_eq!(store_reads_for_burst(&app, 10).await, 10);
}

#[actix_web::test]
async fn metrics_show_cache_hits_and_store_reads() {
    let app = spawn_app_with(&[("SESSION_CACHE_MS", "60000")]).await;
    app.login_as(0, "/dashboard").await;
    store_reads_for_burst(&app, 1).await;
    store_reads_for_burst(&app, 1).await;
    let text = app.get("/metrics").await.text();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(value("taskflow_session_store_loads_total") >= 1);
    assert!(value("taskflow_session_cache_hits_total") >= 1);
}
