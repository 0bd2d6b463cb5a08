//! What the task pages share: a task as a list row, the list's filters as they travel in
//! links, the notices after a form, and backend trouble told as a page.

use actix_web::{http::StatusCode, HttpRequest, HttpResponse};

use askama::Template;

use super::{
    backend::{Project, Task, Trouble},
    pages::render_with,
    shell::{Shell, SignedIn},
    time::{today, DueDate},
};
use crate::error::{ErrorPage, PageError};

/// A task as a list shows it.
pub struct TaskRow {
    /// Its id.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// Done or open.
    pub done: bool,
    /// `low`, `normal`, `high`.
    pub priority: String,
    /// When it is due.
    pub due: Option<DueDate>,
    /// Its project (id, name).
    pub project: Option<(i64, String)>,
}

impl TaskRow {
    /// `task`, its project named from `projects`.
    pub fn new(task: Task, projects: &[Project]) -> Self {
        let today = today();
        Self {
            done: task.done(),
            due: task.due_date.as_deref().and_then(|d| DueDate::new(d, today)),
            project: task
                .project_id
                .and_then(|id| projects.iter().find(|p| p.id == id))
                .map(|p| (p.id, p.name.clone())),
            id: task.id,
            title: task.title,
            priority: task.priority,
        }
    }

    /// Open and due before today.
    pub fn overdue(&self) -> bool {
        !self.done && self.due.as_ref().is_some_and(|d| d.overdue)
    }
}

/// A list of tasks as `task_list.html` shows it: rows, paging, and what an empty list says.
pub struct TaskList {
    /// The rows.
    pub rows: Vec<TaskRow>,
    /// This page's number, from 1.
    pub page: u32,
    /// The previous page, if any.
    pub prev_link: Option<String>,
    /// The next page, if any.
    pub next_link: Option<String>,
    /// Whether filters narrow it (an empty list then offers to clear them).
    pub filtered: bool,
    /// The list without filters.
    pub clear_link: String,
}

impl TaskList {
    /// One page of rows with no filters and no paging.
    pub fn plain(rows: Vec<TaskRow>) -> Self {
        Self {
            rows,
            page: 1,
            prev_link: None,
            next_link: None,
            filtered: false,
            clear_link: "/tasks".into(),
        }
    }
}

impl Project {
    /// Share of its tasks done, 0–100.
    pub fn percent_done(&self) -> u64 {
        let all = self.open_count + self.done_count;
        (self.done_count * 100).checked_div(all).unwrap_or(0)
    }
}

/// The list's filters and page, from the query string. Unknown values fall back to the
/// defaults (a stale link still shows a list).
#[derive(Debug, Clone)]
pub struct Filters {
    /// `open`, `done` or `all`.
    pub status: String,
    /// `""` (any), `none` or a project id.
    pub project: String,
    /// Search text.
    pub q: String,
    /// `due`, `priority` or `created`.
    pub sort: String,
    /// From 1.
    pub page: u32,
}

/// Tasks per page of a list.
pub const PER_PAGE: u32 = 25;

impl Filters {
    /// Reads `status`, `project`, `q`, `sort` and `page`.
    pub fn parse(query: &str) -> Self {
        let mut f = Self {
            status: "open".into(),
            project: String::new(),
            q: String::new(),
            sort: "due".into(),
            page: 1,
        };
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match (&*k, &*v) {
                ("status", s @ ("open" | "done" | "all")) => f.status = s.into(),
                ("project", p) if p == "none" || p.parse::<i64>().is_ok() => f.project = p.into(),
                ("q", q) => f.q = q.trim().chars().take(200).collect(),
                ("sort", s @ ("due" | "priority" | "created")) => f.sort = s.into(),
                ("page", n) => f.page = n.parse().ok().filter(|n| *n >= 1).unwrap_or(1),
                _ => {}
            }
        }
        f
    }

    /// The backend's query for these filters.
    pub fn backend_query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("status", &self.status)
            .append_pair("sort", &self.sort)
            .append_pair("page", &self.page.to_string())
            .append_pair("per_page", &PER_PAGE.to_string());
        if !self.project.is_empty() {
            q.append_pair("project", &self.project);
        }
        if !self.q.is_empty() {
            q.append_pair("q", &self.q);
        }
        q.finish()
    }

    /// `path` with these filters (and `page`), as a link.
    pub fn link(&self, path: &str, page: u32) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("status", &self.status);
        if !self.project.is_empty() && !path.starts_with("/projects/") {
            q.append_pair("project", &self.project);
        }
        if !self.q.is_empty() {
            q.append_pair("q", &self.q);
        }
        q.append_pair("sort", &self.sort);
        if page > 1 {
            q.append_pair("page", &page.to_string());
        }
        format!("{path}?{}", q.finish())
    }

    /// Whether anything narrows the list beyond the default.
    pub fn narrowed(&self) -> bool {
        self.status != "open" || !self.project.is_empty() || !self.q.is_empty()
    }

    /// "(open)", "(done)", "(in all)", with the project (named from `projects`) and the
    /// search.
    pub fn describe(&self, projects: &[Project]) -> String {
        let state = match self.status.as_str() {
            "open" => "open",
            "done" => "done",
            _ => "in all",
        };
        let mut out = format!("({state}");
        match self.project.as_str() {
            "" => {}
            "none" => out.push_str(", in no project"),
            id => {
                if let Some(p) = projects.iter().find(|p| p.id.to_string() == id) {
                    out.push_str(&format!(", in {}", p.name));
                }
            }
        }
        if !self.q.is_empty() {
            out.push_str(&format!(", matching “{}”", self.q));
        }
        out.push(')');
        out
    }
}

/// The fixed text of `?notice=…` after a form (never text from the link itself).
pub fn notice(req: &HttpRequest) -> Option<&'static str> {
    Some(match query_param(req, "notice")?.as_str() {
        "created" => "Task added.",
        "saved" => "Saved.",
        "deleted" => "Task deleted.",
        "done" => "Task completed.",
        "open" => "Task reopened.",
        _ => return None,
    })
}

/// `back` (a path on this site) with `notice=…` added, replacing an earlier one.
pub fn back_with_notice(back: &str, notice: &str) -> String {
    let (path, query) = back.split_once('?').unwrap_or((back, ""));
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "notice")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(kept).append_pair("notice", notice);
    format!("{path}?{}", q.finish())
}

/// A form's `back` field if it is a path on this site (in ASCII: it becomes a `Location`
/// header as it is), else `fallback`.
pub fn safe_back<'a>(back: Option<&'a str>, fallback: &'a str) -> &'a str {
    back.and_then(crate::auth::return_to::validate_return_to)
        .filter(|b| b.is_ascii())
        .unwrap_or(fallback)
}

#[derive(Template)]
#[template(path = "trouble.html")]
struct TroublePage<'a> {
    shell: Shell<'a>,
    heading: &'a str,
    message: &'a str,
    retry: &'a str,
}

/// The value of query parameter `name`, decoded.
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Ids in paths are numbers; anything else is a page that does not exist.
pub fn parse_id(path: &str) -> Result<i64, PageError> {
    path.parse().map_err(|_| PageError::NotFound)
}

/// This page's path and query: where "Try again" and sign-in lead back to after a GET.
pub fn here(req: &HttpRequest) -> &str {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/dashboard")
}

/// What a page does about backend trouble: the page frame with the message and a link to
/// try again (`here`) with 502/504, sign-in for a refused token (then back to `here`), a
/// "not found" page, or our own error page.
pub fn trouble_page(
    page: &SignedIn,
    here: &str,
    trouble: Trouble,
    heading: &str,
    current: &'static str,
) -> Result<HttpResponse, PageError> {
    match trouble {
        Trouble::Unavailable { status, message } => render_with(
            status,
            &TroublePage {
                shell: page.shell(current),
                heading,
                message,
                retry: here,
            },
        ),
        // A page, not a redirect: a provider that signs in silently would otherwise send the
        // browser round in a loop while the backend keeps refusing the token.
        Trouble::SignIn => {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("returnTo", here)
                .finish();
            let login = format!("/api/auth/login?{q}");
            Ok(ErrorPage {
                status: 401,
                title: "Sign in again",
                message: "The task service did not accept your sign-in. Sign in again to go on.",
                action: Some((&login, "Sign in again")),
                shell: page.shell(current),
            }
            .respond())
        }
        Trouble::NotFound => Ok(ErrorPage {
            status: 404,
            title: "Not found",
            message: "There is no such task or project, or it is not yours.",
            action: Some(("/tasks", "Go to your tasks")),
            shell: page.shell(current),
        }
        .respond()),
        Trouble::Invalid(fields) => {
            tracing::warn!(?fields, "the backend refused a request the page built");
            render_with(
                StatusCode::BAD_GATEWAY,
                &TroublePage {
                    shell: page.shell(current),
                    heading,
                    message: "The task service refused this request.",
                    retry: here,
                },
            )
        }
        Trouble::Page(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_through_links() {
        let f = Filters::parse("status=all&project=3&q=milk%20run&sort=priority&page=2");
        assert_eq!(
            (
                f.status.as_str(),
                f.project.as_str(),
                f.q.as_str(),
                f.sort.as_str(),
                f.page
            ),
            ("all", "3", "milk run", "priority", 2)
        );
        let again = Filters::parse(f.link("/tasks", 2).split_once('?').expect("query").1);
        assert_eq!(again.q, "milk run");
        assert_eq!(again.page, 2);
        let bad = Filters::parse("status=deleted&project=../x&sort=evil&page=-1");
        assert_eq!(
            (
                bad.status.as_str(),
                bad.project.as_str(),
                bad.sort.as_str(),
                bad.page
            ),
            ("open", "", "due", 1)
        );
    }

    #[test]
    fn the_count_line_says_what_narrows_the_list() {
        let home = Project {
            id: 3,
            name: "Home".into(),
            open_count: 1,
            done_count: 0,
        };
        let f = Filters::parse("status=all&project=3&q=milk");
        assert_eq!(
            f.describe(std::slice::from_ref(&home)),
            "(in all, in Home, matching “milk”)"
        );
        assert_eq!(
            Filters::parse("project=none").describe(&[home]),
            "(open, in no project)"
        );
    }

    #[test]
    fn notices_replace_an_earlier_one() {
        assert_eq!(
            back_with_notice("/tasks?status=all&notice=saved", "created"),
            "/tasks?status=all&notice=created"
        );
        assert_eq!(back_with_notice("/tasks", "deleted"), "/tasks?notice=deleted");
        assert_eq!(safe_back(Some("//evil.example"), "/tasks"), "/tasks");
    }
}
