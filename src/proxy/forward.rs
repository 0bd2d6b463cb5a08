//! The one forwarding implementation behind every proxied route (awc, streaming both ways).

use std::{cell::Cell, rc::Rc, time::Duration};

use actix_web::{
    body::SizedStream,
    http::{header, Method, StatusCode},
    web, HttpRequest, HttpResponse,
};
use awc::error::SendRequestError;
use url::Url;

use super::{
    headers::{downstream_response_headers, upstream_request_headers, Identity},
    stream::{LimitedBody, UpstreamBody},
};
use crate::{
    auth::{
        extractor::CurrentSession,
        refresh::{forwarded, fresh_tokens},
    },
    error::ApiError,
    state::AppState,
    telemetry::request_id,
};

/// Whether a route needs a signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAuth {
    /// 401 without a session; the token is forwarded.
    Required,
    /// Forwarded without identity headers or token.
    Anonymous,
}

/// Where a proxied route goes.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Prefix of the route on our side, e.g. `/api/chatkit`.
    pub prefix: String,
    /// Base URL the tail is appended to.
    pub base: Url,
    /// Auth policy.
    pub auth: RouteAuth,
}

/// The awc client used for upstreams; one per worker, its pool sized for long streams.
pub struct ProxyClient(pub awc::Client);

impl ProxyClient {
    /// A client with explicit connect and response-header timeouts, no redirects, no
    /// default headers and no connection limit (streams hold connections for minutes);
    /// idle connections are reused for at most `keepalive`.
    pub fn new(connect: Duration, headers: Duration, keepalive: Duration) -> Self {
        let connector = awc::Connector::new()
            .connector(super::eof::watched_connector())
            .timeout(connect)
            .limit(0)
            .conn_keep_alive(keepalive);
        Self(
            awc::Client::builder()
                .connector(connector)
                .timeout(headers)
                .disable_redirects()
                .no_default_headers()
                .finish(),
        )
    }
}

/// A proxy failure: JSON with an `error` code and the request id.
fn failure(status: StatusCode, code: &str, message: &str, request_id: &str) -> HttpResponse {
    tracing::warn!(status = status.as_u16(), code, "proxy failure: {message}");
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": code, "message": message, "request_id": request_id }))
}

/// Checks the tail of the path (still percent-encoded) for traversal out of the route.
fn safe_tail(tail: &str) -> bool {
    tail.split('/').all(|seg| {
        let decoded = percent_decode(seg);
        decoded != "." && decoded != ".." && !decoded.contains('/') && !decoded.contains('\\')
    })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Target URL: the base, the tail, and the request's query string.
fn target_url(base: &Url, tail: &str, query: &str) -> String {
    let mut url = base.as_str().trim_end_matches('/').to_owned();
    if !tail.is_empty() {
        url.push('/');
        url.push_str(tail);
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn is_upload(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/") || ct.starts_with("application/octet-stream"))
}

/// During a migration from the Next.js route: its id_token cookie, accepted only after
/// full validation (signature, iss, aud, exp). It cannot be refreshed; when it expires the
/// user signs in again and gets a real session.
async fn legacy_identity(
    req: &HttpRequest,
    state: &AppState,
    client: &ProxyClient,
) -> Option<(String, String)> {
    let name = state.settings.legacy_cookie.as_deref()?;
    let token = req.cookie(name)?.value().to_owned();
    match state.provider.validate_id_token(&client.0, &token, None).await {
        Ok(claims) => {
            tracing::info!("request accepted on the legacy id_token cookie");
            Some((token, claims.sub))
        }
        Err(e) => {
            tracing::info!(error = %e, "legacy cookie refused");
            None
        }
    }
}

/// Forwards `req` to `upstream`, appending `tail` (the part of the path after the prefix).
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
    client: &ProxyClient,
    session: Option<CurrentSession>,
    upstream: &Upstream,
    tail: &str,
) -> Result<HttpResponse, ApiError> {
    let rid = request_id(&req);
    let settings = &state.settings;
    if !safe_tail(tail) {
        return Err(ApiError::BadRequest(
            "bad_path",
            "the path may not contain . or .. segments".into(),
        ));
    }

    let (bearer, user_id, session_key) = match upstream.auth {
        RouteAuth::Anonymous => (None, None, None),
        RouteAuth::Required => match session {
            Some(s) => {
                let tokens = fresh_tokens(state, &client.0, &s.key_hash, &s.record).await?;
                let token = forwarded(&tokens, settings.forward_token)
                    .ok_or(ApiError::SessionExpired)?
                    .to_owned();
                (Some(token), Some(s.record.sub.clone()), Some(s.key_hash))
            }
            None => {
                let (token, sub) = legacy_identity(&req, state, client)
                    .await
                    .ok_or(ApiError::NotAuthenticated)?;
                (Some(token), Some(sub), None)
            }
        },
    };

    let limit = if is_upload(&req) {
        settings.max_upload_body
    } else {
        settings.max_json_body
    };
    let declared: Option<u64> = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let chunked = req
        .headers()
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));

    let id = Identity {
        bearer: bearer.as_deref(),
        user_id: user_id.as_deref(),
        client_ip: state.client_ip(&req),
        proto: state.public_url.scheme(),
        host: &state.public_host,
        prefix: &upstream.prefix,
        request_id: &rid,
    };
    let headers =
        upstream_request_headers(req.headers(), &id).map_err(|e| ApiError::BadRequest("bad_header", e.0))?;

    let url = target_url(&upstream.base, tail, req.query_string());
    let mut up = client.0.request(req.method().clone(), &url).no_decompress();
    *up.headers_mut() = headers;
    let overflowed = Rc::new(Cell::new(false));
    let body = LimitedBody::new(payload, limit, overflowed.clone());
    let asked = std::time::Instant::now();
    let sent = match declared {
        Some(0) => up.send().await,
        Some(n) => up.send_body(SizedStream::new(n, body)).await,
        None if chunked => up.send_stream(body).await,
        None => up.send().await,
    };
    let res = match sent {
        Ok(r) => r,
        Err(_) if overflowed.get() => return Err(ApiError::PayloadTooLarge(limit)),
        Err(SendRequestError::Timeout) => {
            return Ok(failure(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the upstream did not answer in time",
                &rid,
            ))
        }
        Err(SendRequestError::Connect(e)) => {
            return Ok(failure(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                &format!("cannot connect to the upstream: {e}"),
                &rid,
            ))
        }
        Err(e) => {
            return Ok(failure(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                &format!("the upstream request failed: {e}"),
                &rid,
            ))
        }
    };

    crate::metrics::METRICS.observe_upstream(asked.elapsed());
    let status = res.status();
    let mut resp_headers = downstream_response_headers(res.headers());
    let sse = resp_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if sse {
        resp_headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        );
        resp_headers.insert(
            header::HeaderName::from_static("x-accel-buffering"),
            header::HeaderValue::from_static("no"),
        );
    }
    // The headers are moved into the response, not copied again.
    let respond = move |mut out: HttpResponse| {
        *out.headers_mut() = resp_headers;
        out
    };
    if req.method() == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    {
        return Ok(respond(HttpResponse::new(status)));
    }
    let length: Option<u64> = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let heartbeat = if sse { settings.sse_heartbeat } else { None };
    let framed = length.is_some()
        || res
            .headers()
            .get(header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = UpstreamBody::new(res, settings.upstream_idle_timeout, heartbeat)
        .eof_is_truncation(framed)
        .log_end(sse);
    if let (true, Some(key), Some(every)) = (sse, session_key, settings.stream_revalidate) {
        let store = state.store.clone();
        body = body.revalidate(every, move || {
            let (store, key) = (store.clone(), key.clone());
            // A store that cannot answer does not cut streams: only a missing session does.
            // Through the cache: it is told of sign-outs (see `session::cache`), and thousands
            // of open streams then cost the store one read per session, not one per stream.
            Box::pin(async move { !matches!(store.load_cached(&key).await, Ok(None)) })
        });
    }
    if sse {
        use std::sync::atomic::Ordering::Relaxed;
        crate::metrics::METRICS.open_streams.fetch_add(1, Relaxed);
        body = body.on_close(|_, _| {
            crate::metrics::METRICS.open_streams.fetch_sub(1, Relaxed);
        });
    }
    let mut out = HttpResponse::build(status);
    Ok(respond(match length {
        Some(n) if !sse => out.body(SizedStream::new(n, body)),
        _ => out.streaming(body),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_in_the_tail_is_refused() {
        for bad in ["..", "a/../b", "%2e%2e", "%2E%2E/x", "a/%2F..", ".", "x/%5c.."] {
            assert!(!safe_tail(bad), "{bad}");
        }
        for ok in ["", "attachments/att_1/upload", "a..b", "files/%20x"] {
            assert!(safe_tail(ok), "{ok}");
        }
    }

    #[test]
    fn target_keeps_base_path_tail_and_query() {
        let base = Url::parse("http://up:8000/chatkit").expect("url");
        assert_eq!(target_url(&base, "", ""), "http://up:8000/chatkit");
        assert_eq!(
            target_url(&base, "upload/x", "a=1&b=2"),
            "http://up:8000/chatkit/upload/x?a=1&b=2"
        );
        let slash = Url::parse("http://up:8000/").expect("url");
        assert_eq!(target_url(&slash, "x", ""), "http://up:8000/x");
    }
}
