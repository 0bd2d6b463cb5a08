//! Header hygiene for the proxy: an allow-list towards the upstream, identity and
//! forwarding headers built from the session, hop-by-hop and Set-Cookie dropped back.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

/// What the allow-list does with a browser header.
enum Inbound {
    /// Forwarded as it is.
    Pass,
    /// A context header the dashboard sets: forwarded if visible and at most this long.
    Context(usize),
    /// A `chatkit-*` header: forwarded within [`CHATKIT_MAX_LEN`] and [`CHATKIT_MAX_COUNT`].
    Chatkit,
    /// Everything else (cookies, credentials, hop-by-hop, forwarding headers): dropped.
    Drop,
}

/// The allow-list towards the upstream. A `match` rather than lists searched in turn: it
/// runs for every header of every proxied request. `Content-Length` is not passed: the
/// forwarded body carries its own size.
fn inbound(name: &str) -> Inbound {
    match name {
        "accept"
        | "accept-language"
        | "content-type"
        | "content-encoding"
        | "if-match"
        | "if-none-match"
        | "if-modified-since"
        | "if-unmodified-since"
        | "range"
        | "user-agent"
        | "last-event-id" => Inbound::Pass,
        "x-page-url" => Inbound::Context(2048),
        "x-page-title" => Inbound::Context(512),
        "x-project-id" => Inbound::Context(128),
        n if n.starts_with("chatkit-") => Inbound::Chatkit,
        _ => Inbound::Drop,
    }
}

/// Limits for `chatkit-*` headers: value length and how many.
const CHATKIT_MAX_LEN: usize = 1024;
const CHATKIT_MAX_COUNT: usize = 16;

/// Upstream response headers that never reach the browser: hop-by-hop ones (RFC 9110
/// §7.6.1, never forwarded either way), the BFF's own security headers (it sets them
/// itself, and an upstream must not weaken them), credentials, cross-origin grants, and
/// headers that act on the whole origin. `Content-Length` too: the body carries its own.
fn dropped_from_upstream(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "set-cookie"
            | "set-cookie2"
            | "content-length"
            | "content-security-policy"
            | "content-security-policy-report-only"
            | "x-frame-options"
            | "x-content-type-options"
            | "referrer-policy"
            | "strict-transport-security"
            | "clear-site-data"
            | "alt-svc"
            | "x-request-id"
            // Reporting and client hints apply to the whole origin (NEL would report every
            // later URL of ours, sign-in callbacks included, to whoever the upstream names).
            | "nel"
            | "report-to"
            | "reporting-endpoints"
            | "accept-ch"
            | "critical-ch"
            | "service-worker-allowed"
            | "refresh"
    ) || name.starts_with("access-control-")
}

/// Names the proxy sets, made once: a name written as a string is parsed and checked on
/// every use.
const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
/// This request's id, on the upstream request and on our response.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Tells a buffering proxy in front of us (nginx) to pass an event stream on as it comes.
pub(super) const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// What proxied content may do when a browser renders it at our origin: nothing. An
/// HTML or SVG answer from the backend opened in a tab runs no script and is framed nowhere.
const PROXIED_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// A context header the proxy refuses, with the reason.
#[derive(Debug, PartialEq, Eq)]
pub struct BadHeader(pub String);

/// What the proxy knows about the request besides its headers.
pub struct Identity<'a> {
    /// `Authorization: Bearer …`, if the route forwards a token.
    pub authorization: Option<&'a HeaderValue>,
    /// The session's subject, sent as `X-User-ID`.
    pub user_id: Option<&'a HeaderValue>,
    /// The browser's address, sent as `X-Forwarded-For`.
    pub client_ip: Option<HeaderValue>,
    /// `http` or `https`, as the browser sees us.
    pub proto: &'a HeaderValue,
    /// Host (and port) as the browser sees us.
    pub host: &'a HeaderValue,
    /// `X-Forwarded-Prefix` (public path = prefix + upstream path); `None`: not sent.
    pub prefix: Option<&'a HeaderValue>,
    /// This request's id.
    pub request_id: Option<&'a HeaderValue>,
}

/// No control characters. Bytes above 0x7f stay allowed: browsers send page titles in UTF-8.
fn visible(v: &HeaderValue) -> bool {
    v.as_bytes()
        .iter()
        .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
}

/// Builds the upstream request headers from the browser's and the identity.
pub fn upstream_request_headers(incoming: &HeaderMap, id: &Identity<'_>) -> Result<HeaderMap, BadHeader> {
    // Room for what a browser's API call forwards plus the eight headers set below, so the
    // map is not grown on the way.
    let mut out = HeaderMap::with_capacity(16);
    let named_by_connection = connection_tokens(incoming);
    let mut chatkit = 0;
    for (name, value) in incoming.iter() {
        let n = name.as_str();
        if named_by_connection.iter().any(|t| t == n) {
            continue;
        }
        match inbound(n) {
            Inbound::Pass => out.append(name.clone(), value.clone()),
            Inbound::Context(max) => {
                check_context(n, value, max)?;
                out.insert(name.clone(), value.clone());
            }
            Inbound::Chatkit => {
                chatkit += 1;
                if chatkit > CHATKIT_MAX_COUNT {
                    return Err(BadHeader("too many chatkit-* headers".into()));
                }
                check_context(n, value, CHATKIT_MAX_LEN)?;
                out.insert(name.clone(), value.clone());
            }
            Inbound::Drop => {}
        }
    }
    if let Some(v) = id.authorization {
        out.insert(actix_web::http::header::AUTHORIZATION, v.clone());
    }
    // Made once (per process, connection, session or request) and shared, not copied.
    if let Some(user) = id.user_id {
        out.insert(X_USER_ID, user.clone());
    }
    if let Some(ip) = &id.client_ip {
        out.insert(X_FORWARDED_FOR, ip.clone());
    }
    out.insert(X_FORWARDED_PROTO, id.proto.clone());
    out.insert(X_FORWARDED_HOST, id.host.clone());
    if let Some(p) = id.prefix {
        out.insert(X_FORWARDED_PREFIX, p.clone());
    }
    if let Some(r) = id.request_id {
        out.insert(X_REQUEST_ID, r.clone());
    }
    let trace = incoming
        .get(&TRACEPARENT)
        .filter(|v| v.to_str().is_ok_and(valid_traceparent))
        .cloned()
        .unwrap_or_else(new_traceparent);
    out.insert(TRACEPARENT, trace);
    Ok(out)
}

fn check_context(name: &str, value: &HeaderValue, max: usize) -> Result<(), BadHeader> {
    if value.len() > max {
        return Err(BadHeader(format!("{name} is longer than {max} bytes")));
    }
    if !visible(value) {
        return Err(BadHeader(format!("{name} contains control characters")));
    }
    Ok(())
}

fn connection_tokens(h: &HeaderMap) -> Vec<String> {
    h.get_all(actix_web::http::header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Copies upstream response headers into `out` minus those [`dropped_from_upstream`] and
/// those the `Connection` header names, and sets the proxied CSP. Into the response's own
/// map: actix reuses it from response to response.
pub fn copy_response_headers(upstream: &HeaderMap, out: &mut HeaderMap) {
    let named = connection_tokens(upstream);
    for (name, value) in upstream.iter() {
        let n = name.as_str();
        if dropped_from_upstream(n) || named.iter().any(|t| t == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out.insert(
        actix_web::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PROXIED_CSP),
    );
}

/// W3C trace context: `00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero.
fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// A new W3C trace context; ids from the thread's userspace RNG (no syscall per request),
/// written as hex without the formatting machinery (this runs on every proxied request).
fn new_traceparent() -> HeaderValue {
    use rand::Rng;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    let (trace, span) = (rng.gen::<u128>().max(1), rng.gen::<u64>().max(1));
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let bytes = trace.to_be_bytes().into_iter().chain(span.to_be_bytes());
    // Two hex digits per byte, from offset 3; the span id after the dash at 35.
    let at = (0..16).map(|i| 3 + 2 * i).chain((0..8).map(|i| 36 + 2 * i));
    for (at, b) in at.zip(bytes) {
        out[at] = HEX[usize::from(b >> 4)];
        out[at + 1] = HEX[usize::from(b & 15)];
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    static BEARER: HeaderValue = HeaderValue::from_static("Bearer tok");
    static HTTPS: HeaderValue = HeaderValue::from_static("https");
    static HOST: HeaderValue = HeaderValue::from_static("app.example.com");
    static PREFIX: HeaderValue = HeaderValue::from_static("/api");
    static REQUEST: HeaderValue = HeaderValue::from_static("req-1");
    static USER: HeaderValue = HeaderValue::from_static("usr_1");

    fn id() -> Identity<'static> {
        Identity {
            authorization: Some(&BEARER),
            user_id: Some(&USER),
            client_ip: Some(HeaderValue::from_static("127.0.0.9")),
            proto: &HTTPS,
            host: &HOST,
            prefix: Some(&PREFIX),
            request_id: Some(&REQUEST),
        }
    }

    #[test]
    fn browser_credentials_never_reach_the_upstream() {
        let h = map(&[
            ("cookie", "taskflow_session=abc"),
            ("authorization", "Bearer stolen"),
            ("x-user-id", "someone-else"),
            ("x-forwarded-for", "6.6.6.6"),
            ("host", "evil"),
            ("content-type", "application/json"),
        ]);
        let out = upstream_request_headers(&h, &id()).expect("ok");
        assert!(out.get("cookie").is_none());
        assert_eq!(out.get("authorization").expect("auth"), "Bearer tok");
        assert_eq!(out.get("x-user-id").expect("uid"), "usr_1");
        assert_eq!(out.get("x-forwarded-for").expect("xff"), "127.0.0.9");
        assert!(out.get("host").is_none());
        assert_eq!(out.get("content-type").expect("ct"), "application/json");
        assert_eq!(out.get("x-forwarded-prefix").expect("prefix"), "/api");
        assert_eq!(out.get("x-forwarded-proto").expect("proto"), "https");
        assert_eq!(out.get("x-forwarded-host").expect("host"), "app.example.com");
    }

    #[test]
    fn anonymous_routes_send_no_identity() {
        let mut i = id();
        i.authorization = None;
        i.user_id = None;
        let out = upstream_request_headers(&map(&[("x-user-id", "spoof")]), &i).expect("ok");
        assert!(out.get("authorization").is_none() && out.get("x-user-id").is_none());
    }

    #[test]
    fn context_headers_are_forwarded_within_limits() {
        let ok = map(&[
            ("x-page-url", "https://app/x"),
            ("chatkit-frame-id", "f1"),
            ("x-other", "dropped"),
        ]);
        let out = upstream_request_headers(&ok, &id()).expect("ok");
        assert_eq!(out.get("x-page-url").expect("url"), "https://app/x");
        assert_eq!(out.get("chatkit-frame-id").expect("ck"), "f1");
        assert!(out.get("x-other").is_none());
        let long = "a".repeat(3000);
        assert!(upstream_request_headers(&map(&[("x-page-url", &long)]), &id()).is_err());
        let utf8 = HeaderValue::from_bytes("Chat · TaskFlow".as_bytes()).expect("value");
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static("x-page-title"), utf8.clone());
        let out = upstream_request_headers(&h, &id()).expect("UTF-8 titles pass");
        assert_eq!(out.get("x-page-title"), Some(&utf8));
    }

    #[test]
    fn traceparent_is_propagated_when_valid_and_created_otherwise() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let out = upstream_request_headers(&map(&[("traceparent", tp)]), &id()).expect("ok");
        assert_eq!(out.get("traceparent").expect("tp"), tp);
        let out = upstream_request_headers(&map(&[("traceparent", "garbage")]), &id()).expect("ok");
        let made = out.get("traceparent").expect("tp").to_str().expect("ascii");
        assert!(valid_traceparent(made) && made != "garbage");
        assert_ne!(new_traceparent(), new_traceparent(), "fresh ids each time");
    }

    fn downstream_response_headers(upstream: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        copy_response_headers(upstream, &mut out);
        out
    }

    #[test]
    fn every_allowed_browser_header_passes_and_hop_by_hop_ones_do_not() {
        let passed = [
            "accept",
            "accept-language",
            "content-type",
            "content-encoding",
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
            "range",
            "user-agent",
            "last-event-id",
        ];
        let dropped = [
            "te",
            "trailer",
            "upgrade",
            "keep-alive",
            "proxy-authorization",
            "content-length",
            "x-real-ip",
        ];
        let pairs: Vec<(&str, &str)> = passed.iter().chain(&dropped).map(|n| (*n, "1")).collect();
        let out = upstream_request_headers(&map(&pairs), &id()).expect("ok");
        for n in passed {
            assert_eq!(out.get(n).expect(n), "1");
        }
        for n in dropped {
            assert!(out.get(n).is_none(), "{n}");
        }
    }

    #[test]
    fn every_origin_wide_or_hop_by_hop_response_header_is_dropped() {
        let names = [
            "connection",
            "keep-alive",
            "proxy-authenticate",
            "proxy-authorization",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "set-cookie",
            "set-cookie2",
            "content-length",
            "content-security-policy-report-only",
            "x-frame-options",
            "x-content-type-options",
            "referrer-policy",
            "strict-transport-security",
            "clear-site-data",
            "alt-svc",
            "x-request-id",
            "nel",
            "report-to",
            "reporting-endpoints",
            "accept-ch",
            "critical-ch",
            "service-worker-allowed",
            "refresh",
            "access-control-max-age",
        ];
        let pairs: Vec<(&str, &str)> = names
            .iter()
            .map(|n| (*n, "1"))
            .chain([("etag", "\"v1\"")])
            .collect();
        let out = downstream_response_headers(&map(&pairs));
        for n in names {
            assert!(out.get(n).is_none(), "{n}");
        }
        assert_eq!(out.get("etag").expect("etag"), "\"v1\"");
    }

    #[test]
    fn hop_by_hop_and_set_cookie_are_dropped_from_responses() {
        let up = map(&[
            ("connection", "close, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "upstream=1"),
            ("content-type", "text/event-stream"),
            ("x-upstream", "kept"),
        ]);
        let out = downstream_response_headers(&up);
        for gone in ["connection", "x-secret-hop", "transfer-encoding", "set-cookie"] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(out.get("content-type").expect("ct"), "text/event-stream");
        assert_eq!(out.get("x-upstream").expect("kept"), "kept");
    }

    #[test]
    fn upstream_security_cors_and_site_data_headers_are_dropped() {
        let up = map(&[
            ("content-security-policy", "default-src *"),
            ("x-frame-options", "ALLOWALL"),
            ("x-content-type-options", "none"),
            ("referrer-policy", "unsafe-url"),
            ("strict-transport-security", "max-age=0"),
            ("access-control-allow-origin", "https://evil.example"),
            ("access-control-allow-credentials", "true"),
            ("clear-site-data", "\"*\""),
            ("nel", "{}"),
            ("report-to", "{}"),
            ("refresh", "0;url=https://evil.example"),
            ("content-type", "text/html"),
        ]);
        let out = downstream_response_headers(&up);
        for gone in [
            "x-frame-options",
            "x-content-type-options",
            "referrer-policy",
            "strict-transport-security",
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "clear-site-data",
            "nel",
            "report-to",
            "refresh",
        ] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(out.get("content-security-policy").expect("ours"), PROXIED_CSP);
        assert_eq!(out.get("content-type").expect("ct"), "text/html");
    }
}
