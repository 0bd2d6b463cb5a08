//! OpenID Connect relying party: provider, login, callback, logout, refresh, session extractor, CSRF.

pub mod backchannel;
pub mod csrf;
pub mod extractor;
pub mod provider;
pub mod refresh;
pub mod refresh_locks;
pub mod return_to;
pub mod routes;
pub mod sessions;
pub mod signout;
pub mod transaction;
pub mod upstream_identity;

use actix_web::web;

/// Mounts `/api/auth/*` (inside the `/api` scope); sign-in requests are throttled per
/// client address.
pub fn configure(cfg: &mut web::ServiceConfig, throttle: &crate::limits::SignInThrottle) {
    cfg.service(
        web::scope("/auth")
            .service(
                web::resource("/login")
                    .wrap(actix_governor::Governor::new(throttle))
                    .route(web::get().to(routes::login)),
            )
            .service(
                web::resource("/callback")
                    .wrap(actix_governor::Governor::new(throttle))
                    .route(web::get().to(routes::callback)),
            )
            .route("/logout", web::post().to(signout::logout))
            .route("/me", web::get().to(routes::me))
            .route("/sessions", web::get().to(sessions::list))
            .route("/sessions/end-others", web::post().to(sessions::end_others))
            .route("/sessions/{id}", web::delete().to(sessions::end))
            .route(
                "/backchannel-logout",
                web::post().to(backchannel::backchannel_logout),
            ),
    );
}
