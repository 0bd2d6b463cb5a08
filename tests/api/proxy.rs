//! The streaming proxy against a controllable upstream and the demo ChatKit backend.

use std::{sync::atomic::Ordering, time::Duration};

use futures_util::{future::join_all, StreamExt};

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp},
    upstream::{closed_port_url, spawn_upstream, TestUpstream},
};

async fn app_with_upstream(extra: &[(&str, &str)]) -> (TestApp, TestUpstream) {
    let up = spawn_upstream();
    let chatkit = format!("{}/chatkit", up.url);
    let mut vars = vec![("CHATKIT_URL", chatkit.as_str())];
    vars.extend_from_slice(extra);
    let app = spawn_app_with(&vars).await;
    app.login_as(0, "/dashboard").await;
    (app, up)
}

#[actix_web::test]
async fn requests_without_a_session_get_401_json() {
    let app = spawn_app().await;
    let r = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "not_authenticated");
}

#[actix_web::test]
async fn first_event_arrives_before_the_second_is_sent() {
    let (app, up) = app_with_upstream(&[]).await;
    let mut res = app.open_api("/api/chatkit/two-events", "{}").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.headers.get("content-type").expect("ct"), "text/event-stream");
    assert_eq!(res.headers.get("cache-control").expect("cc"), "no-cache");
    assert_eq!(res.headers.get("x-accel-buffering").expect("xab"), "no");
    assert!(res.headers.get("content-encoding").is_none());
    // The upstream holds event 2 until we release it: event 1 must already be here.
    let first = res.next_chunk(10).await.expect("event 1").expect("ok");
    assert_eq!(&first[..], b"data: {\"n\":1}\n\n");
    up.signals.release.notify_one();
    let second = res.next_chunk(10).await.expect("event 2").expect("ok");
    assert_eq!(&second[..], b"data: {\"n\":2}\n\n");
    assert!(res.next_chunk(10).await.is_none(), "clean end");
}

#[actix_web::test]
async fn statuses_types_and_bodies_pass_through_unchanged() {
    let (app, _up) = app_with_upstream(&[]).await;
    let r = app.post_api("/api/chatkit/status/422", "{}").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"{"detail":[{"loc":["body","type"],"msg":"field required"}]}"#
    );

    let r = app.post_api("/api/chatkit/status/502", "{}").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type").as_deref(), Some("text/html"));
    assert_eq!(r.text(), "<html><body><h1>502 Bad Gateway</h1></body></html>");

    let r = app.post_api("/api/chatkit/status/204", "{}").await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());

    let r = app.post_api("/api/chatkit/status/200", "{}").await;
    assert_eq!(r.status, 200);
    let expected: Vec<u8> = (0..(3 * 1024 * 1024)).map(|i: u32| (i % 251) as u8).collect();
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body[..] == expected[..], "large body byte-identical");
    assert_eq!(r.header("content-length").as_deref(), Some("3145728"));

    let r = app
        .post_api("/api/chatkit/echo?a=1&b=two", r#"{"type":"threads.list"}"#)
        .await;
    let echo = r.json();
    assert_eq!(echo["path"], "/chatkit/echo");
    assert_eq!(echo["query"], "a=1&b=two");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body_bytes"], 23);
}

#[actix_web::test]
async fn browser_credentials_never_arrive_and_identity_comes_from_the_session() {
    let (app, _up) = app_with_upstream(&[]).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = app
        .api_request("/api/chatkit")
        .insert_header(("Authorization", "Bearer browser-supplied"))
        .insert_header(("X-User-ID", "usr_4Kd8NwR3bZ"))
        .insert_header(("X-Page-URL", "http://127.0.0.1/chat"))
        .insert_header(("X-Project-ID", "p-1"))
        .insert_header(("chatkit-frame-id", "frame-7"))
        .insert_header(("traceparent", tp));
    let r = app.send(req, Some(b"{}".to_vec())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = r.json()["headers"].clone();
    assert!(h.get("cookie").is_none(), "no browser cookie upstream: {h}");
    let auth = h["authorization"].as_str().expect("authorization");
    assert!(
        auth.starts_with("Bearer eyJ"),
        "the session's id_token, not the browser's: {auth}"
    );
    assert_eq!(h["x-user-id"], "usr_7Hq2LmX9aP", "Alice, from the session");
    // Public path = prefix + the path the backend received (/chatkit/...).
    assert_eq!(h["x-forwarded-prefix"], "/api");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], app.origin.trim_start_matches("http://"));
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["traceparent"], tp);
    assert_eq!(h["x-page-url"], "http://127.0.0.1/chat");
    assert_eq!(h["x-project-id"], "p-1");
    assert_eq!(h["chatkit-frame-id"], "frame-7");
    assert_eq!(h["x-request-id"].as_str().map(str::len), Some(36));
    // One id end to end: the backend's logs and ours name the request alike.
    assert_eq!(h["x-request-id"].as_str(), r.header("x-request-id").as_deref());
    // Upstream cookies are not set on our origin; other headers pass.
    assert!(r.set_cookie("upstream_session").is_none());
    assert_eq!(r.header("x-upstream").as_deref(), Some("yes"));
}

#[actix_web::test]
async fn oversized_or_crlf_context_headers_are_rejected() {
    let (app, _up) = app_with_upstream(&[]).await;
    let long = "x".repeat(5000);
    let req = app
        .api_request("/api/chatkit")
        .insert_header(("X-Page-Title", long.as_str()));
    let r = app.send(req, Some(b"{}".to_vec())).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_header");

    // A bare CR inside a header value never gets past the HTTP parser.
    use std::io::{Read, Write};
    let addr = app.origin.trim_start_matches("http://").to_owned();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let raw = format!(
        "POST /api/chatkit HTTP/1.1\r\nHost: {addr}\r\nOrigin: {}\r\nX-CSRF: 1\r\nX-Page-Title: a\rX-Injected: 1\r\nContent-Length: 2\r\n\r\n{{}}",
        app.origin
    );
    sock.write_all(raw.as_bytes()).expect("write");
    let mut buf = [0u8; 64];
    let n = sock.read(&mut buf).unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[actix_web::test]
async fn upstream_down_gives_502_json_with_request_id() {
    let closed = format!("{}/chatkit", closed_port_url());
    let app = spawn_app_with(&[("CHATKIT_URL", &closed)]).await;
    app.login_as(0, "/dashboard").await;
    let r = app.post_api("/api/chatkit", "{}").await;
    assert_eq!(r.status, 502);
    let j = r.json();
    assert_eq!(j["error"], "upstream_unavailable");
    assert_eq!(j["request_id"].as_str(), r.header("x-request-id").as_deref());
}

#[actix_web::test]
async fn slow_upstream_headers_give_504_json() {
    let (app, _up) = app_with_upstream(&[("UPSTREAM_HEADER_TIMEOUT_SECS", "1")]).await;
    let r = app.post_api("/api/chatkit/slow-headers", "{}").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "upstream_timeout");
    assert!(r.json()["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[actix_web::test]
async fn upstream_abort_mid_stream_aborts_the_client_stream() {
    let (app, _up) = app_with_upstream(&[]).await;
    let started = std::time::Instant::now();
    let (status, body, complete) = app.raw_post("/api/chatkit/abort", "{}");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("data: {\"n\":1}"), "event 1 arrived: {body:?}");
    assert!(
        !complete,
        "the client must see a cut stream, not a clean end: {body:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "aborted promptly");
    // The same truncation through the built-in ChatKit flow, and a complete one for contrast.
    let (_, _, complete) = app.raw_post("/api/chatkit/two-events-complete", "{}");
    assert!(complete, "a normal body ends with its last chunk");
    // The BFF is fine afterwards.
    assert_eq!(app.post_api("/api/chatkit/status/204", "{}").await.status, 204);
}

#[actix_web::test]
async fn client_disconnect_closes_the_upstream_request() {
    let (app, up) = app_with_upstream(&[]).await;
    let mut res = app.open_api("/api/chatkit/forever", "{}").await;
    assert!(res.next_chunk(10).await.expect("event 1").is_ok());
    assert!(!up.signals.closed.load(Ordering::SeqCst));
    let closed = up.signals.closed_notify.notified();
    drop(res);
    let seen = tokio::time::timeout(Duration::from_secs(1), closed).await;
    assert!(
        seen.is_ok() || up.signals.closed.load(Ordering::SeqCst),
        "the upstream saw its connection close within a second"
    );
}

#[actix_web::test]
async fn idle_upstream_is_cut_and_heartbeats_keep_quiet_streams_alive() {
    let (app, up) = app_with_upstream(&[("UPSTREAM_IDLE_TIMEOUT_SECS", "1")]).await;
    let (status, body, complete) = app.raw_post("/api/chatkit/quiet", "{}");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("data: {\"n\":1}"));
    assert!(!complete, "cut after 1 s of silence: {body:?}");
    drop(up);

    let (app, up) =
        app_with_upstream(&[("SSE_HEARTBEAT_SECS", "1"), ("UPSTREAM_IDLE_TIMEOUT_SECS", "30")]).await;
    let mut res = app.open_api("/api/chatkit/quiet", "{}").await;
    assert!(res.next_chunk(5).await.expect("event 1").is_ok());
    let hb = res.next_chunk(5).await.expect("heartbeat").expect("ok");
    assert_eq!(&hb[..], b": keep-alive\n\n");
    up.signals.release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = res.next_chunk(5).await {
        rest.extend_from_slice(&c.expect("ok"));
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: {\"n\":2}\n\n"));
}

#[actix_web::test]
async fn cross_site_and_headerless_posts_are_refused() {
    let (app, _up) = app_with_upstream(&[]).await;
    let cross = app
        .client
        .post(format!("{}/api/chatkit", app.origin))
        .insert_header(("Origin", "https://evil.example"))
        .insert_header(("X-CSRF", "1"));
    let r = app.send(cross, Some(b"{}".to_vec())).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "cross_site_request");
    let no_header = app
        .client
        .post(format!("{}/api/chatkit", app.origin))
        .insert_header(("Origin", app.origin.as_str()));
    let r = app.send(no_header, Some(b"{}".to_vec())).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "csrf_header_missing");
}

#[actix_web::test]
async fn bodies_over_the_limit_get_413() {
    let (app, _up) = app_with_upstream(&[("MAX_JSON_BODY_BYTES", "1024")]).await;
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(2000));
    let r = app.post_api("/api/chatkit", &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");

    // Without Content-Length (chunked), the limit holds while streaming.
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a'; 600]))),
    );
    let mut res = app.send_stream(app.api_request("/api/chatkit"), chunks).await;
    assert_eq!(res.status, 413);
    let body = res.next_chunk(10).await.expect("a body").expect("readable");
    assert!(String::from_utf8_lossy(&body).contains("payload_too_large"));
}

#[actix_web::test]
async fn path_traversal_out_of_the_route_is_refused() {
    let (app, _up) = app_with_upstream(&[]).await;
    for p in ["/api/chatkit/%2e%2e/admin", "/api/chatkit/a/%2E%2E/%2e%2e/x"] {
        let r = app.post_api(p, "{}").await;
        assert_eq!(r.status, 400, "{p}");
        assert_eq!(r.json()["error"], "bad_path");
    }
}

#[actix_web::test]
async fn remote_routes_use_the_same_forwarder() {
    let up = spawn_upstream();
    let routes = format!(
        r#"[{{"name":"tasks","url":"{u}/api/tasks"}},{{"name":"status","url":"{u}/public","anonymous":true}}]"#,
        u = up.url
    );
    let app = spawn_app_with(&[("REMOTE_ROUTES", &routes)]).await;
    let anon = app.get("/api/remote/status/ping?x=1").await;
    assert_eq!(anon.status, 200);
    assert_eq!(anon.json()["path"], "/public/ping");
    assert!(anon.json()["headers"].get("authorization").is_none());
    assert_eq!(app.get("/api/remote/tasks/1").await.status, 401);
    assert_eq!(app.get("/api/remote/unknown/1").await.status, 404);

    app.login_as(1, "/dashboard").await;
    let r = app.get("/api/remote/tasks/42?full=1").await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["path"], "/api/tasks/42");
    assert_eq!(j["query"], "full=1");
    assert_eq!(j["method"], "GET");
    assert_eq!(j["headers"]["x-user-id"], "usr_4Kd8NwR3bZ");
    // /api/remote/tasks is not "something + /api/tasks": no prefix can be honest here.
    assert!(j["headers"].get("x-forwarded-prefix").is_none(), "{j}");
}

#[actix_web::test]
async fn twenty_concurrent_requests_on_an_expiring_token_cause_one_refresh() {
    let app = spawn_app().await;
    app.login_as(0, "/dashboard").await;
    app.expire_token().await;
    let before = app.demo().refresh_count();
    let calls = (0..20).map(|_| app.post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#));
    let results = join_all(calls).await;
    for r in &results {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.json()["data"].is_array());
    }
    assert_eq!(
        app.demo().refresh_count(),
        before + 1,
        "one refresh for twenty requests"
    );
    assert_eq!(app.get("/api/auth/me").await.status, 200);
}

#[actix_web::test]
async fn failed_refresh_ends_the_session_with_session_expired() {
    let app = spawn_app().await;
    app.login_as(0, "/dashboard").await;
    app.expire_token().await;
    app.demo().set_refresh_failure(true);
    let r = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "session_expired");
    assert_eq!(app.get("/api/auth/me").await.status, 401, "the session is gone");
    let audit = app.state.store.recent_audit(5).await.expect("audit");
    assert_eq!(audit[0].0, "refresh_failed");
}

#[actix_web::test]
async fn demo_backend_streams_the_chatkit_protocol() {
    let app = spawn_app_with(&[("DEMO_WORD_DELAY_MS", "5")]).await;
    app.login_as(0, "/dashboard").await;
    let create = r#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"hello world"}],"attachments":[],"inference_options":{}}}}"#;
    let r = app.post_api("/api/chatkit", create).await;
    assert_eq!(r.status, 200);
    let events: Vec<serde_json::Value> = r
        .text()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event JSON"))
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        &types[..4],
        [
            "thread.created",
            "thread.item.done",
            "stream_options",
            "thread.item.added"
        ]
    );
    assert_eq!(types.last(), Some(&"thread.item.done"));
    let text: String = events
        .iter()
        .filter(|e| e["update"]["type"] == "assistant_message.content_part.text_delta")
        .filter_map(|e| e["update"]["delta"].as_str())
        .collect();
    assert_eq!(text, "You said: hello world");
    let thread = events[0]["thread"]["id"].as_str().expect("thread id").to_owned();

    let list = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await
        .json();
    assert_eq!(list["data"][0]["id"], thread.as_str());
    let items = app
        .post_api(
            "/api/chatkit",
            &format!(r#"{{"type":"items.list","params":{{"thread_id":"{thread}"}}}}"#),
        )
        .await
        .json();
    assert_eq!(items["data"].as_array().map(Vec::len), Some(2));

    // An unknown thread: 200 event-stream, then the body aborts.
    let (status, body, complete) = app.raw_post(
        "/api/chatkit",
        r#"{"type":"threads.add_user_message","params":{"thread_id":"thr_nope","input":{"content":[]}}}"#,
    );
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(!complete, "aborted, not ended: {body:?}");

    // Bob cannot read Alice's thread.
    app.login_as(1, "/dashboard").await;
    let r = app
        .post_api(
            "/api/chatkit",
            &format!(r#"{{"type":"items.list","params":{{"thread_id":"{thread}"}}}}"#),
        )
        .await;
    assert_eq!(r.status, 404);
}

fn multipart(
    size: usize,
) -> (
    String,
    impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>>,
) {
    let boundary = "taskflowboundary7MA4YWxk".to_owned();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let chunk = 64 * 1024;
    let parts = std::iter::once(bytes::Bytes::from(head))
        .chain((0..size / chunk).map(move |_| bytes::Bytes::from(vec![b'z'; chunk])))
        .chain(std::iter::once(bytes::Bytes::from(tail)));
    (boundary, futures_util::stream::iter(parts.map(Ok)))
}

#[actix_web::test]
async fn a_50_mib_upload_streams_through_both_chatkit_upload_flows() {
    let app = spawn_app().await;
    app.login_as(0, "/dashboard").await;

    // Direct upload.
    let size = 50 * 1024 * 1024;
    let (boundary, body) = multipart(size);
    let req = app
        .api_request("/api/chatkit/upload")
        .insert_header((
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        ))
        .timeout(Duration::from_secs(120));
    let j = app.send_stream(req, body).await.json(60).await;
    assert!(j["upload_bytes"].as_u64().expect("bytes") > size as u64);
    assert!(
        j["upload_chunks"].as_u64().expect("chunks") > 10,
        "arrived in chunks: {j}"
    );

    // Two-phase: attachments.create returns a URL back through the BFF.
    let created = app
        .post_api(
            "/api/chatkit",
            r#"{"type":"attachments.create","params":{"name":"notes.txt","size":12,"mime_type":"text/plain"}}"#,
        )
        .await
        .json();
    let url = created["upload_descriptor"]["url"]
        .as_str()
        .expect("upload url")
        .to_owned();
    assert!(
        url.starts_with(&format!("{}/api/chatkit/attachments/", app.origin)),
        "{url}"
    );
    let (boundary, body) = multipart(128 * 1024);
    let req = app.api_request(&url).insert_header((
        "Content-Type",
        format!("multipart/form-data; boundary={boundary}"),
    ));
    let j = app.send_stream(req, body).await.json(60).await;
    assert_eq!(j["id"], created["id"]);
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
}

#[actix_web::test]
async fn metrics_count_requests_streams_and_sign_ins() {
    let (app, up) = app_with_upstream(&[]).await;
    let mut res = app.open_api("/api/chatkit/two-events", "{}").await;
    assert!(res.next_chunk(10).await.expect("event 1").is_ok());
    let m = app.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));
    let text = m.text();
    // Counters of this app alone: one sign-in, one open stream.
    assert_eq!(metric(&text, "taskflow_sse_streams_open"), 1.0, "{text}");
    assert_eq!(metric(&text, "taskflow_logins_total"), 1.0, "{text}");
    assert!(
        text.contains("taskflow_http_requests_total{route=\"/api/auth/callback\",status=\"302\"}"),
        "{text}"
    );
    assert!(metric(&text, "taskflow_upstream_response_seconds_count") >= 1.0);
    up.signals.release.notify_one();
    while res.next_chunk(10).await.is_some() {}
    assert!(!text.contains("eyJ"), "no tokens in metrics");
    let after = app.get("/metrics").await.text();
    assert_eq!(metric(&after, "taskflow_sse_streams_open"), 0.0, "{after}");
}

#[actix_web::test]
async fn legacy_id_token_cookie_is_accepted_after_full_validation_when_enabled() {
    let app = spawn_app_with(&[("LEGACY_COOKIE", "taskflow_id_token")]).await;
    app.login_as(0, "/dashboard").await;
    let rec = app.session_record().await;
    let id_token = rec.tokens.id_token.clone();
    // A browser that only has the old Next.js cookie.
    app.jar.borrow_mut().clear();
    app.jar
        .borrow_mut()
        .insert("taskflow_id_token".into(), id_token.clone());
    let r = app
        .post_api("/api/chatkit", r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Tampered: refused.
    let (head, _) = id_token.rsplit_once('.').expect("jwt");
    app.jar
        .borrow_mut()
        .insert("taskflow_id_token".into(), format!("{head}.AAAA"));
    assert_eq!(
        app.post_api("/api/chatkit", r#"{"type":"threads.list"}"#)
            .await
            .status,
        401
    );

    // Off by default.
    let off = spawn_app().await;
    off.jar.borrow_mut().insert("taskflow_id_token".into(), id_token);
    assert_eq!(
        off.post_api("/api/chatkit", r#"{"type":"threads.list"}"#)
            .await
            .status,
        401
    );
}

#[actix_web::test]
async fn signing_out_cuts_the_sessions_open_streams() {
    let (app, _up) = app_with_upstream(&[("STREAM_REVALIDATE_SECS", "1")]).await;
    let (origin, cookies) = (app.origin.clone(), app.cookie_header());
    let reader = actix_web::rt::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let out = crate::helpers::raw_post_to(&origin, cookies, "/api/chatkit/forever", "{}");
        (out, started.elapsed())
    });
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    // Signed out elsewhere (another tab, another replica, or a back-channel logout).
    assert_eq!(app.logout().await.status, 200);
    let ((status, body, complete), took) = reader.await.expect("reader");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("data: {\"n\":1}"));
    assert!(!complete, "cut, not ended cleanly");
    assert!(
        took < Duration::from_secs(5),
        "within the revalidation interval: {took:?}"
    );
}

#[actix_web::test]
async fn upstream_connections_are_reused_after_sized_bodies() {
    let (app, _up) = app_with_upstream(&[]).await;
    let mut peers = std::collections::HashSet::new();
    for _ in 0..5 {
        let r = app.post_api("/api/chatkit/echo", "{}").await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-length").is_some(), "a sized body");
        peers.insert(r.json()["peer"].as_str().expect("peer").to_owned());
    }
    assert_eq!(
        peers.len(),
        1,
        "one keep-alive connection to the upstream, not one per request: {peers:?}"
    );
}

#[actix_web::test]
async fn idle_upstream_connections_are_not_reused_past_the_keepalive() {
    // Servers drop idle connections after a few seconds (uvicorn and Node after 5): reusing
    // one they are closing fails the request, so the pool lets go of them first.
    let (app, _up) = app_with_upstream(&[("UPSTREAM_KEEPALIVE_SECS", "1")]).await;
    let peer = |r: &crate::helpers::Resp| r.json()["peer"].as_str().expect("peer").to_owned();
    let first = peer(&app.post_api("/api/chatkit/echo", "{}").await);
    let soon = peer(&app.post_api("/api/chatkit/echo", "{}").await);
    assert_eq!(first, soon, "reused while fresh");
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    let later = app.post_api("/api/chatkit/echo", "{}").await;
    assert_eq!(later.status, 200);
    assert_ne!(peer(&later), first, "a new connection after the keep-alive");
}

/// The X-Forwarded-For the upstream receives when the browser sends its own.
async fn forwarded_for(extra: &[(&str, &str)]) -> String {
    let (app, _up) = app_with_upstream(extra).await;
    let req = app
        .api_request("/api/chatkit")
        .insert_header(("X-Forwarded-For", "6.6.6.6, 198.51.100.9"));
    let r = app.send(req, Some(b"{}".to_vec())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["headers"]["x-forwarded-for"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    assert_eq!(
        forwarded_for(&[]).await,
        "127.0.0.1",
        "a browser's own header is ignored"
    );
    assert_eq!(
        forwarded_for(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).await,
        "198.51.100.9",
        "behind a trusted load balancer, the address it saw"
    );
}

#[actix_web::test]
async fn an_upload_reaches_the_upstream_before_the_browser_has_sent_all_of_it() {
    let (app, up) = app_with_upstream(&[("MAX_UPLOAD_BODY_BYTES", "67108864")]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<bytes::Bytes, std::io::Error>>();
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let req = app
        .api_request("/api/chatkit/echo")
        .insert_header(("Content-Type", "application/octet-stream"));
    let first = bytes::Bytes::from(vec![b'a'; 1 << 20]);
    tx.send(Ok(first)).expect("queue");
    let upload = app.send_stream(req, body);
    let rest = async {
        // The rest of the body is held back until the upstream has its first bytes: a
        // proxy that buffered bodies would never forward them, and this would time out.
        tokio::time::timeout(Duration::from_secs(10), up.signals.body_started.notified())
            .await
            .expect("the upstream got the first megabyte while the upload was still open");
        for _ in 0..7 {
            tx.send(Ok(bytes::Bytes::from(vec![b'b'; 1 << 20])))
                .expect("queue");
        }
        drop(tx);
    };
    let (res, ()) = futures_util::join!(upload, rest);
    let echo = res.json(10).await;
    assert_eq!(echo["body_bytes"], 8 << 20);
    assert!(echo["body_chunks"].as_u64().expect("chunks") > 8, "{echo}");
}

/// The BFF's open TCP connections to `port` (ESTABLISHED or CLOSE_WAIT, client side), from
/// the kernel's table: independent of what else this test process runs.
fn connections_to(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote_port = cols
                .get(2)
                .and_then(|r| r.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 01: ESTABLISHED, 08: CLOSE_WAIT.
            if remote_port == Some(port) && matches!(cols.get(3), Some(&"01") | Some(&"08")) {
                n += 1;
            }
        }
    }
    n
}

#[actix_web::test]
async fn idle_upstream_connections_are_closed_without_another_request() {
    let up = spawn_upstream();
    let port: u16 = up
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let app = spawn_app_with(&[
        ("CHATKIT_URL", &format!("{}/chatkit", up.url)),
        ("UPSTREAM_KEEPALIVE_SECS", "1"),
    ])
    .await;
    app.login_as(0, "/dashboard").await;
    // Twenty streams at once, each read to its end: their connections go back to the pool.
    // (GETs: a server closes a connection whose request body its handler left unread.)
    let streams = (0..20).map(|_| app.get("/api/chatkit/two-events-complete"));
    for r in futures_util::future::join_all(streams).await {
        assert_eq!(r.status, 200);
    }
    let pooled = connections_to(port);
    assert!(pooled >= 2, "the streams left {pooled} pooled connections");
    // No request comes; within the keep-alive window (and one reaper period) they close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    while connections_to(port) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {pooled} idle connections still open",
            connections_to(port)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // And the next request opens a fresh one and works.
    assert_eq!(app.get("/api/chatkit/two-events-complete").await.status, 200);
}

#[actix_web::test]
async fn the_reaper_leaves_busy_connections_alone() {
    let up = spawn_upstream();
    let app = spawn_app_with(&[
        ("CHATKIT_URL", &format!("{}/chatkit", up.url)),
        ("UPSTREAM_KEEPALIVE_SECS", "1"),
    ])
    .await;
    app.login_as(0, "/dashboard").await;
    // Response headers awaited for 5 s: five keep-alive windows.
    assert_eq!(app.get("/api/chatkit/slow-headers").await.status, 200);
    // An upload that pauses for 3 s mid-body (a warm connection from the pool: the request
    // above released one).
    let body = futures_util::stream::iter([0u8, 1, 2]).then(|i| async move {
        if i == 1 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 1000]))
    });
    let echoed = app
        .send_stream(app.api_request("/api/chatkit/echo"), body)
        .await
        .json(20)
        .await;
    assert_eq!(echoed["body_bytes"], 3000, "{echoed}");
    // A body the browser stops reading for 3 s after its first chunk, then reads on.
    let mut slow = app.open_api("/api/chatkit/status/200", "{}").await;
    let mut got = slow.next_chunk(5).await.expect("a chunk").expect("ok").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Some(chunk) = slow.next_chunk(5).await {
        got += chunk.expect("the rest of the body").len();
    }
    assert_eq!(got, 3 * 1024 * 1024, "the whole body");
}

#[actix_web::test]
async fn the_proxy_reads_the_session_cookie_itself_and_answers_like_the_rest_of_api() {
    let (app, _up) = app_with_upstream(&[]).await;
    let ok = app.post_api("/api/chatkit", "{}").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The same routing answers as inside the /api scope.
    let r = app.get("/api/chatkit").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    for missing in ["/api/chatkitx", "/api/remote", "/api/remote/"] {
        let r = app.post_api(missing, "{}").await;
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.json()["error"], "not_found", "{missing}");
    }
    // Cross-site requests are refused before anything is forwarded.
    let foreign = app
        .send(
            app.api_request("/api/chatkit")
                .insert_header(("Origin", "https://evil.example")),
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(foreign.status, 403);
    // A tampered cookie is no session; the real one, remembered by the worker that opened
    // it, stops working the moment the session is signed out.
    let cookie = app.session_cookie().expect("session cookie");
    let mut bytes = cookie.clone().into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    app.use_cookie(&String::from_utf8(bytes).expect("ascii"));
    let r = app.post_api("/api/chatkit", "{}").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("not_authenticated"))
    );
    app.use_cookie(&cookie);
    assert_eq!(app.post_api("/api/chatkit", "{}").await.status, 200);
    assert_eq!(app.logout().await.status, 200);
    app.use_cookie(&cookie);
    let r = app.post_api("/api/chatkit", "{}").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("not_authenticated"))
    );
}
