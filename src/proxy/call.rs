//! The pages' own calls to the backend: the route table, identity, header rules and error
//! mapping of the browser's proxied requests (`forward::prepare`), with a small JSON body
//! and the whole answer read.

use actix_web::{
    http::{header, Method, StatusCode},
    HttpRequest,
};
use bytes::Bytes;

use super::{
    forward::{prepare, send_failed, ProxyClient},
    upstream_io::{take_last_read, Hold},
};
use crate::{auth::extractor::CurrentSession, error::ApiError, state::AppState};

/// The backend's answer: status and body.
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its body, read whole (at most `MAX_JSON_BODY`).
    pub body: Bytes,
}

/// One call to the remote route `route`: `method` `{tail}?{query}` with an optional JSON
/// body, acting for `session`.
#[allow(clippy::too_many_arguments)]
pub async fn call(
    req: &HttpRequest,
    state: &AppState,
    client: &ProxyClient,
    session: &CurrentSession,
    route: &str,
    method: Method,
    tail: &str,
    query: &str,
    body: Option<&serde_json::Value>,
) -> Result<Reply, ApiError> {
    let upstream = state
        .routes
        .remote(route)
        .ok_or(ApiError::NotFound("no such remote API"))?;
    // What the browser's API call would send: its language and agent, JSON both ways.
    let mut headers = header::HeaderMap::new();
    for name in [header::USER_AGENT, header::ACCEPT_LANGUAGE] {
        if let Some(v) = req.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    headers.insert(
        header::ACCEPT,
        header::HeaderValue::from_static("application/json"),
    );
    if body.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
    }
    let (up, _) = prepare(
        req,
        &headers,
        method,
        state,
        client,
        Some(session.clone()),
        &upstream,
        tail,
        query,
    )
    .await?;
    let asked = std::time::Instant::now();
    let sent = match body {
        Some(json) => up.send_body(json.to_string()).await,
        None => up.send().await,
    };
    let mut res = sent.map_err(send_failed)?;
    // Busy until the answer is read (the reaper leaves it alone meanwhile).
    let _hold = take_last_read().map(Hold::new);
    state.metrics.observe_upstream(asked.elapsed());
    let read = res.body().limit(state.settings.upstream.max_json_body);
    let body = match actix_web::rt::time::timeout(state.settings.upstream.idle_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                code: "upstream_error",
                message: "the upstream answer could not be read",
                detail: e.to_string(),
            })
        }
        Err(_) => {
            return Err(ApiError::Upstream {
                status: StatusCode::GATEWAY_TIMEOUT,
                code: "upstream_timeout",
                message: "the upstream did not answer in time",
                detail: "the body did not arrive in time".into(),
            })
        }
    };
    Ok(Reply {
        status: res.status(),
        body,
    })
}
