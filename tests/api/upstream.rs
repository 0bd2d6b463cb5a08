//! A controllable upstream for proxy tests: echoes what it received, streams events on
//! cue, fails in the ways real backends fail, and reports when its client goes away.

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tokio::sync::Notify;

/// Signals shared between a test and its upstream.
#[derive(Default)]
pub struct Signals {
    /// The test releases the second event with this.
    pub release: Notify,
    /// Set when the streaming response body was dropped (client gone).
    pub closed: AtomicBool,
    /// Notified when `closed` is set.
    pub closed_notify: Notify,
    /// Requests received, whatever their path: what a traversal must never change.
    pub received: std::sync::atomic::AtomicUsize,
    /// Notified when the echo route receives the first bytes of a request body.
    pub body_started: Notify,
}

pub struct TestUpstream {
    pub url: String,
    pub handle: actix_web::dev::ServerHandle,
    pub signals: Arc<Signals>,
}

struct CloseGuard(Arc<Signals>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.closed_notify.notify_waiters();
    }
}

async fn echo(req: HttpRequest, mut body: web::Payload, signals: web::Data<Arc<Signals>>) -> HttpResponse {
    let (mut bytes, mut chunks) = (0usize, 0usize);
    while let Some(c) = body.next().await {
        let Ok(c) = c else {
            return HttpResponse::BadRequest().finish();
        };
        if chunks == 0 {
            signals.body_started.notify_one();
        }
        bytes += c.len();
        chunks += 1;
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("<binary>").into()))
        .collect();
    HttpResponse::Ok()
        .insert_header(("Set-Cookie", "upstream_session=leak; Path=/"))
        .insert_header(("X-Upstream", "yes"))
        .json(serde_json::json!({
            "method": req.method().as_str(),
            "path": req.path(),
            "query": req.query_string(),
            "headers": headers,
            "body_bytes": bytes,
            "body_chunks": chunks,
            "peer": req.peer_addr().map(|a| a.to_string()),
        }))
}

fn large_body() -> Vec<u8> {
    (0..(3 * 1024 * 1024)).map(|i: u32| (i % 251) as u8).collect()
}

async fn status(path: web::Path<u16>) -> HttpResponse {
    match path.into_inner() {
        422 => HttpResponse::UnprocessableEntity()
            .content_type("application/json")
            .body(r#"{"detail":[{"loc":["body","type"],"msg":"field required"}]}"#),
        502 => HttpResponse::BadGateway()
            .content_type("text/html")
            .body("<html><body><h1>502 Bad Gateway</h1></body></html>"),
        204 => HttpResponse::NoContent().finish(),
        401 => HttpResponse::Unauthorized()
            .json(serde_json::json!({ "error": "invalid_token", "message": "token not accepted" })),
        200 => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(large_body()),
        _ => HttpResponse::Ok().content_type("text/plain").body("plain text"),
    }
}

fn sse_headers() -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::Ok();
    b.content_type("text/event-stream");
    b
}

async fn two_events(signals: web::Data<Arc<Signals>>) -> HttpResponse {
    let s = signals.get_ref().clone();
    let body = stream::once(async { Ok::<_, std::io::Error>(Bytes::from("data: {\"n\":1}\n\n")) }).chain(
        stream::once(async move {
            s.release.notified().await;
            Ok(Bytes::from("data: {\"n\":2}\n\n"))
        }),
    );
    sse_headers().streaming(body)
}

async fn abort_mid_stream() -> HttpResponse {
    let body = stream::once(async { Ok::<_, std::io::Error>(Bytes::from("data: {\"n\":1}\n\n")) }).chain(
        stream::once(async {
            // Let event 1 reach the wire before the crash.
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
            Err(std::io::Error::other("backend crashed"))
        }),
    );
    sse_headers().streaming(body)
}

async fn slow_headers() -> HttpResponse {
    actix_web::rt::time::sleep(Duration::from_secs(5)).await;
    HttpResponse::Ok().finish()
}

async fn forever(signals: web::Data<Arc<Signals>>) -> HttpResponse {
    let guard = CloseGuard(signals.get_ref().clone());
    let first = stream::once(async { Ok::<_, std::io::Error>(Bytes::from("data: {\"n\":1}\n\n")) });
    let pings = stream::unfold(guard, |g| async move {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        Some((Ok(Bytes::from(": ping\n\n")), g))
    });
    sse_headers().streaming(first.chain(pings))
}

async fn slow_json() -> HttpResponse {
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    HttpResponse::Ok().json(serde_json::json!({ "slow": true }))
}

/// An upstream that tries to weaken the BFF's headers and grant other sites access.
async fn hostile() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Security-Policy", "default-src *"))
        .insert_header(("X-Frame-Options", "ALLOWALL"))
        .insert_header(("X-Content-Type-Options", "none"))
        .insert_header(("Referrer-Policy", "unsafe-url"))
        .insert_header(("Strict-Transport-Security", "max-age=0"))
        .insert_header(("Access-Control-Allow-Origin", "https://evil.example"))
        .insert_header(("Access-Control-Allow-Credentials", "true"))
        .insert_header(("Clear-Site-Data", "\"*\""))
        .insert_header(("Set-Cookie", "upstream=1; Path=/"))
        .insert_header(("X-Upstream", "kept"))
        .content_type("text/html")
        .body("<script>alert(document.cookie)</script>")
}

async fn complete() -> HttpResponse {
    let body = stream::iter(vec![
        Ok::<_, std::io::Error>(Bytes::from("data: {\"n\":1}\n\n")),
        Ok(Bytes::from("data: {\"n\":2}\n\n")),
    ]);
    sse_headers().streaming(body)
}

/// Starts the upstream on a random loopback port.
pub fn spawn_upstream() -> TestUpstream {
    let signals = Arc::new(Signals::default());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let data = web::Data::new(signals.clone());
    let server = HttpServer::new(move || {
        let counter = data.clone();
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |req, srv| {
                counter.received.fetch_add(1, Ordering::SeqCst);
                actix_web::dev::Service::call(srv, req)
            })
            .route("/chatkit/hostile", web::to(hostile))
            .route("/chatkit/status/{code}", web::to(status))
            .route("/chatkit/two-events", web::to(two_events))
            .route("/chatkit/abort", web::to(abort_mid_stream))
            .route("/chatkit/slow-headers", web::to(slow_headers))
            .route("/chatkit/forever", web::to(forever))
            .route("/chatkit/quiet", web::to(two_events))
            .route("/chatkit/two-events-complete", web::to(complete))
            .route("/chatkit/slow-json", web::to(slow_json))
            .default_service(web::to(echo))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    TestUpstream {
        url: format!("http://127.0.0.1:{port}"),
        handle,
        signals,
    }
}

/// A loopback URL with nothing listening.
pub fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", crate::binary::free_port())
}
