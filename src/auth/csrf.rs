//! CSRF guard for unsafe methods under /api: same-origin request plus `X-CSRF: 1`.

use actix_web::{http::Method, HttpRequest};

use crate::error::ApiError;

/// Paths called server-to-server by the provider, exempt from the browser checks.
const EXEMPT: &[&str] = &["/api/auth/backchannel-logout"];

/// Checks an /api request; safe methods always pass.
pub fn check(req: &HttpRequest, origin: &str) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || EXEMPT.contains(&req.path()) {
        return Ok(());
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let same_origin = match (header("origin"), header("sec-fetch-site")) {
        (Some(o), _) => o == origin,
        (None, Some(site)) => site == "same-origin",
        (None, None) => false,
    };
    if !same_origin {
        return Err(ApiError::Forbidden(
            "cross_site_request",
            "unsafe requests must come from this site".into(),
        ));
    }
    if header("x-csrf") != Some("1") {
        return Err(ApiError::Forbidden(
            "csrf_header_missing",
            "unsafe requests need the X-CSRF: 1 header".into(),
        ));
    }
    Ok(())
}
