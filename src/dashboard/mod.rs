//! The dashboard: server-rendered pages, static assets and security headers.

pub mod assets;
pub mod forms;
pub mod headers;
pub mod pages;

use actix_web::web;

/// Mounts the pages (`/static` is mounted apart: it needs no session).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::landing))
        .route("/dashboard", web::get().to(pages::dashboard))
        .route("/chat", web::get().to(pages::chat))
        .route("/sessions", web::get().to(pages::sessions))
        .route("/signout", web::post().to(crate::auth::signout::signout_form));
}
