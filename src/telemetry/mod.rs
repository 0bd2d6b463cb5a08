//! Tracing: the subscriber (pretty or JSON) and the per-request root span.

pub mod log_writer;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::HeaderValue,
    Error, HttpMessage,
};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

use crate::config::LogFormat;

/// Default log filter. actix-http reports every response body that ends in an error at
/// ERROR; the proxy ends streams that way on purpose (a signed-out session, an upstream
/// that aborted) and logs each itself, with its cause, at INFO or WARN.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,actix_server=warn,actix_http::h1::dispatcher=off";

pub use log_writer::LogGuard;

/// Installs the global subscriber; `RUST_LOG` overrides `default_filter`. Lines go to stdout
/// through [`log_writer`]: gathered in memory and written by a thread of their own every
/// few milliseconds, so request threads never wait on a slow log pipe. `None` when a
/// subscriber was already installed (or the writing thread could not start).
pub fn init(format: LogFormat, default_filter: &str) -> Option<LogGuard> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::stdout().is_terminal();
    let Some((writer, guard)) = log_writer::batched_stdout() else {
        eprintln!("cannot start the log-writing thread; running without logs");
        return None;
    };
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_ansi(ansi).with_writer(writer))
            .try_init(),
    };
    installed.is_ok().then_some(guard)
}

/// Root span of every request: request id, method and path. The query string is left
/// out on purpose: the callback's carries the authorization code.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        // Field values are computed only when the span is on (logs at info or finer): one
        // span creation with every field, not a creation and a later record.
        tracing::info_span!(
            "request",
            request_id = %id_text(req, &mut text),
            method = %req.method(),
            path = %req.path(),
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        // A parent named rather than entered: the line needs no enter and exit of the span.
        tracing::info!(parent: &span, status, "response");
    }
}

/// The request id as text, written into `buf` (through `Display` it costs ten times as much).
fn id_text<'a>(req: &impl HttpMessage, buf: &'a mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'a str {
    match req.extensions().get::<RequestId>().copied() {
        Some(id) => id.hyphenated().encode_lower(buf),
        None => "",
    }
}

/// The request id the tracing middleware gave a request, as a header value.
pub fn request_id(req: &actix_web::HttpRequest) -> Option<HeaderValue> {
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    Some(id_text(req, &mut text))
        .filter(|t| !t.is_empty())
        .and_then(|t| HeaderValue::from_str(t).ok())
}
