//! `/dashboard`: what is open, overdue and due this week, the next tasks, the projects and
//! when the session ends.

use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use futures_util::future::join;

use super::{
    backend::Project,
    pages::render,
    shell::{Shell, SignedIn},
    time::ShownTime,
    views::{here, notice, trouble_page, TaskList, TaskRow},
};
use crate::error::PageError;

/// How many tasks "Next up" shows.
const NEXT_UP: usize = 5;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard<'a> {
    shell: Shell<'a>,
    form_token: &'a str,
    notice: Option<&'static str>,
    name: &'a str,
    email: Option<&'a str>,
    expires: ShownTime,
    open: u64,
    overdue: usize,
    due_soon: usize,
    list: TaskList,
    projects: Vec<Project>,
    fixed_project: Option<i64>,
    quick_project: String,
    back: &'a str,
}

/// `GET /dashboard`.
pub async fn dashboard(req: HttpRequest, page: SignedIn) -> Result<HttpResponse, PageError> {
    let backend = page.backend(&req);
    // Open tasks by due date: the overdue ones come first, so one page counts them.
    let (tasks, projects) = join(
        backend.tasks("status=open&sort=due&per_page=100"),
        backend.projects(),
    )
    .await;
    let (tasks, projects) = match (tasks, projects) {
        (Ok(t), Ok(p)) => (t, p),
        (Err(t), _) | (_, Err(t)) => return trouble_page(&page, here(&req), t, "Dashboard", "dashboard"),
    };
    let rows: Vec<TaskRow> = tasks
        .data
        .into_iter()
        .map(|t| TaskRow::new(t, &projects))
        .collect();
    let overdue = rows.iter().filter(|r| r.overdue()).count();
    let due_soon = rows
        .iter()
        .filter(|r| r.due.as_ref().is_some_and(|d| (0..7).contains(&d.days)))
        .count();
    let r = &page.session.record;
    render(&Dashboard {
        shell: page.shell("dashboard"),
        form_token: &page.form_token,
        notice: notice(&req),
        name: r.display_name(),
        email: r.email.as_deref(),
        expires: ShownTime::new(r.expires_at.min(r.idle_expires_at), crate::clock::now()),
        open: tasks.total,
        overdue,
        due_soon,
        list: TaskList::plain(rows.into_iter().take(NEXT_UP).collect()),
        projects,
        fixed_project: None,
        quick_project: String::new(),
        back: "/dashboard",
    })
}
