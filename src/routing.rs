//! Every route, and the middleware around them: security headers and the request's error
//! context on every response, the cross-site guard on /api, extractor errors told as JSON
//! or pages.

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::HeaderValue,
    middleware::{from_fn, Next},
    web, Error, ResponseError,
};

use crate::{
    auth, dashboard, demo,
    error::{ApiError, ErrorContext, PageError},
    health, limits, proxy, session,
    state::AppState,
    telemetry::request_id,
};

/// Every route. Assets, probes and the demo provider need no session; the proxy reads the
/// session cookie itself (it never changes session state, and the session layer's state map
/// was a fifth of its cost per request); everything else sits behind the session middleware.
pub fn routes(cfg: &mut web::ServiceConfig, state: &web::Data<AppState>, throttle: &limits::SignInThrottle) {
    // The proxy first: the router tries services in order and its routes carry most of the
    // traffic (their prefixes overlap no other route's); in any case before the session
    // scope, which would otherwise take every path.
    cfg.service(
        web::scope("/api/chatkit")
            .wrap(from_fn(csrf_guard))
            .configure(proxy::chatkit_routes),
    )
    .service(
        web::scope("/api/remote")
            .wrap(from_fn(csrf_guard))
            .configure(proxy::remote_routes)
            .default_service(web::to(no_such_api_route)),
    );
    cfg.configure(health::configure)
        // Browsers ask for it at the root whatever the page says.
        .route(
            "/favicon.ico",
            web::get().to(|| async {
                actix_web::HttpResponse::MovedPermanently()
                    .insert_header(("Location", "/static/img/favicon.svg"))
                    .finish()
            }),
        )
        .service(dashboard::assets::service());
    if let Some(idp) = &state.demo {
        cfg.app_data(web::Data::from(idp.clone()))
            .configure(demo::idp::configure);
    }
    let sessions = session::cookie::middleware(
        state.store.clone(),
        &state.session_cookie,
        state.secure_cookies,
        state.keys.session_cookie_key().clone(),
        state.settings.session.absolute.as_secs() as i64,
    );
    let throttle = throttle.clone();
    cfg.service(
        web::scope("")
            .wrap(sessions)
            .wrap(from_fn(session::cookie::remember_loads))
            .service(
                web::scope("/api")
                    .wrap(from_fn(csrf_guard))
                    .configure(|cfg| auth::configure(cfg, &throttle))
                    .default_service(web::to(no_such_api_route)),
            )
            .configure(dashboard::configure)
            .default_service(web::to(dashboard::pages::not_found)),
    );
}

async fn no_such_api_route() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such API route"))
}

/// Query, form and JSON extractor errors: JSON under /api, pages elsewhere; 413 and 408
/// for bodies over the limit or past their deadline.
pub fn extractor_errors(cfg: &mut web::ServiceConfig, max_form: usize) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, req| {
        let msg = e.to_string();
        extractor_error(
            e.into(),
            req,
            "bad_query",
            format!("Malformed query string: {msg}"),
            0,
        )
    }))
    .app_data(
        web::FormConfig::default()
            .limit(max_form)
            .error_handler(move |e, req| {
                use actix_web::error::UrlencodedError as U;
                let code = match &e {
                    U::Overflow { .. } => "payload_too_large",
                    U::Payload(p) if limits::is_deadline(p) => "request_timeout",
                    _ => "bad_form",
                };
                let msg = e.to_string();
                extractor_error(e.into(), req, code, format!("Malformed form: {msg}"), max_form)
            }),
    )
    .app_data(
        web::JsonConfig::default()
            .limit(max_form)
            .error_handler(move |e, req| {
                use actix_web::error::JsonPayloadError as J;
                let code = match &e {
                    J::Overflow { .. } | J::OverflowKnownLength { .. } => "payload_too_large",
                    J::Payload(p) if limits::is_deadline(p) => "request_timeout",
                    _ => "bad_json",
                };
                let msg = e.to_string();
                extractor_error(e.into(), req, code, format!("Malformed JSON: {msg}"), max_form)
            }),
    );
}

/// An extractor's error: JSON under /api (with `code`), the error page elsewhere.
fn extractor_error(
    e: Error,
    req: &actix_web::HttpRequest,
    code: &'static str,
    page_message: String,
    limit: usize,
) -> Error {
    let api = match code {
        "payload_too_large" => ApiError::PayloadTooLarge(limit),
        "request_timeout" => ApiError::RequestTimeout,
        _ => ApiError::BadRequest(code, e.to_string()),
    };
    if crate::error::is_api_path(req.path()) {
        return api.into();
    }
    match api {
        ApiError::BadRequest(..) => PageError::BadRequest(page_message).into(),
        other => PageError::from(other).into(),
    }
}

async fn csrf_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let checked = match req.app_data::<web::Data<AppState>>() {
        Some(state) => auth::csrf::check(req.request(), state.origin()),
        None => Ok(()),
    };
    if let Err(e) = checked {
        return Ok(req.into_response(e.error_response()).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Security headers, the request's error context and its `X-Request-Id` on every response.
pub async fn response_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
    https: bool,
    csp: HeaderValue,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // Only owned values: holding a clone of the HttpRequest across the call breaks routing.
    let assets = dashboard::assets::asset_cache_control(req.path(), req.query_string());
    // Made once; the error bodies and the proxy's upstream request share it.
    let id = request_id(req.request()).unwrap_or_else(|| HeaderValue::from_static(""));
    let context = req.app_data::<web::Data<AppState>>().map(|s| ErrorContext {
        request_id: id.clone(),
        demo: s.demo_banner(),
        metrics: s.metrics.clone(),
    });
    let mut res = match context {
        Some(c) => c.scope(next.call(req)).await?,
        None => next.call(req).await?,
    };
    dashboard::headers::apply(&mut res, https, &csp);
    dashboard::assets::apply_cache_control(assets, &mut res);
    if !id.is_empty() {
        res.headers_mut().insert(proxy::headers::X_REQUEST_ID, id);
    }
    Ok(res)
}
