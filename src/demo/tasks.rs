//! The demo backend's tasks and projects API, as README's "What your backend provides"
//! defines it: data per user (the verified token's `sub`) in a SQLite file, so that it
//! survives a restart; every user starts with a few tasks in two projects.

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use actix_web::{
    cookie::time::{Duration as Days, OffsetDateTime},
    http::header,
    web, HttpRequest, HttpResponse,
};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    QueryBuilder, Sqlite, SqlitePool,
};

use super::{backend::caller, DemoIdp, USERS};
use crate::dashboard::time::parse_date;

/// The tasks database.
#[derive(Clone)]
pub struct TaskStore {
    pool: SqlitePool,
}

/// A task, as the API answers it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Task {
    /// Numeric id, unique across users.
    pub id: i64,
    /// One line, 1–200 characters.
    pub title: String,
    /// Free text, up to 5,000 characters.
    pub description: String,
    /// `open` or `done`.
    pub status: String,
    /// `low`, `normal` or `high`.
    pub priority: String,
    /// `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// One of the user's projects.
    pub project_id: Option<i64>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339, while done.
    pub completed_at: Option<String>,
}

/// A project with its task counts.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Project {
    /// Numeric id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Open tasks in it.
    pub open_count: i64,
    /// Done tasks in it.
    pub done_count: i64,
}

const TASK_COLUMNS: &str = "id, title, description, status, priority, due_date, project_id, \
                            created_at, updated_at, completed_at";
const PROJECT_SELECT: &str = "SELECT p.id, p.name, \
    (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status = 'open') AS open_count, \
    (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status = 'done') AS done_count \
    FROM projects p WHERE p.owner = ";

/// Field errors of a request: field name → what is wrong, in words for the user.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Validated changes to a task (absent fields stay as they are).
#[derive(Debug, Default)]
pub struct Changes {
    title: Option<String>,
    description: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    due_date: Option<Option<String>>,
    project_id: Option<Option<i64>>,
}

impl Changes {
    /// Reads a JSON object; `creating` requires a title.
    pub fn parse(body: &Map<String, Value>, creating: bool) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut c = Changes::default();
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.trim().to_owned()),
            Value::Null => Some(String::new()),
            _ => None,
        };
        match body.get("title").map(text) {
            None if creating => {
                errors.insert("title", "Enter a title.".into());
            }
            None => {}
            Some(Some(t)) if t.is_empty() => {
                errors.insert("title", "Enter a title.".into());
            }
            Some(Some(t)) if t.chars().count() > 200 => {
                errors.insert("title", "Keep the title under 200 characters.".into());
            }
            Some(Some(t)) if t.chars().any(char::is_control) => {
                errors.insert("title", "The title must be one line.".into());
            }
            Some(Some(t)) => c.title = Some(t),
            Some(None) => {
                errors.insert("title", "The title must be text.".into());
            }
        }
        match body.get("description").map(text) {
            None => {}
            Some(Some(d)) if d.chars().count() > 5000 => {
                errors.insert(
                    "description",
                    "Keep the description under 5,000 characters.".into(),
                );
            }
            Some(Some(d)) => c.description = Some(d),
            Some(None) => {
                errors.insert("description", "The description must be text.".into());
            }
        }
        let one_of =
            |v: &Value, allowed: &[&str]| v.as_str().filter(|s| allowed.contains(s)).map(str::to_owned);
        if let Some(v) = body.get("status") {
            match one_of(v, &["open", "done"]) {
                Some(s) => c.status = Some(s),
                None => {
                    errors.insert("status", "Choose open or done.".into());
                }
            }
        }
        if let Some(v) = body.get("priority") {
            match one_of(v, &["low", "normal", "high"]) {
                Some(p) => c.priority = Some(p),
                None => {
                    errors.insert("priority", "Choose low, normal or high.".into());
                }
            }
        }
        match body.get("due_date").map(text) {
            None => {}
            Some(Some(d)) if d.is_empty() => c.due_date = Some(None),
            Some(Some(d)) if parse_date(&d).is_some() => c.due_date = Some(Some(d)),
            Some(_) => {
                errors.insert("due_date", "Enter a date as YYYY-MM-DD, e.g. 2026-12-24.".into());
            }
        }
        match body.get("project_id") {
            None => {}
            Some(Value::Null) => c.project_id = Some(None),
            Some(Value::String(s)) if s.trim().is_empty() => c.project_id = Some(None),
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            {
                Some(id) => c.project_id = Some(Some(id)),
                None => {
                    errors.insert("project_id", "Choose one of your projects.".into());
                }
            },
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }
}

fn now_iso() -> String {
    super::backend::now_iso()
}

/// The list's filters, sort and page, read from its query string.
#[derive(Debug)]
pub struct ListQuery {
    status: Option<String>,
    project: Option<Option<i64>>,
    q: Option<String>,
    sort: &'static str,
    page: i64,
    per_page: i64,
}

impl ListQuery {
    fn parse(query: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut out = ListQuery {
            status: None,
            project: None,
            q: None,
            sort: "due",
            page: 1,
            per_page: 50,
        };
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "status" => match &*v {
                    "" | "all" => out.status = None,
                    "open" | "done" => out.status = Some(v.into_owned()),
                    _ => {
                        errors.insert("status", "open, done or all".into());
                    }
                },
                "project" => match &*v {
                    "" => out.project = None,
                    "none" => out.project = Some(None),
                    n => match n.parse() {
                        Ok(id) => out.project = Some(Some(id)),
                        Err(_) => {
                            errors.insert("project", "a project id or none".into());
                        }
                    },
                },
                "q" => out.q = Some(v.trim().to_owned()).filter(|s| !s.is_empty()),
                "sort" => match &*v {
                    "due" => out.sort = "due",
                    "priority" => out.sort = "priority",
                    "created" => out.sort = "created",
                    _ => {
                        errors.insert("sort", "due, priority or created".into());
                    }
                },
                "page" => match v.parse() {
                    Ok(n) if n >= 1 => out.page = n,
                    _ => {
                        errors.insert("page", "a whole number from 1".into());
                    }
                },
                "per_page" => match v.parse() {
                    Ok(n) if (1..=100).contains(&n) => out.per_page = n,
                    _ => {
                        errors.insert("per_page", "a whole number from 1 to 100".into());
                    }
                },
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn filter(&self, qb: &mut QueryBuilder<'_, Sqlite>, owner: &str) {
        qb.push(" WHERE owner = ").push_bind(owner.to_owned());
        if let Some(s) = &self.status {
            qb.push(" AND status = ").push_bind(s.clone());
        }
        match self.project {
            None => {}
            Some(None) => {
                qb.push(" AND project_id IS NULL");
            }
            Some(Some(id)) => {
                qb.push(" AND project_id = ").push_bind(id);
            }
        }
        if let Some(q) = &self.q {
            let pattern = format!(
                "%{}%",
                q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
            );
            qb.push(" AND (title LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR description LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
    }
}

const PRIORITY_RANK: &str = "CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END";

impl TaskStore {
    /// Opens (creating it if missing) and migrates the database at `url` (`sqlite:`).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let url = crate::session::sql::prepare_sqlite_url(url)?;
        let options = SqliteConnectOptions::from_str(&url)?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .context("cannot open the demo backend's database")?;
        sqlx::migrate!("./migrations/demo")
            .run(&pool)
            .await
            .context("cannot migrate the demo backend's database")?;
        Ok(Self { pool })
    }

    /// Creates the user's starter projects and tasks, once.
    async fn seed(&self, owner: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query("INSERT OR IGNORE INTO seeded (owner) VALUES (?)")
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !fresh {
            return Ok(());
        }
        type Seed = (&'static str, [(&'static str, &'static str, Option<i64>, bool); 3]);
        let alice: [Seed; 2] = [
            (
                "Website relaunch",
                [
                    ("Write the launch announcement", "high", Some(2), false),
                    ("Review the new pricing page", "normal", Some(-1), false),
                    ("Fix the broken links in the footer", "low", None, true),
                ],
            ),
            (
                "Home",
                [
                    ("Book the plumber", "normal", Some(5), false),
                    ("Renew the car insurance", "high", Some(10), false),
                    ("Sort the photo albums", "low", None, false),
                ],
            ),
        ];
        let bob: [Seed; 2] = [
            (
                "Mobile app",
                [
                    ("Ship the 2.1 release", "high", Some(1), false),
                    ("Answer the app store reviews", "normal", Some(-2), false),
                    ("Update the screenshots", "low", None, true),
                ],
            ),
            (
                "Garden",
                [
                    ("Plant the tulip bulbs", "normal", Some(3), false),
                    ("Fix the fence", "low", None, true),
                    ("Order a new hose", "low", Some(14), false),
                ],
            ),
        ];
        let seeds = if owner == USERS[1].0 { bob } else { alice };
        let today = OffsetDateTime::now_utc().date();
        let now = now_iso();
        for (project, tasks) in seeds {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO projects (owner, name, created_at) VALUES (?, ?, ?) RETURNING id",
            )
            .bind(owner)
            .bind(project)
            .bind(&now)
            .fetch_one(&mut *tx)
            .await?;
            for (title, priority, due_in, done) in tasks {
                let due = due_in.map(|d| (today + Days::days(d)).to_string());
                sqlx::query(
                    "INSERT INTO tasks (owner, project_id, title, priority, due_date, status, \
                     created_at, updated_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(owner)
                .bind(id)
                .bind(title)
                .bind(priority)
                .bind(due)
                .bind(if done { "done" } else { "open" })
                .bind(&now)
                .bind(&now)
                .bind(done.then(|| now.clone()))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }

    async fn owns_project(&self, owner: &str, id: i64) -> sqlx::Result<bool> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM projects WHERE id = ? AND owner = ?")
            .bind(id)
            .bind(owner)
            .fetch_one(&self.pool)
            .await
            .map(|n| n > 0)
    }

    /// One of the user's tasks.
    pub async fn get(&self, owner: &str, id: i64) -> sqlx::Result<Option<Task>> {
        sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ? AND owner = ?"
        ))
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
    }

    /// Creates a task from validated changes; `Err(fields)` when the project is not theirs.
    pub async fn create(&self, owner: &str, c: Changes) -> sqlx::Result<Result<Task, FieldErrors>> {
        if let Some(Some(p)) = c.project_id {
            if !self.owns_project(owner, p).await? {
                return Ok(Err(no_such_project()));
            }
        }
        let now = now_iso();
        let status = c.status.unwrap_or_else(|| "open".into());
        let completed = (status == "done").then(|| now.clone());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tasks (owner, project_id, title, description, status, priority, due_date, \
             created_at, updated_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(owner)
        .bind(c.project_id.flatten())
        .bind(c.title.unwrap_or_default())
        .bind(c.description.unwrap_or_default())
        .bind(status)
        .bind(c.priority.unwrap_or_else(|| "normal".into()))
        .bind(c.due_date.flatten())
        .bind(&now)
        .bind(&now)
        .bind(completed)
        .fetch_one(&self.pool)
        .await?;
        Ok(self.get(owner, id).await?.ok_or_else(FieldErrors::new))
    }

    async fn update(
        &self,
        owner: &str,
        id: i64,
        c: Changes,
    ) -> sqlx::Result<Option<Result<Task, FieldErrors>>> {
        let Some(current) = self.get(owner, id).await? else {
            return Ok(None);
        };
        if let Some(Some(p)) = c.project_id {
            if !self.owns_project(owner, p).await? {
                return Ok(Some(Err(no_such_project())));
            }
        }
        let now = now_iso();
        let status = c.status.unwrap_or(current.status.clone());
        let completed = match (current.status.as_str(), status.as_str()) {
            (_, "open") => None,
            ("done", _) => current.completed_at.clone(),
            _ => Some(now.clone()),
        };
        sqlx::query(
            "UPDATE tasks SET title = ?, description = ?, status = ?, priority = ?, due_date = ?, \
             project_id = ?, updated_at = ?, completed_at = ? WHERE id = ? AND owner = ?",
        )
        .bind(c.title.unwrap_or(current.title))
        .bind(c.description.unwrap_or(current.description))
        .bind(status)
        .bind(c.priority.unwrap_or(current.priority))
        .bind(c.due_date.unwrap_or(current.due_date))
        .bind(c.project_id.unwrap_or(current.project_id))
        .bind(now)
        .bind(completed)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(self.get(owner, id).await?.map(Ok))
    }

    async fn list(&self, owner: &str, q: &ListQuery) -> sqlx::Result<(Vec<Task>, i64)> {
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM tasks");
        q.filter(&mut count, owner);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut select = QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks"));
        q.filter(&mut select, owner);
        select.push(match q.sort {
            "priority" => format!(" ORDER BY {PRIORITY_RANK}, due_date IS NULL, due_date, id"),
            "created" => " ORDER BY id DESC".to_owned(),
            _ => format!(" ORDER BY due_date IS NULL, due_date, {PRIORITY_RANK}, id"),
        });
        select
            .push(" LIMIT ")
            .push_bind(q.per_page)
            .push(" OFFSET ")
            .push_bind((q.page - 1) * q.per_page);
        let tasks = select.build_query_as().fetch_all(&self.pool).await?;
        Ok((tasks, total))
    }

    /// The user's projects with their counts, by name.
    pub async fn projects(&self, owner: &str) -> sqlx::Result<Vec<Project>> {
        sqlx::query_as(&format!("{PROJECT_SELECT} ? ORDER BY p.name, p.id"))
            .bind(owner)
            .fetch_all(&self.pool)
            .await
    }

    async fn project(&self, owner: &str, id: i64) -> sqlx::Result<Option<Project>> {
        sqlx::query_as(&format!("{PROJECT_SELECT} ? AND p.id = ?"))
            .bind(owner)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    async fn delete(&self, owner: &str, id: i64) -> sqlx::Result<bool> {
        sqlx::query("DELETE FROM tasks WHERE id = ? AND owner = ?")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() == 1)
    }
}

fn no_such_project() -> FieldErrors {
    FieldErrors::from([("project_id", "Choose one of your projects.".to_owned())])
}

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

/// Ids are numbers; anything else names no task.
fn id_of(path: &str) -> Option<i64> {
    path.parse().ok()
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
    let owner = tried!(user(&req, &idp, &store).await);
    let Some(id) = id_of(&path) else {
        return not_found("task");
    };
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
    let owner = tried!(user(&req, &idp, &store).await);
    let Some(id) = id_of(&path) else {
        return not_found("task");
    };
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
    let owner = tried!(user(&req, &idp, &store).await);
    let Some(id) = id_of(&path) else {
        return not_found("task");
    };
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
    let owner = tried!(user(&req, &idp, &store).await);
    let Some(id) = id_of(&path) else {
        return not_found("project");
    };
    match store.project(&owner, id).await {
        Ok(Some(p)) => HttpResponse::Ok().json(p),
        Ok(None) => not_found("project"),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_validated_per_field() {
        let body = json!({ "title": " ", "priority": "urgent", "due_date": "soon", "project_id": "x" });
        let errors = Changes::parse(body.as_object().expect("object"), true).expect_err("invalid");
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            ["due_date", "priority", "project_id", "title"]
        );
        let ok = json!({ "title": "Buy milk", "due_date": "", "project_id": "" });
        let c = Changes::parse(ok.as_object().expect("object"), true).expect("valid");
        assert_eq!(c.title.as_deref(), Some("Buy milk"));
        assert_eq!(c.due_date, Some(None));
        assert_eq!(c.project_id, Some(None));
        // A patch may leave the title out.
        assert!(Changes::parse(json!({ "status": "done" }).as_object().expect("object"), false).is_ok());
    }
}
