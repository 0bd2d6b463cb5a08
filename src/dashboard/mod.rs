//! The dashboard: server-rendered pages, static assets and security headers.

pub mod assets;
pub mod backend;
pub mod forms;
pub mod headers;
pub mod overview;
pub mod pages;
pub mod projects;
pub mod shell;
pub mod tasks;
pub mod time;
pub mod views;

use actix_web::web;

/// Mounts the pages (`/static` is mounted apart: it needs no session).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::landing))
        .route("/dashboard", web::get().to(overview::dashboard))
        .service(
            web::resource("/tasks")
                .route(web::get().to(tasks::list))
                .route(web::post().to(tasks::create)),
        )
        .route("/tasks/new", web::get().to(tasks::new_task))
        .service(
            web::resource("/tasks/{id}")
                .route(web::get().to(tasks::edit))
                .route(web::post().to(tasks::save)),
        )
        .route("/tasks/{id}/status", web::post().to(tasks::set_status))
        .service(
            web::resource("/tasks/{id}/delete")
                .route(web::get().to(tasks::confirm_delete))
                .route(web::post().to(tasks::delete)),
        )
        .route("/projects", web::get().to(projects::list))
        .route("/projects/{id}", web::get().to(projects::show))
        .route("/chat", web::get().to(pages::chat))
        .route("/sessions", web::get().to(pages::sessions))
        .route("/sessions/end-others", web::post().to(pages::end_others))
        .route("/sessions/{id}/end", web::get().to(pages::confirm_end))
        .route("/sessions/{id}/end", web::post().to(pages::end_session))
        .route("/signout", web::post().to(crate::auth::signout::signout_form));
}
