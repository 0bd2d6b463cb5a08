//! Cross-site request guard for /api. Every request is refused when the browser says it
//! comes from another site (`Sec-Fetch-Site: cross-site|same-site`, or a foreign `Origin`):
//! a link or an `<img>` on any site must not make the BFF call the backend with the user's
//! token. Unsafe methods also need the same origin positively shown and `X-CSRF: 1`.

use actix_web::{
    http::{
        header::{HeaderName, ORIGIN},
        Method,
    },
    HttpRequest,
};

use crate::error::ApiError;

/// Called server-to-server by the provider: no browser checks.
const SERVER_TO_SERVER: &[&str] = &["/api/auth/backchannel-logout"];

/// Top-level navigations that legitimately come from other sites (a "Sign in" link on a
/// marketing page, the provider redirecting back).
const NAVIGATIONS: &[&str] = &["/api/auth/login", "/api/auth/callback"];

// Made once: a name written as a string is parsed and checked on every lookup.
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const X_CSRF: HeaderName = HeaderName::from_static("x-csrf");

/// Checks an /api request.
pub fn check(req: &HttpRequest, origin: &str) -> Result<(), ApiError> {
    let path = req.path();
    if SERVER_TO_SERVER.contains(&path) {
        return Ok(());
    }
    let header = |n: &HeaderName| req.headers().get(n).and_then(|v| v.to_str().ok());
    let claimed_origin = header(&ORIGIN);
    let site = header(&SEC_FETCH_SITE);
    let foreign =
        matches!(site, Some("cross-site" | "same-site")) || claimed_origin.is_some_and(|o| o != origin);
    if foreign && !NAVIGATIONS.contains(&path) {
        return Err(ApiError::Forbidden(
            "cross_site_request",
            "requests from other sites are refused".into(),
        ));
    }
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let same_origin = match (claimed_origin, site) {
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
    if header(&X_CSRF) != Some("1") {
        return Err(ApiError::Forbidden(
            "csrf_header_missing",
            "unsafe requests need the X-CSRF: 1 header".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const ORIGIN: &str = "https://app.example.com";

    fn get(path: &str, headers: &[(&str, &str)]) -> Result<(), ApiError> {
        let mut r = TestRequest::get().uri(path);
        for h in headers {
            r = r.insert_header(*h);
        }
        check(&r.to_http_request(), ORIGIN)
    }

    #[test]
    fn cross_site_reads_are_refused_and_typed_urls_pass() {
        for h in [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
            ("origin", "https://evil.example"),
            ("origin", "null"),
        ] {
            assert!(get("/api/remote/tasks", &[h]).is_err(), "{h:?}");
        }
        assert!(get("/api/remote/tasks", &[("sec-fetch-site", "none")]).is_ok());
        assert!(get("/api/remote/tasks", &[("sec-fetch-site", "same-origin")]).is_ok());
        assert!(get("/api/remote/tasks", &[]).is_ok());
        assert!(get("/api/auth/login", &[("sec-fetch-site", "cross-site")]).is_ok());
    }
}
