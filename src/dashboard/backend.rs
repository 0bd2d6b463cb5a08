//! The tasks and projects API as the pages use it (README: "What your backend provides"),
//! called through the proxy's own path (`proxy::call`), answers read into types and
//! failures sorted into what a page does about them.

use std::collections::BTreeMap;

use actix_web::{
    http::{Method, StatusCode},
    HttpRequest,
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::Value;

use crate::{
    auth::extractor::CurrentSession,
    error::{ApiError, PageError},
    proxy::{call::call, forward::ProxyClient},
    state::AppState,
};

/// A task.
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    /// Its id.
    pub id: i64,
    /// One line.
    pub title: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// `open` or `done`.
    pub status: String,
    /// `low`, `normal` or `high`.
    #[serde(default = "normal")]
    pub priority: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub due_date: Option<String>,
    /// Its project.
    #[serde(default)]
    pub project_id: Option<i64>,
}

fn normal() -> String {
    "normal".into()
}

impl Task {
    /// Whether it is done.
    pub fn done(&self) -> bool {
        self.status == "done"
    }
}

/// One page of a task list.
#[derive(Debug, Deserialize)]
pub struct TaskPage {
    /// The tasks.
    pub data: Vec<Task>,
    /// This page's number, from 1.
    #[serde(default = "first")]
    pub page: u32,
    /// All tasks that match, on every page.
    #[serde(default)]
    pub total: u64,
    /// Whether a next page exists.
    #[serde(default)]
    pub has_more: bool,
}

fn first() -> u32 {
    1
}

/// A project with its counts.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Open tasks.
    #[serde(default)]
    pub open_count: u64,
    /// Done tasks.
    #[serde(default)]
    pub done_count: u64,
}

#[derive(Deserialize)]
struct ProjectList {
    data: Vec<Project>,
}

/// Why a call did not give the page what it wanted.
#[derive(Debug)]
pub enum Trouble {
    /// The backend is down, slow, failed or answered nonsense: the page says so inline,
    /// with a retry link. `status` is what the page answers (502 or 504).
    Unavailable {
        /// 502 or 504.
        status: StatusCode,
        /// For the user.
        message: &'static str,
    },
    /// The backend does not accept the token (even a refreshed one): sign in again.
    SignIn,
    /// No such task or project (or not the user's).
    NotFound,
    /// The backend refused the input: field → message.
    Invalid(BTreeMap<String, String>),
    /// Our side failed (the session store, the provider during a refresh).
    Page(PageError),
}

impl From<ApiError> for Trouble {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotAuthenticated | ApiError::SessionExpired => Self::SignIn,
            ApiError::Upstream {
                status, detail, code, ..
            } => {
                tracing::warn!(status = status.as_u16(), code, detail = %detail, "backend call failed");
                Self::Unavailable {
                    status,
                    message: if status == StatusCode::GATEWAY_TIMEOUT {
                        "The task service did not answer in time."
                    } else {
                        "The task service cannot be reached right now."
                    },
                }
            }
            ApiError::NotFound(_) => Self::Unavailable {
                status: StatusCode::BAD_GATEWAY,
                message:
                    "No task service is configured (BACKEND_URL, or a \"tasks\" entry in REMOTE_ROUTES).",
            },
            other => Self::Page(other.into()),
        }
    }
}

/// The error shape of the backend: `{"error", "message", "fields"}`.
#[derive(Deserialize, Default)]
struct BackendError {
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

fn malformed(what: &str) -> Trouble {
    tracing::warn!(answer = what, "the backend's answer could not be read");
    Trouble::Unavailable {
        status: StatusCode::BAD_GATEWAY,
        message: "The task service answered something the dashboard cannot read.",
    }
}

/// The backend, acting for one signed-in request.
pub struct Backend<'a> {
    /// The browser's request (its identity, language and agent are sent on).
    pub req: &'a HttpRequest,
    /// App state.
    pub state: &'a AppState,
    /// The proxy's client.
    pub client: &'a ProxyClient,
    /// The signed-in session.
    pub session: &'a CurrentSession,
}

impl Backend<'_> {
    async fn send<T: DeserializeOwned>(
        &self,
        route: &str,
        method: Method,
        tail: &str,
        query: &str,
        body: Option<&Value>,
    ) -> Result<Option<T>, Trouble> {
        let reply = call(
            self.req,
            self.state,
            self.client,
            self.session,
            route,
            method,
            tail,
            query,
            body,
        )
        .await?;
        match reply.status {
            s if s.is_success() && reply.body.is_empty() => Ok(None),
            s if s.is_success() => serde_json::from_slice(&reply.body)
                .map(Some)
                .map_err(|e| malformed(&e.to_string())),
            StatusCode::UNAUTHORIZED => {
                tracing::info!("the backend refused the session's token");
                Err(Trouble::SignIn)
            }
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => Err(Trouble::NotFound),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                let e: BackendError = serde_json::from_slice(&reply.body).unwrap_or_default();
                if e.fields.is_empty() {
                    Err(malformed("a refusal without field errors"))
                } else {
                    Err(Trouble::Invalid(e.fields))
                }
            }
            s => {
                tracing::warn!(status = s.as_u16(), "the backend failed");
                Err(Trouble::Unavailable {
                    status: if s == StatusCode::GATEWAY_TIMEOUT {
                        s
                    } else {
                        StatusCode::BAD_GATEWAY
                    },
                    message: "The task service had a problem answering.",
                })
            }
        }
    }

    async fn expect<T: DeserializeOwned>(
        &self,
        route: &str,
        method: Method,
        tail: &str,
        query: &str,
        body: Option<&Value>,
    ) -> Result<T, Trouble> {
        self.send(route, method, tail, query, body)
            .await?
            .ok_or_else(|| malformed("an empty answer"))
    }

    /// `GET /api/tasks?{query}`.
    pub async fn tasks(&self, query: &str) -> Result<TaskPage, Trouble> {
        self.expect("tasks", Method::GET, "", query, None).await
    }

    /// `GET /api/tasks/{id}`.
    pub async fn task(&self, id: i64) -> Result<Task, Trouble> {
        self.expect("tasks", Method::GET, &id.to_string(), "", None).await
    }

    /// `POST /api/tasks`.
    pub async fn create(&self, fields: &Value) -> Result<Task, Trouble> {
        self.expect("tasks", Method::POST, "", "", Some(fields)).await
    }

    /// `PATCH /api/tasks/{id}`.
    pub async fn update(&self, id: i64, fields: &Value) -> Result<Task, Trouble> {
        self.expect("tasks", Method::PATCH, &id.to_string(), "", Some(fields))
            .await
    }

    /// `DELETE /api/tasks/{id}`.
    pub async fn delete(&self, id: i64) -> Result<(), Trouble> {
        self.send::<Value>("tasks", Method::DELETE, &id.to_string(), "", None)
            .await
            .map(|_| ())
    }

    /// `GET /api/projects`.
    pub async fn projects(&self) -> Result<Vec<Project>, Trouble> {
        self.expect::<ProjectList>("projects", Method::GET, "", "", None)
            .await
            .map(|l| l.data)
    }

    /// `GET /api/projects/{id}`.
    pub async fn project(&self, id: i64) -> Result<Project, Trouble> {
        self.expect("projects", Method::GET, &id.to_string(), "", None)
            .await
    }
}
