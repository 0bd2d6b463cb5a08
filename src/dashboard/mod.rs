//! The dashboard: server-rendered pages, static assets and security headers.

pub mod assets;
pub mod headers;
pub mod pages;

use std::sync::OnceLock;

use actix_web::web;

static DEMO: OnceLock<bool> = OnceLock::new();

/// Records once per process whether pages show the demo banner (error pages are
/// rendered where no app state is reachable).
pub fn set_demo_banner(on: bool) {
    let _ = DEMO.set(on);
}

/// Whether pages show the demo-mode banner.
pub fn demo_banner() -> bool {
    DEMO.get().copied().unwrap_or(false)
}

/// Mounts the pages and `/static`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::landing))
        .route("/dashboard", web::get().to(pages::dashboard))
        .route("/chat", web::get().to(pages::chat))
        .route("/sessions", web::get().to(pages::sessions))
        .service(assets::service());
}
