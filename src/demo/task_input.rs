//! What the demo backend's tasks API accepts: a task's fields, validated one by one with
//! messages for people, and the list's filters from its query string.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sqlx::{QueryBuilder, Sqlite};

use crate::dashboard::time::parse_date;

/// Field errors of a request: field name → what is wrong, in words for the user.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Validated changes to a task (absent fields stay as they are).
#[derive(Debug, Default)]
pub struct Changes {
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    pub(super) status: Option<String>,
    pub(super) priority: Option<String>,
    pub(super) due_date: Option<Option<String>>,
    pub(super) project_id: Option<Option<i64>>,
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
                errors.insert("title", "Keep the title to 200 characters or fewer.".into());
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
                    "Keep the description to 5,000 characters or fewer.".into(),
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
                errors.insert("due_date", "Enter a valid date (YYYY-MM-DD).".into());
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

/// The list's filters, sort and page, read from its query string.
#[derive(Debug)]
pub struct ListQuery {
    pub(super) status: Option<String>,
    pub(super) project: Option<Option<i64>>,
    pub(super) q: Option<String>,
    pub(super) sort: &'static str,
    pub(super) page: i64,
    pub(super) per_page: i64,
}

impl ListQuery {
    /// Reads the list's query string; unknown parameters are ignored.
    pub fn parse(query: &str) -> Result<Self, FieldErrors> {
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
                    Ok(n) if (1..=1_000_000).contains(&n) => out.page = n,
                    _ => {
                        errors.insert("page", "a whole number from 1 to 1,000,000".into());
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

    /// Adds the `WHERE` clause of these filters for `owner`.
    pub(super) fn filter(&self, qb: &mut QueryBuilder<'_, Sqlite>, owner: &str) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

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
