//! The project pages: the list with open and done counts, and a project's own task list
//! (where the assistant sends the project's id).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{
    backend::Project,
    pages::render,
    shell::{Shell, SignedIn},
    tasks::list_page,
    views::{here, parse_id, trouble_page, Filters},
};
use crate::error::PageError;

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage<'a> {
    shell: Shell<'a>,
    projects: Vec<Project>,
}

/// `GET /projects`.
pub async fn list(req: HttpRequest, page: SignedIn) -> Result<HttpResponse, PageError> {
    match page.backend(&req).projects().await {
        Ok(projects) => render(&ProjectsPage {
            shell: page.shell("projects"),
            projects,
        }),
        Err(t) => trouble_page(&page, here(&req), t, "Projects", "projects"),
    }
}

/// `GET /projects/{id}`: the project's tasks, with the list's filters.
pub async fn show(
    req: HttpRequest,
    page: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path)?;
    let back = here(&req);
    let project = match page.backend(&req).project(id).await {
        Ok(p) => p,
        Err(t) => return trouble_page(&page, back, t, "Project", "projects"),
    };
    let mut filters = Filters::parse(req.query_string());
    filters.project = id.to_string();
    let shell = page.project_shell(id);
    match list_page(
        &req,
        &page,
        filters,
        format!("/projects/{id}"),
        Some(project),
        shell,
        back,
    )
    .await
    {
        Ok(p) => render(&p),
        Err(t) => trouble_page(&page, back, t, "Project", "projects"),
    }
}
