//! Liveness and readiness probes, and the metrics endpoint.

use actix_web::{dev::ServiceResponse, web, HttpResponse};

use crate::{metrics::counter, state::AppState};

/// Mounts `/healthz`, `/readyz` and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// Counts a request by its route pattern (not its path: ids would explode the labels).
pub fn count_request<B>(res: &ServiceResponse<B>) {
    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        state.metrics.count_request(route, res.status().as_u16());
    }
}

/// `GET /metrics`: the app's counters and the session cache's.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = state.metrics.render();
    let (hits, loads) = state.store.load_counts();
    counter(
        &mut out,
        "taskflow_session_cache_hits_total",
        "Session lookups answered from memory.",
        hits,
    );
    counter(
        &mut out,
        "taskflow_session_store_loads_total",
        "Session reads from the store.",
        loads,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers and the provider's metadata is loaded.
async fn readyz(state: web::Data<AppState>, client: web::Data<awc::Client>) -> HttpResponse {
    let store = state.store.ping().await;
    let idp = state.provider.is_ready() || state.provider.metadata(&client).await.is_ok();
    let body = serde_json::json!({
        "status": if store && idp { "ready" } else { "not_ready" },
        "store": store,
        "identity_provider": idp,
    });
    if store && idp {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
