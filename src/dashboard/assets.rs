//! `/static`: files with ETag/Last-Modified; `?v=` (fingerprinted) URLs cached for a year.

use actix_files::Files;
use actix_web::{
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderValue, CACHE_CONTROL},
};

/// Folder of static assets, relative to the working directory unless `STATIC_DIR` is set.
pub fn static_dir() -> String {
    std::env::var("STATIC_DIR").unwrap_or_else(|_| "static".into())
}

/// The static file service. Directory listing is off and paths cannot leave the folder.
pub fn service() -> Files {
    Files::new("/static", static_dir())
        .use_etag(true)
        .use_last_modified(true)
        .prefer_utf8(true)
        .default_handler(actix_web::dev::fn_service(|req: ServiceRequest| async move {
            let (req, _) = req.into_parts();
            let res = crate::error::html_page(
                actix_web::http::StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address.",
            );
            Ok(ServiceResponse::new(req, res))
        }))
}

/// Cache policy for an asset response: immutable when requested with a version.
pub fn cache_control(query: &str) -> HeaderValue {
    if query.split('&').any(|p| p.starts_with("v=")) {
        HeaderValue::from_static("public, max-age=31536000, immutable")
    } else {
        HeaderValue::from_static("no-cache")
    }
}

/// Sets [`cache_control`] on successful `/static` responses.
pub fn apply_cache_control<B>(path: &str, query: &str, res: &mut ServiceResponse<B>) {
    if path.starts_with("/static/") && res.status().is_success() {
        res.headers_mut().insert(CACHE_CONTROL, cache_control(query));
    }
}
