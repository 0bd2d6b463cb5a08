//! Errors at the two HTTP boundaries: JSON under /api, readable HTML pages elsewhere.

use std::{future::Future, sync::Arc};

use actix_web::{
    http::{header::HeaderValue, StatusCode},
    HttpResponse, ResponseError,
};
use askama::Template;

use crate::metrics::Metrics;

/// What an error answer needs to know about the request and the app it belongs to, which
/// `ResponseError::error_response` is not given: set for each request by the app's own
/// middleware ([`ErrorContext::scope`]), so two apps in one process share nothing.
#[derive(Clone)]
pub struct ErrorContext {
    /// The request id, repeated in every JSON error body and sent upstream.
    pub request_id: HeaderValue,
    /// Whether error pages show the demo banner.
    pub demo: bool,
    /// The app's metrics (store errors are counted where they are answered).
    pub metrics: Arc<Metrics>,
}

tokio::task_local! {
    static CONTEXT: ErrorContext;
}

impl ErrorContext {
    /// Runs `f` (the rest of the request) with this context.
    pub fn scope<F: Future>(self, f: F) -> impl Future<Output = F::Output> {
        CONTEXT.scope(self, f)
    }

    fn with<T>(f: impl FnOnce(&ErrorContext) -> T) -> Option<T> {
        CONTEXT.try_with(f).ok()
    }

    /// The id of the request being served (made once per request, see `routing`).
    pub fn request_id() -> Option<HeaderValue> {
        Self::with(|c| c.request_id.clone())
    }
}

fn count_store_error() {
    ErrorContext::with(|c| {
        c.metrics
            .store_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    });
}

/// An error answered as `{"error": code, "message": text}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid session cookie.
    #[error("sign in first")]
    NotAuthenticated,
    /// The session ended because its tokens could not be refreshed.
    #[error("the session has expired; sign in again")]
    SessionExpired,
    /// Request refused by a policy (CSRF, ownership).
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// Malformed request.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// Body over the route's limit.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive within the deadline.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// No such resource.
    #[error("{0}")]
    NotFound(&'static str),
    /// The route exists, not with this method.
    #[error("{0}")]
    MethodNotAllowed(&'static str),
    /// Too many requests from this client; retry after the given seconds.
    #[error("too many requests; try again in {0} s")]
    RateLimited(u64),
    /// The upstream could not be reached, did not answer in time or failed; `detail` is
    /// logged, never sent.
    #[error("{message}")]
    Upstream {
        /// 502 or 504.
        status: StatusCode,
        /// Stable code, e.g. `upstream_unavailable`.
        code: &'static str,
        /// Fixed text for the client.
        message: &'static str,
        /// What went wrong, for the log.
        detail: String,
    },
    /// The session store cannot be reached.
    #[error("the session store is unavailable")]
    StoreUnavailable(#[source] anyhow::Error),
    /// The identity provider cannot be reached or answered nonsense.
    #[error("the identity provider is unavailable")]
    IdpUnavailable(#[source] anyhow::Error),
    /// Anything else; details are logged, not sent.
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// Stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAuthenticated => "not_authenticated",
            Self::SessionExpired => "session_expired",
            Self::Forbidden(c, _) | Self::BadRequest(c, _) => c,
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::RateLimited(_) => "rate_limited",
            Self::Upstream { code, .. } => code,
            Self::StoreUnavailable(_) => "session_store_unavailable",
            Self::IdpUnavailable(_) => "idp_unavailable",
            Self::Unexpected(_) => "internal_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotAuthenticated | Self::SessionExpired => StatusCode::UNAUTHORIZED,
            Self::Forbidden(..) => StatusCode::FORBIDDEN,
            Self::BadRequest(..) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream { status, .. } => *status,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::IdpUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::StoreUnavailable(_) => count_store_error(),
            // Someone else's fault: a warning with the detail, not an error of ours.
            Self::Upstream { detail, .. } => {
                tracing::warn!(status = self.status_code().as_u16(), code = self.code(), detail = %detail, "proxy failure");
            }
            _ => {}
        }
        if !matches!(self, Self::Upstream { .. }) {
            log_once(self.status_code(), self.code(), self);
        }
        let mut res = json_error(self.status_code(), self.code(), &self.to_string());
        if let Self::RateLimited(secs) = self {
            retry_after(&mut res, *secs);
        }
        res
    }
}

/// Routes under /api that answer pages, not JSON: browser navigations during sign-in.
const PAGES_UNDER_API: &[&str] = &["/api/auth/login", "/api/auth/callback"];

/// Whether a path answers JSON errors (the API) or error pages (everything else).
pub fn is_api_path(path: &str) -> bool {
    (path == "/api" || path.starts_with("/api/")) && !PAGES_UNDER_API.contains(&path)
}

/// The JSON error body of every [`ApiError`]: code, message and the request id.
fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let request_id =
        ErrorContext::with(|c| c.request_id.to_str().unwrap_or_default().to_owned()).unwrap_or_default();
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "error": code, "message": message, "request_id": request_id }))
}

/// An error answered with the HTML error page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Malformed or refused request; the message is shown to the user.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing here.
    #[error("page not found")]
    NotFound,
    /// The page needs a signed-in user: sign in, then come back to the given path.
    #[error("sign in first")]
    SignIn(String),
    /// A sign-in link whose page to return to is not on this site.
    #[error("the page to return to after sign-in must be a path on this site")]
    BadReturnTo,
    /// Refused by a policy (a form without its token, from another site).
    #[error("{0}")]
    Forbidden(String),
    /// Sign-in did not complete; the page offers to try again.
    #[error("{title}: {message}")]
    SignInFailed {
        /// Heading.
        title: &'static str,
        /// Explanation for the user.
        message: &'static str,
    },
    /// Too many requests from this client; retry after the given seconds.
    #[error("too many requests")]
    RateLimited(u64),
    /// The form did not arrive within the deadline.
    #[error("the form did not arrive in time")]
    RequestTimeout,
    /// The identity provider cannot be reached.
    #[error("the identity provider is unavailable")]
    IdpUnavailable(#[source] anyhow::Error),
    /// The session store cannot be reached.
    #[error("the session store is unavailable")]
    StoreUnavailable(#[source] anyhow::Error),
    /// Anything else; details are logged, not shown.
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

/// An API failure met while answering a page: the same cause, told as a page.
impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::StoreUnavailable(e) => Self::StoreUnavailable(e),
            ApiError::IdpUnavailable(e) => Self::IdpUnavailable(e),
            ApiError::Unexpected(e) => Self::Unexpected(e),
            ApiError::RateLimited(secs) => Self::RateLimited(secs),
            ApiError::RequestTimeout => Self::RequestTimeout,
            ApiError::NotFound(_) => Self::NotFound,
            ApiError::Forbidden(_, m) => Self::Forbidden(m),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

/// The error page template.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// HTTP status code shown.
    pub status: u16,
    /// Heading.
    pub title: &'a str,
    /// Explanation for the user.
    pub message: &'a str,
    /// A link onwards (href, label) besides the start page.
    pub action: Option<(&'a str, &'a str)>,
    /// The page's frame: the banner, and the nav when the page knows the user.
    pub shell: crate::dashboard::shell::Shell<'a>,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::SignIn(_) => StatusCode::FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadReturnTo => StatusCode::BAD_REQUEST,
            Self::SignInFailed { .. } => StatusCode::BAD_REQUEST,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::IdpUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // Not an error: the way to a page for someone not signed in.
        if let Self::SignIn(back) = self {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("returnTo", back)
                .finish();
            return HttpResponse::Found()
                .insert_header((actix_web::http::header::LOCATION, format!("/api/auth/login?{q}")))
                .insert_header(("Cache-Control", "no-store"))
                .finish();
        }
        if matches!(self, Self::StoreUnavailable(_)) {
            count_store_error();
        }
        log_once(status, "page_error", self);
        let title = match self {
            Self::BadRequest(_) => "Something is wrong with this request",
            Self::NotFound => "Page not found",
            Self::SignIn(_) => "Sign in first",
            Self::Forbidden(_) => "This request was refused",
            Self::BadReturnTo => "This sign-in link cannot be followed",
            Self::SignInFailed { title, .. } => title,
            Self::RateLimited(_) => "Too many attempts",
            Self::RequestTimeout => "The request took too long",
            Self::IdpUnavailable(_) => "Identity provider unavailable",
            Self::StoreUnavailable(_) => "Service temporarily unavailable",
            Self::Unexpected(_) => "Something went wrong",
        };
        let message = match self {
            Self::BadRequest(m) => m.clone(),
            Self::NotFound => "There is nothing at this address.".into(),
            Self::SignIn(_) => "Sign in to see this page.".into(),
            Self::Forbidden(m) => m.clone(),
            Self::BadReturnTo => {
                "The page to return to after sign-in must be a path on this site. You can still sign in and go to your dashboard.".into()
            }
            Self::SignInFailed { message, .. } => (*message).into(),
            Self::RateLimited(secs) => {
                format!(
                    "Too many sign-in attempts from this address. Please wait {secs} seconds and try again."
                )
            }
            Self::RequestTimeout => "The form did not arrive in time. Please try again.".into(),
            Self::IdpUnavailable(_) => {
                "The sign-in service cannot be reached right now. Please try again in a moment.".into()
            }
            Self::StoreUnavailable(_) => "Please try again in a moment.".into(),
            Self::Unexpected(_) => "The error has been logged. Please try again.".into(),
        };
        let action = match self {
            Self::SignInFailed { .. } | Self::RateLimited(_) => {
                Some(("/api/auth/login?returnTo=%2Fdashboard", "Try again"))
            }
            Self::BadReturnTo => Some(("/api/auth/login?returnTo=%2Fdashboard", "Sign in")),
            _ => None,
        };
        let mut res = html_page_with(status, title, &message, action);
        if let Self::RateLimited(secs) = self {
            retry_after(&mut res, *secs);
        }
        res
    }
}

fn retry_after(res: &mut HttpResponse, secs: u64) {
    res.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(secs.max(1)),
    );
}

/// Renders the error page with the given status, heading and message.
pub fn html_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    html_page_with(status, title, message, None)
}

/// [`html_page`] with a link onwards (href, label).
pub fn html_page_with(
    status: StatusCode,
    title: &str,
    message: &str,
    action: Option<(&str, &str)>,
) -> HttpResponse {
    ErrorPage {
        status: status.as_u16(),
        title,
        message,
        action,
        shell: crate::dashboard::shell::Shell::public(ErrorContext::with(|c| c.demo).unwrap_or(false)),
    }
    .respond()
}

impl ErrorPage<'_> {
    /// The page as an uncacheable response with its status (plain text if it cannot render).
    pub fn respond(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.render() {
            Ok(body) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .insert_header(("Cache-Control", "no-store"))
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot render the error page");
                HttpResponse::build(status)
                    .content_type("text/plain")
                    .body(self.title.to_owned())
            }
        }
    }
}

fn log_once(status: StatusCode, code: &str, err: &(dyn std::error::Error + 'static)) {
    let mut chain = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), code, error = %chain, "request failed");
    } else {
        tracing::info!(status = status.as_u16(), code, error = %chain, "request refused");
    }
}
