//! spawn_app() and a small browser-like client: cookie jar, no redirects followed.

use std::{cell::RefCell, collections::BTreeMap, path::PathBuf};

use actix_web::web;
use awc::http::header::HeaderMap;
use bytes::Bytes;
use taskflow_bff::{config::Settings, demo::DemoIdp, startup::Application, state::AppState};

/// A running app on a random port with its own SQLite file.
pub struct TestApp {
    pub origin: String,
    pub handle: actix_web::dev::ServerHandle,
    pub state: web::Data<AppState>,
    pub client: awc::Client,
    pub jar: RefCell<BTreeMap<String, String>>,
    dir: PathBuf,
}

/// A response whose body is read as it streams.
pub struct Streamed {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>>>,
}

impl Streamed {
    /// The next chunk, or `None` at a clean end; panics after `secs` without one.
    pub async fn next_chunk(&mut self, secs: u64) -> Option<Result<Bytes, awc::error::PayloadError>> {
        use futures_util::StreamExt;
        tokio::time::timeout(std::time::Duration::from_secs(secs), self.body.next())
            .await
            .expect("a chunk in time")
    }
}

impl Streamed {
    /// Reads the rest of the body as JSON after checking for 200; panics after `secs`.
    pub async fn json(mut self, secs: u64) -> serde_json::Value {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(secs).await {
            body.extend_from_slice(&chunk.expect("a readable body"));
        }
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)))
    }
}

/// A response with its body read.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location header (status {})", self.status))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }
    /// Raw `Set-Cookie` lines for `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the app in demo mode with extra environment variables.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        // The log writer lives as long as the test process.
        std::mem::forget(taskflow_bff::telemetry::init(
            taskflow_bff::config::LogFormat::Pretty,
            "debug,sqlx=warn",
        ));
    }
    let dir = std::env::temp_dir().join(format!("taskflow-bff-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut vars: std::collections::HashMap<String, String> = [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("DATABASE_URL", format!("sqlite://{}/sessions.db", dir.display())),
        ("WORKERS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::from_map(&vars).expect("valid test settings");
    let app = Application::build(settings).await.expect("app builds");
    let state = app.state();
    let origin = state.origin().to_owned();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    // The server starts when its future is first polled: wait until it answers.
    let probe = awc::Client::default();
    for _ in 0..100 {
        if probe.get(format!("{origin}/healthz")).send().await.is_ok() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    TestApp {
        origin,
        handle,
        state,
        client: awc::Client::builder()
            .add_default_header(("User-Agent", "Mozilla/5.0 (taskflow tests)"))
            .disable_redirects()
            .timeout(std::time::Duration::from_secs(30))
            .finish(),
        jar: RefCell::new(BTreeMap::new()),
        dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestApp {
    pub fn demo(&self) -> &DemoIdp {
        self.state.demo.as_deref().expect("demo mode")
    }

    pub fn session_cookie_name(&self) -> String {
        self.state.session_cookie.clone()
    }

    /// The session cookie the jar holds, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.jar.borrow().get(&self.state.session_cookie).cloned()
    }

    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{}", self.origin, path_or_url)
        }
    }

    pub fn cookie_header(&self) -> Option<String> {
        let jar = self.jar.borrow();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store_cookies(&self, headers: &HeaderMap) {
        for v in headers.get_all("set-cookie").filter_map(|v| v.to_str().ok()) {
            let first = v.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let removal = v.contains("Max-Age=0") || value.is_empty();
            let mut jar = self.jar.borrow_mut();
            if removal {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// Sends a request as the browser would (cookies from the jar) and reads the body.
    pub async fn send(&self, req: awc::ClientRequest, body: Option<Vec<u8>>) -> Resp {
        let req = match self.cookie_header() {
            Some(c) => req.insert_header(("Cookie", c)),
            None => req,
        };
        let mut res = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        }
        .expect("request sent");
        let body = res.body().limit(64 * 1024 * 1024).await.expect("body read");
        self.store_cookies(res.headers());
        Resp {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body,
        }
    }

    /// A same-origin JSON POST as the dashboard's fetch wrapper builds it, before cookies;
    /// tests add their own headers to it.
    pub fn api_request(&self, path: &str) -> awc::ClientRequest {
        self.client
            .post(self.url(path))
            .insert_header(("Origin", self.origin.as_str()))
            .insert_header(("X-CSRF", "1"))
            .insert_header(("Content-Type", "application/json"))
    }

    /// A same-origin API request whose response body is left unread, for streaming tests.
    pub async fn open_api(&self, path: &str, body: &str) -> Streamed {
        let mut req = self.api_request(path);
        if let Some(c) = self.cookie_header() {
            req = req.insert_header(("Cookie", c));
        }
        let res = req.send_body(body.to_owned()).await.expect("request sent");
        Streamed {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: Box::pin(res),
        }
    }

    /// The store's key for the session cookie in the jar: the cookie is encrypted, so this
    /// opens it as the server does and hashes the session key inside.
    pub fn session_key_hash(&self) -> String {
        use actix_web::cookie::{Cookie, CookieJar};
        let name = self.session_cookie_name();
        let value = self.session_cookie().expect("signed in");
        let mut jar = CookieJar::new();
        jar.add_original(
            Cookie::parse_encoded(format!("{name}={value}"))
                .expect("cookie")
                .into_owned(),
        );
        let key = jar
            .private(self.state.keys.session_cookie_key())
            .get(&name)
            .expect("a session cookie this app encrypted");
        taskflow_bff::ids::sha256_hex(key.value())
    }

    /// The stored session of the cookie in the jar.
    pub async fn session_record(&self) -> taskflow_bff::session::SessionRecord {
        self.state
            .store
            .load(&self.session_key_hash())
            .await
            .expect("store")
            .expect("session")
    }

    /// Marks the session's forwarded token as expiring now, so the next use refreshes it.
    pub async fn expire_token(&self) {
        let hash = self.session_key_hash();
        let rec = self.session_record().await;
        let mut tokens = rec.tokens.clone();
        tokens.expires_at = taskflow_bff::clock::now();
        assert!(self
            .state
            .store
            .update_tokens(&hash, rec.version, &tokens, None, None)
            .await
            .expect("update"));
    }

    /// A same-origin POST over a raw socket (`Connection: close`), read to EOF. Returns the
    /// status line and whether the chunked body ended with its last chunk: unlike awc,
    /// this tells a cut stream from a complete one.
    pub fn raw_post(&self, path: &str, body: &str) -> (String, String, bool) {
        raw_post_to(&self.origin, self.cookie_header(), path, body)
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path)), None).await
    }

    /// A same-origin POST as the dashboard's fetch wrapper sends it.
    pub async fn post_api(&self, path: &str, body: &str) -> Resp {
        self.send(self.api_request(path), Some(body.as_bytes().to_vec()))
            .await
    }

    /// Acts as the browser holding session cookie `cookie` (and no other cookie).
    pub fn use_cookie(&self, cookie: &str) {
        self.jar.borrow_mut().clear();
        self.jar
            .borrow_mut()
            .insert(self.session_cookie_name(), cookie.to_owned());
    }

    /// The form token a signed-in page carries in its forms.
    pub async fn form_token(&self, page: &str) -> String {
        let html = self.get(page).await.text();
        let at = html
            .find("name=\"form_token\" value=\"")
            .expect("a form token on the page");
        let rest = &html[at + "name=\"form_token\" value=\"".len()..];
        rest[..rest.find('"').expect("closing quote")].to_owned()
    }

    pub async fn post_form(&self, path: &str, form: &[(String, String)]) -> Resp {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = self
            .client
            .post(self.url(path))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
        self.send(req, Some(body.into_bytes())).await
    }

    /// Sends a request with a streamed body as the browser would (cookies from the jar);
    /// the response body is left unread.
    pub async fn send_stream<S, E>(&self, req: awc::ClientRequest, body: S) -> Streamed
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + 'static,
        E: Into<Box<dyn std::error::Error>> + 'static,
    {
        let req = match self.cookie_header() {
            Some(c) => req.insert_header(("Cookie", c)),
            None => req,
        };
        let res = req.send_stream(body).await.expect("request sent");
        Streamed {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: Box::pin(res),
        }
    }

    /// Starts a login and returns the provider's authorize URL.
    pub async fn start_login(&self, return_to: &str) -> String {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("returnTo", return_to)
            .finish();
        let r = self.get(&format!("/api/auth/login?{q}")).await;
        assert_eq!(r.status, 302, "{}", r.text());
        r.location()
    }

    /// At the demo provider: open the authorize page, pick `user`; returns the callback URL.
    pub async fn authorize(&self, authorize_url: &str, user: usize) -> String {
        let page = self.get(authorize_url).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let url = url::Url::parse(authorize_url).expect("absolute authorize URL");
        let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        form.push(("user".into(), user.to_string()));
        let r = self.post_form(url.path(), &form).await;
        assert_eq!(r.status, 302, "{}", r.text());
        r.location()
    }

    /// The whole sign-in; returns the callback's response.
    pub async fn login_as(&self, user: usize, return_to: &str) -> Resp {
        let authorize = self.start_login(return_to).await;
        let callback = self.authorize(&authorize, user).await;
        self.get(&callback).await
    }

    /// Whether `/readyz` turns 200 within `secs` seconds.
    pub async fn becomes_ready(&self, secs: u64) -> bool {
        for _ in 0..secs * 10 {
            if self.get("/readyz").await.status == 200 {
                return true;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn logout(&self) -> Resp {
        self.post_api("/api/auth/logout", "").await
    }
}

pub fn assert_is_redirect_to(r: &Resp, location: &str) {
    assert_eq!(r.status, 302, "body: {}", r.text());
    assert_eq!(r.location(), location);
}

/// [`TestApp::raw_post`] as a free function, for use from another thread.
pub fn raw_post_to(origin: &str, cookies: Option<String>, path: &str, body: &str) -> (String, String, bool) {
    use std::io::{Read, Write};
    let addr = origin.trim_start_matches("http://").to_owned();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .expect("timeout");
    let cookie = cookies.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nX-CSRF: 1\r\n{cookie}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let _ = sock.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    let complete = rest.ends_with("0\r\n\r\n");
    (status, rest.to_owned(), complete)
}
