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

/// A fingerprint of the static folder's contents, appended as `?v=` to asset URLs so
/// browsers may cache them for a year and still see a new release at once.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let mut files = Vec::new();
        collect(std::path::Path::new(&static_dir()), &mut files);
        files.sort();
        let mut all = String::new();
        for f in files {
            if let Ok(bytes) = std::fs::read(&f) {
                all.push_str(&f.to_string_lossy());
                all.push_str(&crate::ids::sha256_hex(&String::from_utf8_lossy(&bytes)));
            }
        }
        crate::ids::sha256_hex(&all)[..12].to_owned()
    })
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
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

/// The [`cache_control`] a request under `/static` gets, decided before the response
/// (nothing copied off the request); set on successful responses by [`apply_cache_control`].
pub fn asset_cache_control(path: &str, query: &str) -> Option<HeaderValue> {
    path.starts_with("/static/").then(|| cache_control(query))
}

/// Sets the policy from [`asset_cache_control`] on a successful response.
pub fn apply_cache_control<B>(policy: Option<HeaderValue>, res: &mut ServiceResponse<B>) {
    if let Some(v) = policy.filter(|_| res.status().is_success()) {
        res.headers_mut().insert(CACHE_CONTROL, v);
    }
}
