//! Liveness and readiness probes, and the metrics endpoint.

use actix_web::{web, HttpResponse};

use crate::state::AppState;

/// Mounts `/healthz` and `/readyz`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(crate::metrics::metrics));
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
