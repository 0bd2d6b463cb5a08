//! Security headers: CSP and friends on HTML, nosniff and referrer policy everywhere.

use actix_web::{
    dev::ServiceResponse,
    http::header::{self, HeaderName, HeaderValue},
};

/// Adds the security headers to a response that does not already set them.
pub fn apply<B>(res: &mut ServiceResponse<B>, https: bool, csp: &HeaderValue) {
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = res.headers_mut();
    let mut set = |name: HeaderName, value: HeaderValue| {
        if !h.contains_key(&name) {
            h.insert(name, value);
        }
    };
    set(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if is_html {
        set(header::CONTENT_SECURITY_POLICY, csp.clone());
        set(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if https {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
}

/// The page CSP; `script_origin` is the ChatKit script's origin (the only foreign script),
/// `provider_origin` the identity provider's (sign-out may post a form there).
pub fn content_security_policy(script_origin: Option<&str>, provider_origin: Option<&str>) -> HeaderValue {
    let extra = script_origin.map(|o| format!(" {o}")).unwrap_or_default();
    let forms = provider_origin.map(|o| format!(" {o}")).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self'{extra}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'{extra}; frame-src 'self'{extra}; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'{forms}; object-src 'none'"
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

#[cfg(test)]
mod tests {
    use actix_web::{test::TestRequest, HttpResponse};

    use super::*;

    fn response(content_type: &str) -> ServiceResponse {
        let req = TestRequest::default().to_http_request();
        ServiceResponse::new(req, HttpResponse::Ok().content_type(content_type).finish())
    }

    #[test]
    fn html_gets_csp_and_https_gets_hsts() {
        let csp = content_security_policy(Some("https://cdn.example.com"), Some("https://id.example.com"));
        let mut res = response("text/html; charset=utf-8");
        apply(&mut res, true, &csp);
        let h = res.headers();
        let got = h
            .get(header::CONTENT_SECURITY_POLICY)
            .expect("csp")
            .to_str()
            .expect("ascii");
        assert!(got.contains("script-src 'self' https://cdn.example.com"), "{got}");
        assert!(got.contains("frame-ancestors 'none'"));
        assert!(got.contains("form-action 'self' https://id.example.com"), "{got}");
        assert_eq!(h.get(header::X_FRAME_OPTIONS).expect("xfo"), "DENY");
        assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_some());
        assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).expect("nosniff"), "nosniff");
    }

    #[test]
    fn json_gets_no_csp_and_http_gets_no_hsts() {
        let mut res = response("application/json");
        apply(&mut res, false, &content_security_policy(None, None));
        assert!(res.headers().get(header::CONTENT_SECURITY_POLICY).is_none());
        assert!(res.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none());
        assert!(res.headers().get(header::X_CONTENT_TYPE_OPTIONS).is_some());
    }
}
