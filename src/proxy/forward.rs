//! The one forwarding implementation behind every proxied route (awc, streaming both ways).

use std::{cell::Cell, rc::Rc, time::Duration};

use super::{
    headers::{copy_response_headers, upstream_request_headers, Identity, X_ACCEL_BUFFERING},
    routes::{RouteAuth, Upstream},
    stream::{LimitedBody, UpstreamBody},
    upstream_io::{take_last_read, Hold},
};
use crate::{
    auth::{extractor::CurrentSession, upstream_identity::upstream_identity},
    error::{ApiError, ErrorContext},
    state::AppState,
    telemetry::request_id,
};
use actix_web::{
    body::{BodyStream, SizedStream},
    http::{header, Method, StatusCode},
    web, HttpRequest, HttpResponse,
};
use awc::error::SendRequestError;

/// The awc client used for upstreams; one per worker, its pool sized for long streams.
pub struct ProxyClient(pub awc::Client);

impl ProxyClient {
    /// A client with explicit connect and response-header timeouts, no redirects, no
    /// default headers and no connection limit (streams hold connections for minutes);
    /// idle connections are reused for at most `keepalive`.
    pub fn new(connect: Duration, headers: Duration, keepalive: Duration) -> Self {
        super::upstream_io::start_reaper(keepalive);
        let connector = awc::Connector::new()
            .connector(super::upstream_io::watched_connector())
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

fn is_upload(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/") || ct.starts_with("application/octet-stream"))
}

/// How a message's body is delimited, read once from its headers.
#[derive(Clone, Copy)]
struct Framing {
    /// `Content-Length`, when given.
    length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    chunked: bool,
}

impl Framing {
    fn of(headers: &header::HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &header::HeaderValue| v.to_str().ok())
        };
        Self {
            length: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            chunked: text(header::TRANSFER_ENCODING)
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
        }
    }

    /// Whether the body's end is marked, so a closed connection means a cut body.
    fn delimited(self) -> bool {
        self.length.is_some() || self.chunked
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
    let settings = &state.settings;
    let limit = if is_upload(&req) {
        settings.upstream.max_upload_body
    } else {
        settings.upstream.max_json_body
    };
    let framing = Framing::of(req.headers());
    let (up, session_key) = prepare(
        &req,
        req.headers(),
        req.method().clone(),
        state,
        client,
        session,
        upstream,
        tail,
        req.query_string(),
    )
    .await?;
    if framing.length.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let overflowed = Rc::new(Cell::new(false));
    let body = LimitedBody::new(payload, limit, overflowed.clone());
    let asked = std::time::Instant::now();
    let sent = match framing.length {
        Some(0) => up.send().await,
        Some(n) => up.send_body(SizedStream::new(n, body)).await,
        None if framing.chunked => up.send_stream(body).await,
        None => up.send().await,
    };
    let res = match sent {
        Ok(r) => r,
        Err(_) if overflowed.get() => return Err(ApiError::PayloadTooLarge(limit)),
        Err(e) => return Err(send_failed(e)),
    };
    // The connection whose head was just read stays busy until its body is passed on.
    let hold = take_last_read().map(Hold::new);

    state.metrics.observe_upstream(asked.elapsed());
    let status = res.status();
    let mut out = HttpResponse::new(status);
    let resp_headers = out.headers_mut();
    copy_response_headers(res.headers(), resp_headers);
    let sse = resp_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if sse {
        resp_headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        );
        resp_headers.insert(X_ACCEL_BUFFERING, header::HeaderValue::from_static("no"));
    }
    if req.method() == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    {
        return Ok(out);
    }
    let answer = Framing::of(res.headers());
    let heartbeat = if sse {
        settings.upstream.sse_heartbeat
    } else {
        None
    };
    let mut body = UpstreamBody::new(res, settings.upstream.idle_timeout, heartbeat)
        .hold(hold)
        .eof_is_truncation(answer.delimited())
        .log_end(sse);
    if let (true, Some(key), Some(every)) = (sse, session_key, settings.upstream.stream_revalidate) {
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
        state.metrics.open_streams.fetch_add(1, Relaxed);
        let metrics = state.metrics.clone();
        body = body.on_close(move |_, _| {
            metrics.open_streams.fetch_sub(1, Relaxed);
        });
    }
    Ok(match answer.length {
        Some(n) if !sse => out.set_body(SizedStream::new(n, body)).map_into_boxed_body(),
        _ => out.set_body(BodyStream::new(body)).map_into_boxed_body(),
    })
}

/// The upstream request for `method` `tail?query` on `upstream`: URL checked, identity
/// attached (token refreshed when due), headers from the allow-list. Shared by the
/// browser's proxied requests and the pages' own calls, so both reach the backend alike.
/// Also returns the session's key hash (open streams re-check it).
#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare(
    req: &HttpRequest,
    headers: &header::HeaderMap,
    method: Method,
    state: &AppState,
    client: &ProxyClient,
    session: Option<CurrentSession>,
    upstream: &Upstream,
    tail: &str,
    query: &str,
) -> Result<(awc::ClientRequest, Option<String>), ApiError> {
    // Upgrades (WebSocket) are not proxied: say so at once rather than wait on a body
    // that never ends.
    if headers.contains_key(header::UPGRADE) {
        return Err(ApiError::BadRequest(
            "upgrade_not_supported",
            "protocol upgrades (WebSocket) are not proxied".into(),
        ));
    }
    let url = upstream.target(tail, query).ok_or_else(|| {
        ApiError::BadRequest(
            "bad_path",
            "the path may not contain dot segments, path parameters, backslashes, control characters or encoded slashes".into(),
        )
    })?;
    let who = match upstream.auth {
        RouteAuth::Anonymous => None,
        RouteAuth::Required => Some(upstream_identity(req, state, &client.0, session).await?),
    };
    let rid = ErrorContext::request_id().or_else(|| request_id(req));
    let id = Identity {
        authorization: who.as_ref().map(|w| &w.authorization),
        user_id: who.as_ref().and_then(|w| w.user_id.as_ref()),
        client_ip: state.client_ip_header(req),
        proto: &state.forwarded_proto,
        host: &state.forwarded_host,
        prefix: upstream.forwarded_prefix_header(),
        request_id: rid.as_ref(),
    };
    let headers =
        upstream_request_headers(headers, &id).map_err(|e| ApiError::BadRequest("bad_header", e.0))?;
    let mut up = client.0.request(method, url).no_decompress();
    *up.headers_mut() = headers;
    Ok((up, who.and_then(|w| w.key_hash)))
}

/// A request the upstream did not answer: 504 on a timeout, 502 otherwise, with a fixed
/// message (the detail is logged).
pub(super) fn send_failed(e: SendRequestError) -> ApiError {
    let (status, code, message) = match e {
        SendRequestError::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the upstream did not answer in time",
        ),
        SendRequestError::Connect(_) => (
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "the upstream cannot be reached",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "the upstream request failed",
        ),
    };
    ApiError::Upstream {
        status,
        code,
        message,
        detail: e.to_string(),
    }
}
