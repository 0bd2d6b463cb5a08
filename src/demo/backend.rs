//! The demo backend: a ChatKit-compatible assistant and the tasks API (`demo::tasks`). It
//! verifies the Bearer token against the demo provider's keys and streams its answers word
//! by word; it echoes what it is told, says which page it was asked from, and adds a task
//! when asked to ("add a task: buy milk").

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};

use super::{task_input::Changes, tasks::TaskStore, DemoIdp};
use crate::ids::random_token;

/// State of the demo backend: threads and attachments per user, and the tasks database.
pub struct DemoBackend {
    word_delay: Duration,
    threads: Mutex<HashMap<String, Thread>>,
    attachments: Mutex<HashMap<String, Value>>,
    /// Answers whose client went away before the end (Stop, a closed tab).
    cancelled: Arc<std::sync::atomic::AtomicU64>,
    tasks: TaskStore,
    /// The page context of the last chat request, whoever sent it (for tests and the
    /// curious: the demo backend listens on loopback only).
    last_context: Mutex<Value>,
}

struct Thread {
    owner: String,
    created_at: String,
    title: Option<String>,
    items: Vec<Value>,
}

impl DemoBackend {
    /// A backend without threads that waits `word_delay` between streamed words.
    pub fn new(word_delay: Duration, tasks: TaskStore) -> Self {
        Self {
            word_delay,
            threads: Mutex::default(),
            attachments: Mutex::default(),
            cancelled: Arc::default(),
            tasks,
            last_context: Mutex::new(Value::Null),
        }
    }
}

/// Mounts the backend's routes at its root, as a separate backend has them.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/chatkit", web::post().to(chatkit))
        .route("/chatkit/upload", web::post().to(upload_direct))
        .route(
            "/chatkit/attachments/{id}/upload",
            web::post().to(upload_two_phase),
        )
        .configure(super::tasks_api::configure)
        .route("/demo/stats", web::get().to(stats));
}

/// The demo backend, listening on a loopback port of its own.
pub struct RunningBackend {
    /// Its base URL, `http://127.0.0.1:{port}`.
    pub url: url::Url,
    /// The server, not yet polled.
    pub server: actix_web::dev::Server,
}

/// Binds the demo backend on `127.0.0.1:0`, its tasks kept in the SQLite database at
/// `database_url`; it trusts tokens of `idp` only.
pub async fn start(
    idp: Arc<DemoIdp>,
    word_delay: Duration,
    database_url: &str,
) -> anyhow::Result<RunningBackend> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let port = listener.local_addr()?.port();
    let tasks = TaskStore::open(database_url).await?;
    let store = web::Data::new(tasks.clone());
    let backend = web::Data::new(DemoBackend::new(word_delay, tasks));
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(web::Data::from(idp.clone()))
            .app_data(backend.clone())
            .app_data(store.clone())
            .configure(configure)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(RunningBackend {
        url: url::Url::parse(&format!("http://127.0.0.1:{port}"))?,
        server,
    })
}

/// Now, in RFC 3339.
pub(super) fn now_iso() -> String {
    actix_web::cookie::time::OffsetDateTime::now_utc()
        .format(&actix_web::cookie::time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", &random_token()[..12])
}

/// 401 with the error shape of the API.
pub(super) fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .json(json!({ "error": "invalid_token", "message": "a valid Bearer token is required" }))
}

/// The caller's subject, from a Bearer token the demo provider issued.
pub(super) fn caller(req: &HttpRequest, idp: &DemoIdp) -> Option<String> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    idp.verify_bearer(token)
}

/// Counts an answer as cancelled when its stream is dropped before its last event, as a
/// ChatKit server notices a client that went away (and saves the partial reply).
struct Cancelled {
    counter: Arc<std::sync::atomic::AtomicU64>,
    finished: bool,
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.finished {
            self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("demo backend: the client cancelled an answer");
        }
    }
}

fn sse(events: Vec<Value>, delay: Duration, cancelled: Arc<std::sync::atomic::AtomicU64>) -> HttpResponse {
    let last = events.len().saturating_sub(1);
    let mut guard = Cancelled {
        counter: cancelled,
        finished: events.is_empty(),
    };
    let body = stream::iter(events.into_iter().enumerate()).then(move |(i, e)| async move {
        if i > 0 {
            actix_web::rt::time::sleep(delay).await;
        }
        Ok::<_, std::io::Error>((i, Bytes::from(format!("data: {e}\n\n"))))
    });
    let body = body.map(move |r| {
        r.map(|(i, bytes)| {
            if i == last {
                guard.finished = true;
            }
            bytes
        })
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(body)
}

fn input_text(params: &Value) -> String {
    params["input"]["content"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// What the assistant answers to one message, and the change it made to the user's tasks.
struct Reply {
    text: String,
    effect: Option<Value>,
}

/// The page the user asked from, as the dashboard's context headers tell it.
struct PageContext {
    url: Option<String>,
    title: Option<String>,
    project: Option<i64>,
}

impl PageContext {
    fn of(req: &HttpRequest) -> Self {
        // The dashboard sends the title percent-encoded (header values are Latin-1 in fetch).
        let text = |n: &str| {
            fwd(req, n)
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .trim()
                        .to_owned()
                })
                .filter(|v| !v.is_empty())
        };
        Self {
            url: text("x-page-url"),
            title: text("x-page-title"),
            project: fwd(req, "x-project-id").and_then(|v| v.trim().parse().ok()),
        }
    }

    fn json(&self) -> Value {
        json!({ "page_url": self.url, "page_title": self.title, "project_id": self.project })
    }
}

/// "add a task: buy milk" (or "add task buy milk") → "buy milk".
fn task_request(text: &str) -> Option<&str> {
    let lower = text.trim_start().to_ascii_lowercase();
    let rest = ["add a task", "add task"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))?;
    let offset = text.len() - rest.len();
    let title = text[offset..].trim_start_matches([':', ' ']).trim();
    (!title.is_empty()).then_some(title)
}

/// The assistant: adds a task when asked to, echoes anything else, and says which page
/// (and project) it was asked from.
async fn reply(backend: &DemoBackend, user: &str, text: &str, page: &PageContext) -> Reply {
    let project_name = match page.project {
        Some(id) => backend
            .tasks
            .projects(user)
            .await
            .ok()
            .and_then(|ps| ps.into_iter().find(|p| p.id == id).map(|p| p.name)),
        None => None,
    };
    let mut out = match task_request(text) {
        Some(title) => add_task(backend, user, title, page.project, project_name.as_deref()).await,
        None if text.trim().is_empty() => Reply {
            text: "(empty message)".into(),
            effect: None,
        },
        None => Reply {
            text: format!("You said: {text}"),
            effect: None,
        },
    };
    let path = page
        .url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.path().to_owned());
    // The chat page is the assistant alone: no page beside it to speak of.
    if let (Some(title), false) = (&page.title, path.as_deref() == Some("/chat")) {
        let path = path.map(|p| format!(" ({p})")).unwrap_or_default();
        out.text.push_str(&format!("\n\nAsked from “{title}”{path}"));
        match (&project_name, page.project) {
            (Some(name), Some(id)) => out.text.push_str(&format!(", project “{name}” (id {id})")),
            (None, Some(id)) => out
                .text
                .push_str(&format!(", project id {id} (not one of yours)")),
            _ => {}
        }
        out.text.push('.');
    }
    out
}

async fn add_task(
    backend: &DemoBackend,
    user: &str,
    title: &str,
    project: Option<i64>,
    project_name: Option<&str>,
) -> Reply {
    let body = json!({ "title": title, "project_id": project_name.and(project) });
    let created = match Changes::parse(body.as_object().unwrap_or(&serde_json::Map::new()), true) {
        Ok(changes) => backend.tasks.create(user, changes).await,
        Err(fields) => Ok(Err(fields)),
    };
    match created {
        Ok(Ok(task)) => Reply {
            text: match project_name {
                Some(p) => format!("Added “{}” to {p}.", task.title),
                None => format!("Added “{}” to your tasks.", task.title),
            },
            effect: Some(json!({ "type": "client_effect", "name": "tasks.changed",
                "data": { "task_id": task.id, "project_id": task.project_id } })),
        },
        Ok(Err(fields)) => Reply {
            text: format!(
                "I could not add that task: {}",
                fields.values().cloned().collect::<Vec<_>>().join(" ")
            ),
            effect: None,
        },
        Err(e) => {
            tracing::error!(error = %e, "demo backend: cannot add a task");
            Reply {
                text: "I could not add that task: the task database failed.".into(),
                effect: None,
            }
        }
    }
}

/// The streamed events of one turn: the user's message, then the reply word by word.
fn turn(thread_id: &str, params: &Value, reply: Reply) -> (Vec<Value>, Value, Value) {
    let user_item = json!({
        "id": new_id("msg"), "thread_id": thread_id, "created_at": now_iso(), "type": "user_message",
        "content": params["input"]["content"].clone(),
        "attachments": params["input"]["attachments"].clone(),
        "inference_options": params["input"]["inference_options"].clone(),
    });
    let answer_id = new_id("msg");
    let Reply { text: reply, effect } = reply;
    let mut events = vec![
        json!({ "type": "thread.item.done", "item": user_item }),
        json!({ "type": "stream_options", "stream_options": { "allow_cancel": true } }),
        json!({ "type": "thread.item.added", "item": {
            "id": answer_id, "thread_id": thread_id, "created_at": now_iso(),
            "type": "assistant_message", "content": [] } }),
        json!({ "type": "thread.item.updated", "item_id": answer_id, "update": {
            "type": "assistant_message.content_part.added", "content_index": 0,
            "content": { "type": "output_text", "text": "", "annotations": [] } } }),
    ];
    // Word by word, spaces and line breaks kept with the word before them.
    let mut start = 0;
    let bytes = reply.as_bytes();
    while start < reply.len() {
        let mut end = start;
        while end < reply.len() && !bytes[end].is_ascii_whitespace() {
            end += 1;
        }
        while end < reply.len() && bytes[end].is_ascii_whitespace() {
            end += 1;
        }
        events.push(
            json!({ "type": "thread.item.updated", "item_id": answer_id, "update": {
            "type": "assistant_message.content_part.text_delta", "content_index": 0, "delta": &reply[start..end] } }),
        );
        start = end;
    }
    let answer = json!({
        "id": answer_id, "thread_id": thread_id, "created_at": now_iso(), "type": "assistant_message",
        "content": [{ "type": "output_text", "text": reply, "annotations": [] }],
    });
    events.push(
        json!({ "type": "thread.item.updated", "item_id": answer_id, "update": {
        "type": "assistant_message.content_part.done", "content_index": 0,
        "content": { "type": "output_text", "text": reply, "annotations": [] } } }),
    );
    events.push(json!({ "type": "thread.item.done", "item": answer }));
    events.extend(effect);
    (events, user_item, answer)
}

fn thread_json(id: &str, t: &Thread) -> Value {
    json!({ "id": id, "title": t.title, "created_at": t.created_at, "status": { "type": "active" }, "metadata": {} })
}

async fn chatkit(
    req: HttpRequest,
    idp: web::Data<DemoIdp>,
    backend: web::Data<DemoBackend>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(user) = caller(&req, &idp) else {
        return unauthorized();
    };
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest()
            .json(json!({ "error": "invalid_request", "message": "body must be JSON" }));
    };
    let params = &msg["params"];
    let delay = backend.word_delay;
    let kind = msg["type"].as_str().unwrap_or("");
    let answer = if matches!(kind, "threads.create" | "threads.add_user_message") {
        let page = PageContext::of(&req);
        *backend.last_context.lock().unwrap_or_else(|p| p.into_inner()) = page.json();
        Some(reply(&backend, &user, &input_text(params), &page).await)
    } else {
        None
    };
    match (kind, answer) {
        ("threads.create", Some(answer)) => {
            let id = new_id("thr");
            let (mut events, user_item, answer) = turn(&id, params, answer);
            let thread = Thread {
                owner: user,
                created_at: now_iso(),
                title: Some(input_text(params).chars().take(40).collect()),
                items: vec![user_item, answer],
            };
            let mut created = thread_json(&id, &thread);
            created["items"] = json!({ "data": [], "has_more": false, "after": null });
            events.insert(0, json!({ "type": "thread.created", "thread": created }));
            backend.threads.lock().unwrap_or_else(|p| p.into_inner()).insert(id, thread);
            sse(events, delay, backend.cancelled.clone())
        }
        ("threads.add_user_message", Some(answer)) => {
            let id = params["thread_id"].as_str().unwrap_or("").to_owned();
            let (events, user_item, answer) = turn(&id, params, answer);
            let known = {
                let mut threads = backend.threads.lock().unwrap_or_else(|p| p.into_inner());
                match threads.get_mut(&id).filter(|t| t.owner == user) {
                    Some(t) => {
                        t.items.push(user_item);
                        t.items.push(answer);
                        true
                    }
                    None => false,
                }
            };
            if !known {
                // As the ChatKit server does: the stream starts, then the body is aborted.
                let failing = stream::once(async {
                    // Headers go out first; then the body fails.
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                    Err::<Bytes, _>(std::io::Error::other("thread not found"))
                });
                return HttpResponse::Ok().content_type("text/event-stream").streaming(failing);
            }
            sse(events, delay, backend.cancelled.clone())
        }
        ("threads.list", _) => {
            let threads = backend.threads.lock().unwrap_or_else(|p| p.into_inner());
            let data: Vec<Value> =
                threads.iter().filter(|(_, t)| t.owner == user).map(|(id, t)| thread_json(id, t)).collect();
            HttpResponse::Ok().json(json!({ "data": data, "has_more": false, "after": null }))
        }
        ("items.list", _) => {
            let id = params["thread_id"].as_str().unwrap_or("");
            let threads = backend.threads.lock().unwrap_or_else(|p| p.into_inner());
            match threads.get(id).filter(|t| t.owner == user) {
                Some(t) => HttpResponse::Ok().json(json!({ "data": t.items, "has_more": false, "after": null })),
                None => HttpResponse::NotFound().json(json!({ "error": "not_found", "message": "no such thread" })),
            }
        }
        ("attachments.create", _) => {
            let id = new_id("att");
            let proto = fwd(&req, "x-forwarded-proto").unwrap_or("http");
            let host = fwd(&req, "x-forwarded-host").unwrap_or("127.0.0.1");
            // The usual convention: public path = X-Forwarded-Prefix + the path we received.
            let prefix = fwd(&req, "x-forwarded-prefix").unwrap_or("");
            let here = req.path();
            let att = json!({
                "id": id, "type": "file",
                "name": params["name"], "mime_type": params["mime_type"],
                "upload_descriptor": { "url": format!("{proto}://{host}{prefix}{here}/attachments/{id}/upload"), "method": "POST", "headers": {} },
            });
            let mut stored = att.clone();
            stored["owner"] = json!(user);
            backend.attachments.lock().unwrap_or_else(|p| p.into_inner()).insert(id, stored);
            HttpResponse::Ok().json(att)
        }
        (other, _) => HttpResponse::BadRequest()
            .json(json!({ "error": "unsupported", "message": format!("the demo backend does not implement {other:?}") })),
    }
}

fn fwd<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads a multipart body as it streams in, checking its closing boundary.
async fn receive_multipart(req: &HttpRequest, mut payload: web::Payload) -> Result<(u64, u64), String> {
    let ct = fwd(req, "content-type").unwrap_or("");
    let boundary = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
        .ok_or("expected multipart/form-data with a boundary")?;
    let closing = format!("--{boundary}--");
    let (mut bytes, mut chunks) = (0u64, 0u64);
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        bytes += chunk.len() as u64;
        chunks += 1;
        tail.extend_from_slice(&chunk);
        if tail.len() > 256 {
            tail.drain(..tail.len() - 256);
        }
    }
    let end = String::from_utf8_lossy(&tail);
    if !end.trim_end().ends_with(&closing) {
        return Err("the multipart body is incomplete".into());
    }
    Ok((bytes, chunks))
}

async fn upload_direct(req: HttpRequest, idp: web::Data<DemoIdp>, payload: web::Payload) -> HttpResponse {
    let Some(_user) = caller(&req, &idp) else {
        return unauthorized();
    };
    match receive_multipart(&req, payload).await {
        Ok((bytes, chunks)) => HttpResponse::Ok().json(json!({
            "id": new_id("att"), "type": "file", "upload_bytes": bytes, "upload_chunks": chunks,
        })),
        Err(e) => HttpResponse::BadRequest().json(json!({ "error": "bad_upload", "message": e })),
    }
}

async fn upload_two_phase(
    req: HttpRequest,
    idp: web::Data<DemoIdp>,
    backend: web::Data<DemoBackend>,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let Some(user) = caller(&req, &idp) else {
        return unauthorized();
    };
    let id = path.into_inner();
    let known = backend
        .attachments
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .is_some_and(|a| a["owner"] == json!(user));
    if !known {
        return HttpResponse::NotFound()
            .json(json!({ "error": "not_found", "message": "no such attachment" }));
    }
    match receive_multipart(&req, payload).await {
        Ok((bytes, chunks)) => {
            HttpResponse::Ok().json(json!({ "id": id, "upload_bytes": bytes, "upload_chunks": chunks }))
        }
        Err(e) => HttpResponse::BadRequest().json(json!({ "error": "bad_upload", "message": e })),
    }
}

/// `GET /demo/stats`: what the demo backend noticed (for tests and the curious).
async fn stats(backend: web::Data<DemoBackend>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "cancelled_answers": backend.cancelled.load(std::sync::atomic::Ordering::Relaxed),
        "last_chat_context": backend.last_context.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    }))
}
