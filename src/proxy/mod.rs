//! The streaming proxy: `/api/chatkit` and the remote-API route table, one forwarder.

pub mod call;
pub mod forward;
pub mod headers;
pub mod routes;
pub mod stream;
pub mod upstream_io;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::{auth::extractor::CookieSession, error::ApiError, state::AppState};
use forward::{forward, ProxyClient};
pub use routes::ProxyRoutes;

/// The routes under `/api/chatkit`.
pub fn chatkit_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("")
            .route(web::post().to(chatkit))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed("use POST"))
            })),
    )
    .service(web::resource("/{tail:.*}").to(chatkit));
}

/// The routes under `/api/remote`.
pub fn remote_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/{name}/{tail:.*}").to(remote))
        .service(web::resource("/{name}").to(remote));
}

/// The part of the raw (still percent-encoded) path after `prefix/`.
fn tail_after<'a>(req: &'a HttpRequest, prefix: &str) -> &'a str {
    let path = req.uri().path();
    path.strip_prefix(prefix)
        .map(|t| t.strip_prefix('/').unwrap_or(t))
        .unwrap_or("")
}

async fn chatkit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<ProxyClient>,
    session: CookieSession,
) -> Result<HttpResponse, ApiError> {
    let upstream = state.routes.chatkit.as_ref().ok_or_else(|| {
        ApiError::BadRequest("not_configured", "no CHATKIT_URL or BACKEND_URL is set".into())
    })?;
    let tail = tail_after(&req, &upstream.prefix).to_owned();
    forward(req, payload, &state, &client, session.0, upstream, &tail).await
}

/// `/api/remote/{name}/{tail}`. The name is read from the raw path, not from the decoded
/// match: `..%2F..%2Fadmin` is not an identifier, whatever it decodes to.
async fn remote(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<ProxyClient>,
    session: CookieSession,
) -> Result<HttpResponse, ApiError> {
    let rest = tail_after(&req, "/api/remote");
    let name = rest.split('/').next().unwrap_or("");
    if !routes::valid_route_name(name) {
        return Err(ApiError::BadRequest(
            "bad_route",
            "a route name is made of a-z, 0-9, - and _".into(),
        ));
    }
    let Some(upstream) = state.routes.remote(name) else {
        return Err(ApiError::NotFound("no such remote API"));
    };
    let tail = tail_after(&req, &upstream.prefix).to_owned();
    forward(req, payload, &state, &client, session.0, &upstream, &tail).await
}
