//! The demo backend's tasks and projects, per user (the verified token's `sub`), in a
//! SQLite file so that they survive a restart; every user starts with a few tasks in two
//! projects. The HTTP side is `demo::tasks_api`.

use std::{str::FromStr, time::Duration};

use actix_web::cookie::time::{Duration as Days, OffsetDateTime};
use serde::Serialize;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    QueryBuilder, SqlitePool,
};

use super::{
    backend::now_iso,
    task_input::{Changes, FieldErrors, ListQuery},
    USERS,
};

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
    pub async fn seed(&self, owner: &str) -> sqlx::Result<()> {
        // A read first: every request passes here, and a write transaction each would
        // serialise them.
        let seeded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM seeded WHERE owner = ?")
            .bind(owner)
            .fetch_one(&self.pool)
            .await?;
        if seeded > 0 {
            return Ok(());
        }
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

    /// Applies validated changes to one of the user's tasks; `None` when it is not theirs.
    pub async fn update(
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

    /// One page of the user's tasks, and how many match in all.
    pub async fn list(&self, owner: &str, q: &ListQuery) -> sqlx::Result<(Vec<Task>, i64)> {
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

    /// One of the user's projects.
    pub async fn project(&self, owner: &str, id: i64) -> sqlx::Result<Option<Project>> {
        sqlx::query_as(&format!("{PROJECT_SELECT} ? AND p.id = ?"))
            .bind(owner)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Deletes one of the user's tasks; false when it is not theirs.
    pub async fn delete(&self, owner: &str, id: i64) -> sqlx::Result<bool> {
        sqlx::query("DELETE FROM tasks WHERE id = ? AND owner = ?")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() == 1)
    }
}

/// The error of a task whose project is not the user's.
pub fn no_such_project() -> FieldErrors {
    FieldErrors::from([("project_id", "Choose one of your projects.".to_owned())])
}
