//! The dashboard: server-rendered pages, static assets and security headers.

pub mod assets;
pub mod forms;
pub mod headers;
pub mod pages;
pub mod time;

use actix_web::web;

/// Mounts the pages (`/static` is mounted apart: it needs no session).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::landing))
        .route("/dashboard", web::get().to(pages::dashboard))
        .route("/chat", web::get().to(pages::chat))
        .route("/sessions", web::get().to(pages::sessions))
        .route("/sessions/end-others", web::post().to(pages::end_others))
        .route("/sessions/{id}/end", web::get().to(pages::confirm_end))
        .route("/sessions/{id}/end", web::post().to(pages::end_session))
        .route("/signout", web::post().to(crate::auth::signout::signout_form));
}
