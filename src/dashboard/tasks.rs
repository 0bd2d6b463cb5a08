//! The task pages: the list (filters, search, sort, pages), a task's page to edit it, the
//! new-task page, and the forms that create, change, complete, reopen and delete. Every
//! form is a plain POST with the session's form token, answered with a redirect to a GET;
//! `static/js/tasks.js` does the same through `/api/remote/tasks` when JavaScript runs.

use std::collections::BTreeMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::future::join;
use serde_json::{json, Map, Value};

use super::{
    backend::{Project, Task, Trouble},
    pages::{render, render_with, see_other},
    shell::{Shell, SignedIn},
    views::{
        back_with_notice, here, notice, parse_id, query_param, safe_back, trouble_page, Filters, TaskList,
        TaskRow,
    },
};
use crate::error::PageError;

/// A task list: `/tasks`, or a project's page.
#[derive(Template)]
#[template(path = "tasks.html")]
pub(super) struct TasksPage<'a> {
    shell: Shell<'a>,
    form_token: &'a str,
    notice: Option<&'static str>,
    /// On a project's page: the project (its filter is fixed).
    project: Option<Project>,
    fixed_project: Option<i64>,
    /// The project quick add starts with: the one the list is filtered to.
    quick_project: String,
    projects: Vec<Project>,
    filters: Filters,
    list_path: String,
    list: TaskList,
    total: u64,
    back: &'a str,
}

/// A task form's fields as typed (kept when the backend refuses them).
#[derive(Debug, Default)]
pub struct TaskValues {
    title: String,
    description: String,
    due_date: String,
    priority: String,
    status: String,
    project_id: String,
}

impl From<&Task> for TaskValues {
    fn from(t: &Task) -> Self {
        Self {
            title: t.title.clone(),
            description: t.description.clone(),
            due_date: t.due_date.clone().unwrap_or_default(),
            priority: t.priority.clone(),
            status: t.status.clone(),
            project_id: t.project_id.map(|p| p.to_string()).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "task_form.html")]
struct TaskFormPage<'a> {
    shell: Shell<'a>,
    form_token: &'a str,
    heading: &'a str,
    action: String,
    task_id: Option<i64>,
    values: TaskValues,
    errors: BTreeMap<String, String>,
    projects: Vec<Project>,
    back: &'a str,
    notice: Option<&'static str>,
    trouble: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "task_delete.html")]
struct DeletePage<'a> {
    shell: Shell<'a>,
    form_token: &'a str,
    id: i64,
    title: &'a str,
    back: &'a str,
}

/// A task form as posted.
#[derive(Debug, serde::Deserialize)]
pub struct TaskForm {
    form_token: String,
    back: Option<String>,
    title: Option<String>,
    description: Option<String>,
    due_date: Option<String>,
    priority: Option<String>,
    status: Option<String>,
    project_id: Option<String>,
}

impl TaskForm {
    /// The fields the form carries, as the API's JSON (empty date or project: none).
    fn fields(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: &Option<String>, empty_is_null: bool| {
            if let Some(v) = v {
                let v = v.trim();
                m.insert(
                    k.to_owned(),
                    if empty_is_null && v.is_empty() {
                        Value::Null
                    } else {
                        json!(v)
                    },
                );
            }
        };
        put("title", &self.title, false);
        put("description", &self.description, false);
        put("due_date", &self.due_date, true);
        put("priority", &self.priority, false);
        put("status", &self.status, false);
        put("project_id", &self.project_id, true);
        if let Some(Value::String(id)) = m.get("project_id") {
            if let Ok(n) = id.parse::<i64>() {
                m.insert("project_id".into(), json!(n));
            }
        }
        Value::Object(m)
    }

    fn values(&self) -> TaskValues {
        let v = |f: &Option<String>| f.clone().unwrap_or_default();
        TaskValues {
            title: v(&self.title),
            description: v(&self.description),
            due_date: v(&self.due_date),
            priority: self.priority.clone().unwrap_or_else(|| "normal".into()),
            status: self.status.clone().unwrap_or_else(|| "open".into()),
            project_id: v(&self.project_id),
        }
    }

    fn back(&self) -> &str {
        safe_back(self.back.as_deref(), "/tasks")
    }
}

/// `?back=` of a GET, if it is a path on this site.
fn back_param(req: &HttpRequest) -> String {
    safe_back(query_param(req, "back").as_deref(), "/tasks").to_owned()
}

/// One list page of `filters`, at `path` (`/tasks` or a project's page).
pub(super) async fn list_page<'a>(
    req: &HttpRequest,
    page: &'a SignedIn,
    filters: Filters,
    path: String,
    project: Option<Project>,
    shell: Shell<'a>,
    back: &'a str,
) -> Result<TasksPage<'a>, Trouble> {
    let backend = page.backend(req);
    let (projects, tasks) = join(backend.projects(), backend.tasks(&filters.backend_query())).await;
    let (projects, tasks) = (projects?, tasks?);
    let pages = tasks.page;
    Ok(TasksPage {
        shell,
        form_token: &page.form_token,
        notice: notice(req),
        fixed_project: project.as_ref().map(|p| p.id),
        quick_project: filters.project.clone(),
        project,
        list: TaskList {
            rows: tasks
                .data
                .into_iter()
                .map(|t| TaskRow::new(t, &projects))
                .collect(),
            page: pages,
            prev_link: (pages > 1).then(|| filters.link(&path, pages - 1)),
            next_link: tasks.has_more.then(|| filters.link(&path, pages + 1)),
            filtered: filters.narrowed(),
            clear_link: path.clone(),
        },
        projects,
        total: tasks.total,
        list_path: path,
        filters,
        back,
    })
}

/// `GET /tasks`.
pub async fn list(req: HttpRequest, page: SignedIn) -> Result<HttpResponse, PageError> {
    let filters = Filters::parse(req.query_string());
    let back = here(&req);
    match list_page(
        &req,
        &page,
        filters,
        "/tasks".into(),
        None,
        page.shell("tasks"),
        back,
    )
    .await
    {
        Ok(p) => render(&p),
        Err(t) => trouble_page(&page, back, t, "Tasks", "tasks"),
    }
}

/// `GET /tasks/new`: the full form (`?project=` preselects one).
pub async fn new_task(req: HttpRequest, page: SignedIn) -> Result<HttpResponse, PageError> {
    let projects = match page.backend(&req).projects().await {
        Ok(p) => p,
        Err(t) => return trouble_page(&page, here(&req), t, "New task", "tasks"),
    };
    let project_id = query_param(&req, "project").unwrap_or_default();
    let back = back_param(&req);
    render(&TaskFormPage {
        shell: page.shell("tasks"),
        form_token: &page.form_token,
        heading: "New task",
        action: "/tasks".into(),
        task_id: None,
        values: TaskValues {
            priority: "normal".into(),
            status: "open".into(),
            project_id,
            ..TaskValues::default()
        },
        errors: BTreeMap::new(),
        projects,
        back: &back,
        notice: None,
        trouble: None,
    })
}

/// A refused or failed form, shown again with what the user typed: field errors next to
/// their fields (422), or the trouble above the form (502/504).
async fn form_again(
    req: &HttpRequest,
    page: &SignedIn,
    form: &TaskForm,
    task: Option<i64>,
    trouble: Trouble,
) -> Result<HttpResponse, PageError> {
    let back = form.back();
    let (status, errors, message) = match trouble {
        Trouble::Invalid(fields) => (StatusCode::UNPROCESSABLE_ENTITY, fields, None),
        Trouble::Unavailable { status, message } => (status, BTreeMap::new(), Some(message)),
        Trouble::SignIn => return trouble_page(page, back, Trouble::SignIn, "Task", "tasks"),
        Trouble::NotFound => return trouble_page(page, back, Trouble::NotFound, "Task", "tasks"),
        Trouble::Page(e) => return Err(e),
    };
    // The project list is a nicety here: without it the form still shows what was typed,
    // the chosen project included (else saving again would clear it).
    let mut projects = page.backend(req).projects().await.unwrap_or_default();
    let typed = form.values();
    if let Ok(id) = typed.project_id.parse::<i64>() {
        if !projects.iter().any(|p| p.id == id) {
            projects.push(Project {
                id,
                name: format!("Project {id}"),
                open_count: 0,
                done_count: 0,
            });
        }
    }
    render_with(
        status,
        &TaskFormPage {
            shell: page.shell("tasks"),
            form_token: &page.form_token,
            heading: if task.is_some() { "Edit task" } else { "New task" },
            action: task.map_or("/tasks".into(), |id| format!("/tasks/{id}")),
            task_id: task,
            values: typed,
            errors,
            projects,
            back,
            notice: None,
            trouble: message,
        },
    )
}

/// `POST /tasks`: creates a task, back to the page the form was on.
pub async fn create(
    req: HttpRequest,
    page: SignedIn,
    form: web::Form<TaskForm>,
) -> Result<HttpResponse, PageError> {
    page.check_form(&req, &form.form_token)?;
    match page.backend(&req).create(&form.fields()).await {
        Ok(_) => Ok(see_other(&back_with_notice(form.back(), "created"))),
        Err(t) => form_again(&req, &page, &form, None, t).await,
    }
}

/// `GET /tasks/{id}`: the task, in its edit form.
pub async fn edit(
    req: HttpRequest,
    page: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path)?;
    let backend = page.backend(&req);
    let (task, projects) = join(backend.task(id), backend.projects()).await;
    let (task, projects) = match (task, projects) {
        (Ok(t), Ok(p)) => (t, p),
        (Err(t), _) | (_, Err(t)) => return trouble_page(&page, here(&req), t, "Task", "tasks"),
    };
    let back = back_param(&req);
    render(&TaskFormPage {
        shell: page.shell("tasks"),
        form_token: &page.form_token,
        heading: "Edit task",
        action: format!("/tasks/{id}"),
        task_id: Some(id),
        values: TaskValues::from(&task),
        errors: BTreeMap::new(),
        projects,
        back: &back,
        notice: notice(&req),
        trouble: None,
    })
}

/// `POST /tasks/{id}`: saves the edit form, back to the task with "Saved.".
pub async fn save(
    req: HttpRequest,
    page: SignedIn,
    path: web::Path<String>,
    form: web::Form<TaskForm>,
) -> Result<HttpResponse, PageError> {
    page.check_form(&req, &form.form_token)?;
    let id = parse_id(&path)?;
    match page.backend(&req).update(id, &form.fields()).await {
        Ok(_) => {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("back", form.back()).append_pair("notice", "saved");
            Ok(see_other(&format!("/tasks/{id}?{}", q.finish())))
        }
        Err(t) => form_again(&req, &page, &form, Some(id), t).await,
    }
}

/// `POST /tasks/{id}/status`: complete or reopen, back to the list.
pub async fn set_status(
    req: HttpRequest,
    page: SignedIn,
    path: web::Path<String>,
    form: web::Form<TaskForm>,
) -> Result<HttpResponse, PageError> {
    page.check_form(&req, &form.form_token)?;
    let id = parse_id(&path)?;
    let status = match form.status.as_deref() {
        Some(s @ ("open" | "done")) => s,
        _ => return Err(PageError::BadRequest("A task is either open or done.".into())),
    };
    match page.backend(&req).update(id, &json!({ "status": status })).await {
        Ok(_) => Ok(see_other(&back_with_notice(form.back(), status))),
        Err(t) => trouble_page(&page, form.back(), t, "Tasks", "tasks"),
    }
}

/// `GET /tasks/{id}/delete`: asks first.
pub async fn confirm_delete(
    req: HttpRequest,
    page: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path)?;
    let task = match page.backend(&req).task(id).await {
        Ok(t) => t,
        Err(t) => return trouble_page(&page, here(&req), t, "Delete a task", "tasks"),
    };
    let back = back_param(&req);
    render(&DeletePage {
        shell: page.shell("tasks"),
        form_token: &page.form_token,
        id,
        title: &task.title,
        back: &back,
    })
}

/// `POST /tasks/{id}/delete`: deletes, back to the list (never to the deleted task's page).
pub async fn delete(
    req: HttpRequest,
    page: SignedIn,
    path: web::Path<String>,
    form: web::Form<TaskForm>,
) -> Result<HttpResponse, PageError> {
    page.check_form(&req, &form.form_token)?;
    let id = parse_id(&path)?;
    // Never back to the deleted task's own pages.
    let own = format!("/tasks/{id}");
    let back = match form.back() {
        b if b
            .strip_prefix(&own)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?'])) =>
        {
            "/tasks"
        }
        b => b,
    };
    match page.backend(&req).delete(id).await {
        Ok(()) => Ok(see_other(&back_with_notice(back, "deleted"))),
        Err(t) => trouble_page(&page, back, t, "Delete a task", "tasks"),
    }
}
