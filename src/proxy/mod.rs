//! The streaming proxy: `/api/chatkit` and the remote-API route table, one forwarder.

pub mod eof;
pub mod forward;
pub mod headers;
pub mod stream;

use std::collections::HashMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use url::Url;

use crate::{
    auth::extractor::MaybeSession,
    config::Settings,
    error::{json_error, ApiError},
    state::AppState,
};
use forward::{forward, ProxyClient, RouteAuth, Upstream};

/// Where each proxied route goes.
#[derive(Debug, Clone, Default)]
pub struct ProxyRoutes {
    /// `/api/chatkit` → `CHATKIT_URL`.
    pub chatkit: Option<Upstream>,
    /// `/api/remote/{name}` → configured base URLs.
    pub remote: HashMap<String, Upstream>,
    /// Without `REMOTE_ROUTES`: `/api/remote/{name}` → `{BACKEND_URL}/api/{name}`.
    pub backend: Option<Url>,
}

impl ProxyRoutes {
    /// The route table from settings; `backend` is `BACKEND_URL` or the demo backend.
    pub fn from_settings(s: &Settings, backend: Option<Url>) -> Self {
        let chatkit = s
            .chatkit_url
            .clone()
            .or_else(|| backend.as_ref().and_then(|b| join(b, "chatkit")))
            .map(|base| Upstream {
                prefix: "/api/chatkit".into(),
                base,
                auth: RouteAuth::Required,
            });
        let remote: HashMap<String, Upstream> = s
            .remote_routes
            .iter()
            .map(|r| {
                let up = Upstream {
                    prefix: format!("/api/remote/{}", r.name),
                    base: r.url.clone(),
                    auth: if r.anonymous {
                        RouteAuth::Anonymous
                    } else {
                        RouteAuth::Required
                    },
                };
                (r.name.clone(), up)
            })
            .collect();
        let backend = if remote.is_empty() { backend } else { None };
        Self {
            chatkit,
            remote,
            backend,
        }
    }

    fn remote(&self, name: &str) -> Option<Upstream> {
        if let Some(u) = self.remote.get(name) {
            return Some(u.clone());
        }
        let base = join(self.backend.as_ref()?, &format!("api/{name}"))?;
        Some(Upstream {
            prefix: format!("/api/remote/{name}"),
            base,
            auth: RouteAuth::Required,
        })
    }
}

fn join(base: &Url, path: &str) -> Option<Url> {
    Url::parse(&format!("{}/{path}", base.as_str().trim_end_matches('/'))).ok()
}

/// Mounts the proxy routes inside the `/api` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/chatkit")
            .route(web::post().to(chatkit))
            .default_service(web::to(|| async {
                json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
            })),
    )
    .service(web::resource("/chatkit/{tail:.*}").to(chatkit))
    .service(web::resource("/remote/{name}/{tail:.*}").to(remote))
    .service(web::resource("/remote/{name}").to(remote));
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
    session: MaybeSession,
) -> Result<HttpResponse, ApiError> {
    let upstream = state.routes.chatkit.clone().ok_or_else(|| {
        ApiError::BadRequest("not_configured", "no CHATKIT_URL or BACKEND_URL is set".into())
    })?;
    let tail = tail_after(&req, &upstream.prefix).to_owned();
    forward(req, payload, &state, &client, session.0, &upstream, &tail).await
}

async fn remote(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<ProxyClient>,
    session: MaybeSession,
    path: web::Path<(String,)>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner().0;
    let Some(upstream) = state.routes.remote(&name) else {
        return Ok(json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such remote API",
        ));
    };
    let tail = tail_after(&req, &upstream.prefix).to_owned();
    forward(req, payload, &state, &client, session.0, &upstream, &tail).await
}
