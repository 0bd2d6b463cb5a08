//! The demo backend's tasks API over HTTP, as README's "What your backend provides"
//! defines it: the caller is the verified token's `sub`, and another user's task or
//! project answers 404 as if it did not exist.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{
    backend::caller,
    task_input::{Changes, FieldErrors, ListQuery},
    tasks::TaskStore,
    DemoIdp,
};

/// Mounts the API at the backend's root (`/api/tasks`, `/api/projects`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/tasks")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/api/tasks/{id}")
            .route(web::get().to(get_one))
            .route(web::patch().to(update))
            .route(web::delete().to(remove)),
    )
    .route("/api/projects", web::get().to(projects))
    .route("/api/projects/{id}", web::get().to(project));
}

fn error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": code, "message": message }))
}

fn not_found(what: &str) -> HttpResponse {
    error(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        &format!("no such {what}"),
    )
}

fn invalid(fields: FieldErrors) -> HttpResponse {
    HttpResponse::UnprocessableEntity().json(json!({
        "error": "validation_failed",
        "message": "Some fields need another look.",
        "fields": fields,
    }))
}

fn internal(e: sqlx::Error) -> HttpResponse {
    tracing::error!(error = %e, "demo backend: database error");
    error(
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the task database failed",
    )
}

/// The caller's `sub` (401 otherwise), with their starter data in place.
async fn user(req: &HttpRequest, idp: &DemoIdp, store: &TaskStore) -> Result<String, Box<HttpResponse>> {
    let Some(sub) = caller(req, idp) else {
        return Err(Box::new(super::backend::unauthorized()));
    };
    store.seed(&sub).await.map_err(|e| Box::new(internal(e)))?;
    Ok(sub)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, Box<HttpResponse>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Box::new(error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        ))),
    }
}

/// The caller, and the id in the path (a number; anything else names no `what`: 404).
async fn owner_and_id(
    req: &HttpRequest,
    idp: &DemoIdp,
    store: &TaskStore,
    path: &str,
    what: &str,
) -> Result<(String, i64), Box<HttpResponse>> {
    let owner = user(req, idp, store).await?;
    let id = path.parse().map_err(|_| Box::new(not_found(what)))?;
    Ok((owner, id))
}

macro_rules! tried {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(res) => return *res,
        }
    };
}

async fn list(req: HttpRequest, idp: web::Data<DemoIdp>, store: web::Data<TaskStore>) -> HttpResponse {
    let owner = tried!(user(&req, &idp, &store).await);
    let q =
        match ListQuery::parse(req.query_string()) {
            Ok(q) => q,
            Err(fields) => return HttpResponse::BadRequest().json(json!({
                "error": "invalid_query", "message": "Some query parameters are not valid.", "fields": fields,
            })),
        };
    match store.list(&owner, &q).await {
        Ok((tasks, total)) => HttpResponse::Ok().json(json!({
            "data": tasks, "page": q.page, "per_page": q.per_page, "total": total,
            "has_more": q.page * q.per_page < total,
        })),
        Err(e) => internal(e),
    }
}

async fn create(
    req: HttpRequest,
    idp: web::Data<DemoIdp>,
    store: web::Data<TaskStore>,
    body: web::Bytes,
) -> HttpResponse {
    let owner = tried!(user(&req, &idp, &store).await);
    let body = tried!(json_object(&body));
    let changes = match Changes::parse(&body, true) {
        Ok(c) => c,
        Err(fields) => return invalid(fields),
    };
    match store.create(&owner, changes).await {
        Ok(Ok(task)) => HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
            .json(task),
        Ok(Err(fields)) => invalid(fields),
        Err(e) => internal(e),
    }
}

async fn get_one(
    req: HttpRequest,
    idp: web::Data<DemoIdp>,
    store: web::Data<TaskStore>,
    path: web::Path<String>,
) -> HttpResponse {
    let (owner, id) = tried!(owner_and_id(&req, &idp, &store, &path, "task").await);
    match store.get(&owner, id).await {
        Ok(Some(task)) => HttpResponse::Ok().json(task),
        Ok(None) => not_found("task"),
        Err(e) => internal(e),
    }
}

async fn update(
    req: HttpRequest,
    idp: web::Data<DemoIdp>,
    store: web::Data<TaskStore>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (owner, id) = tried!(owner_and_id(&req, &idp, &store, &path, "task").await);
    let body = tried!(json_object(&body));
    let changes = match Changes::parse(&body, false) {
        Ok(c) => c,
        Err(fields) => return invalid(fields),
    };
    match store.update(&owner, id, changes).await {
        Ok(Some(Ok(task))) => HttpResponse::Ok().json(task),
        Ok(Some(Err(fields))) => invalid(fields),
        Ok(None) => not_found("task"),
        Err(e) => internal(e),
    }
}

async fn remove(
    req: HttpRequest,
    idp: web::Data<DemoIdp>,
    store: web::Data<TaskStore>,
    path: web::Path<String>,
) -> HttpResponse {
    let (owner, id) = tried!(owner_and_id(&req, &idp, &store, &path, "task").await);
    match store.delete(&owner, id).await {
        Ok(true) => HttpResponse::NoContent().finish(),
        Ok(false) => not_found("task"),
        Err(e) => internal(e),
    }
}

async fn projects(req: HttpRequest, idp: web::Data<DemoIdp>, store: web::Data<TaskStore>) -> HttpResponse {
    let owner = tried!(user(&req, &idp, &store).await);
    match store.projects(&owner).await {
        Ok(list) => HttpResponse::Ok().json(json!({ "data": list })),
        Err(e) => internal(e),
    }
}

async fn project(
    req: HttpRequest,
    idp: web::Data<DemoIdp>,
    store: web::Data<TaskStore>,
    path: web::Path<String>,
) -> HttpResponse {
    let (owner, id) = tried!(owner_and_id(&req, &idp, &store, &path, "project").await);
    match store.project(&owner, id).await {
        Ok(Some(p)) => HttpResponse::Ok().json(p),
        Ok(None) => not_found("project"),
        Err(e) => internal(e),
    }
}
