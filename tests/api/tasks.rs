//! The dashboard's tasks and projects: the API through the real forwarder against the demo
//! backend, the pages' forms, and backend trouble shown in the page.

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app_with, Resp, TestApp},
    upstream::{closed_port_url, spawn_upstream},
};

async fn signed_in(user: usize) -> TestApp {
    let app = spawn_app_with(&[]).await;
    app.login_as(user, "/dashboard").await;
    app
}

/// A JSON request through the fetch wrapper's headers (`X-CSRF`, same origin).
async fn api(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> Resp {
    let req = app
        .client
        .request(method.parse().expect("method"), app.url(path))
        .insert_header(("Origin", app.origin.as_str()))
        .insert_header(("X-CSRF", "1"))
        .insert_header(("Content-Type", "application/json"));
    app.send(req, body.map(|b| b.to_string().into_bytes())).await
}

fn titles(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["title"].as_str().expect("title").to_owned())
        .collect()
}

async fn first_project(app: &TestApp) -> (i64, String) {
    let projects = api(app, "GET", "/api/remote/projects", None).await.json();
    let p = &projects["data"][0];
    (
        p["id"].as_i64().expect("id"),
        p["name"].as_str().expect("name").to_owned(),
    )
}

#[actix_web::test]
async fn tasks_are_created_listed_filtered_edited_completed_and_deleted_through_the_forwarder() {
    let app = signed_in(0).await;
    let seeded = api(&app, "GET", "/api/remote/tasks?status=all", None).await;
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    assert_eq!(seeded.json()["total"], 6, "Alice starts with six tasks");
    let projects = api(&app, "GET", "/api/remote/projects", None).await.json();
    assert_eq!(projects["data"].as_array().expect("projects").len(), 2);
    let (home, home_name) = first_project(&app).await;

    let created = api(
        &app,
        "POST",
        "/api/remote/tasks",
        Some(
            json!({ "title": "Buy milk", "project_id": home, "due_date": "2030-01-31", "priority": "high" }),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let task = created.json();
    let id = task["id"].as_i64().expect("id");
    assert_eq!(
        created.header("location").as_deref(),
        Some(format!("/api/tasks/{id}").as_str())
    );
    assert_eq!(
        (task["status"].as_str(), task["priority"].as_str()),
        (Some("open"), Some("high"))
    );

    let in_project = api(
        &app,
        "GET",
        &format!("/api/remote/tasks?project={home}&status=open"),
        None,
    )
    .await
    .json();
    assert!(
        titles(&in_project).contains(&"Buy milk".to_owned()),
        "{home_name}: {in_project}"
    );
    let searched = api(&app, "GET", "/api/remote/tasks?q=MILK&status=all", None)
        .await
        .json();
    assert_eq!(titles(&searched), ["Buy milk"], "search ignores case");
    let by_priority = api(&app, "GET", "/api/remote/tasks?sort=priority&status=open", None)
        .await
        .json();
    assert!(by_priority["data"][0]["priority"] == "high");

    let edited = api(
        &app,
        "PATCH",
        &format!("/api/remote/tasks/{id}"),
        Some(json!({ "title": "Buy oat milk", "description": "the barista one", "due_date": null })),
    )
    .await;
    assert_eq!(edited.status, 200, "{}", edited.text());
    assert_eq!(edited.json()["title"], "Buy oat milk");
    assert_eq!(edited.json()["due_date"], Value::Null);
    assert_eq!(edited.json()["priority"], "high", "fields left out stay");

    let done = api(
        &app,
        "PATCH",
        &format!("/api/remote/tasks/{id}"),
        Some(json!({ "status": "done" })),
    )
    .await;
    assert_eq!(done.json()["status"], "done");
    assert!(done.json()["completed_at"].is_string());
    let open = api(&app, "GET", "/api/remote/tasks?status=open", None)
        .await
        .json();
    assert!(!titles(&open).contains(&"Buy oat milk".to_owned()));
    let reopened = api(
        &app,
        "PATCH",
        &format!("/api/remote/tasks/{id}"),
        Some(json!({ "status": "open" })),
    )
    .await;
    assert_eq!(reopened.json()["completed_at"], Value::Null);

    let invalid = api(
        &app,
        "POST",
        "/api/remote/tasks",
        Some(json!({ "title": "  ", "due_date": "31/01/2030", "priority": "urgent" })),
    )
    .await;
    assert_eq!(invalid.status, 422);
    let fields = &invalid.json()["fields"];
    assert!(fields["title"].is_string() && fields["due_date"].is_string() && fields["priority"].is_string());

    let paged = api(
        &app,
        "GET",
        "/api/remote/tasks?status=all&per_page=2&page=2",
        None,
    )
    .await
    .json();
    assert_eq!(
        (paged["page"].as_i64(), paged["data"].as_array().map(Vec::len)),
        (Some(2), Some(2))
    );
    assert_eq!(paged["has_more"], true);

    assert_eq!(
        api(&app, "DELETE", &format!("/api/remote/tasks/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api(&app, "GET", &format!("/api/remote/tasks/{id}"), None)
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn bob_never_sees_or_changes_alices_tasks_even_by_guessing_ids() {
    // One app, two browsers: the test switches session cookies.
    let app = signed_in(0).await;
    let alice_cookie = app.session_cookie().expect("alice");
    app.jar.borrow_mut().clear();
    app.login_as(1, "/dashboard").await;
    let bob_cookie = app.session_cookie().expect("bob");
    app.use_cookie(&alice_cookie);
    let (alice_project, _) = first_project(&app).await;
    let task = api(
        &app,
        "POST",
        "/api/remote/tasks",
        Some(json!({ "title": "Alice's secret", "project_id": alice_project })),
    )
    .await
    .json();
    let id = task["id"].as_i64().expect("id");

    app.use_cookie(&bob_cookie);
    let bobs = api(&app, "GET", "/api/remote/tasks?status=all&per_page=100", None)
        .await
        .json();
    assert!(!titles(&bobs).iter().any(|t| t.contains("Alice")), "{bobs}");
    assert!(
        titles(&bobs).contains(&"Ship the 2.1 release".to_owned()),
        "Bob has his own"
    );
    // Every id near Alice's, hers included.
    for guess in (id - 8).max(1)..=id + 2 {
        let r = api(&app, "GET", &format!("/api/remote/tasks/{guess}"), None).await;
        if r.status == 200 {
            assert_ne!(r.json()["title"], "Alice's secret");
            assert!(titles(&bobs).contains(&r.json()["title"].as_str().unwrap_or("").to_owned()));
        } else {
            assert_eq!(r.status, 404);
        }
    }
    let path = format!("/api/remote/tasks/{id}");
    assert_eq!(
        api(&app, "PATCH", &path, Some(json!({ "title": "pwned" })))
            .await
            .status,
        404
    );
    assert_eq!(api(&app, "DELETE", &path, None).await.status, 404);
    let into_hers = api(
        &app,
        "POST",
        "/api/remote/tasks",
        Some(json!({ "title": "sneaky", "project_id": alice_project })),
    )
    .await;
    assert_eq!(into_hers.status, 422, "her project is not his");
    assert_eq!(
        api(
            &app,
            "GET",
            &format!("/api/remote/projects/{alice_project}"),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        app.get(&format!("/tasks/{id}")).await.status,
        404,
        "nor her task's page"
    );

    app.use_cookie(&alice_cookie);
    let still = api(&app, "GET", &path, None).await;
    assert_eq!(still.json()["title"], "Alice's secret");
}

#[actix_web::test]
async fn the_demo_backends_tasks_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("taskflow-bff-tasks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = format!("sqlite://{}/sessions.db", dir.display());
    let first = spawn_app_with(&[("DATABASE_URL", &db)]).await;
    first.login_as(0, "/dashboard").await;
    let r = api(
        &first,
        "POST",
        "/api/remote/tasks",
        Some(json!({ "title": "Outlive the restart" })),
    )
    .await;
    assert_eq!(r.status, 201);
    first.handle.stop(true).await;
    drop(first);

    let second = spawn_app_with(&[("DATABASE_URL", &db)]).await;
    second.login_as(0, "/dashboard").await;
    let list = api(&second, "GET", "/api/remote/tasks?q=restart", None)
        .await
        .json();
    assert_eq!(titles(&list), ["Outlive the restart"]);
    assert_eq!(list["total"], 1, "and the starter tasks were not added twice");
    let all = api(&second, "GET", "/api/remote/tasks?status=all", None)
        .await
        .json();
    assert_eq!(all["total"], 7);
    let _ = std::fs::remove_dir_all(dir);
}

/// A page form post from `origin` with `pairs`.
async fn page_post(app: &TestApp, path: &str, origin: &str, pairs: &[(&str, &str)]) -> Resp {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let req = app
        .client
        .post(app.url(path))
        .insert_header(("Origin", origin))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
    app.send(req, Some(body.into_bytes())).await
}

#[actix_web::test]
async fn page_forms_need_their_token_and_this_origin_and_keep_input_on_errors() {
    let app = signed_in(0).await;
    let token = app.form_token("/tasks").await;
    let origin = app.origin.clone();
    let before = api(&app, "GET", "/api/remote/tasks?status=all", None)
        .await
        .json()["total"]
        .clone();

    fn fields(t: &str) -> [(&'static str, &str); 3] {
        [
            ("title", "Water the fern"),
            ("form_token", t),
            ("back", "/tasks?status=all"),
        ]
    }
    for (from, t, why) in [
        (origin.as_str(), "", "no token"),
        (origin.as_str(), "forged-token", "a wrong token"),
        ("https://evil.example", token.as_str(), "another site"),
    ] {
        let r = page_post(&app, "/tasks", from, &fields(t)).await;
        assert_eq!(r.status, 403, "{why}: {}", r.text());
    }
    let after = api(&app, "GET", "/api/remote/tasks?status=all", None)
        .await
        .json()["total"]
        .clone();
    assert_eq!(before, after, "nothing was created");

    let t = token.as_str();
    let r = page_post(&app, "/tasks", &origin, &fields(t)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), "/tasks?status=all&notice=created");
    let page = app.get(&r.location()).await.text();
    assert!(page.contains("Water the fern") && page.contains("Task added."));

    // The backend refuses a bad date: the form comes back with the message beside the field
    // and everything typed still in it.
    let r = page_post(
        &app,
        "/tasks",
        &origin,
        &[
            ("form_token", t),
            ("title", "Plan the <party>"),
            ("description", "cake & balloons"),
            ("due_date", "next friday"),
            ("priority", "high"),
        ],
    )
    .await;
    assert_eq!(r.status, 422);
    let html = r.text();
    assert!(html.contains("Enter a valid date"), "{html}");
    assert!(html.contains("value=\"Plan the &#60;party&#62;\""), "{html}");
    assert!(html.contains("cake &#38; balloons"));
    assert!(html.contains("id=\"due_date\" name=\"due_date\" type=\"date\" value=\"next friday\""));
    assert!(html.contains("aria-invalid=\"true\""));
}

#[actix_web::test]
async fn complete_reopen_edit_and_delete_work_as_plain_forms() {
    let app = signed_in(0).await;
    let token = app.form_token("/tasks").await;
    let origin = app.origin.clone();
    let task = api(
        &app,
        "POST",
        "/api/remote/tasks",
        Some(json!({ "title": "Form me" })),
    )
    .await
    .json();
    let id = task["id"].as_i64().expect("id");

    let r = page_post(
        &app,
        &format!("/tasks/{id}/status"),
        &origin,
        &[("form_token", &token), ("status", "done"), ("back", "/dashboard")],
    )
    .await;
    assert_eq!((r.status, r.location().as_str()), (303, "/dashboard?notice=done"));
    assert_eq!(
        api(&app, "GET", &format!("/api/remote/tasks/{id}"), None)
            .await
            .json()["status"],
        "done"
    );
    let r = page_post(
        &app,
        &format!("/tasks/{id}/status"),
        &origin,
        &[("form_token", &token), ("status", "open")],
    )
    .await;
    assert_eq!(r.location(), "/tasks?notice=open");

    let r = page_post(
        &app,
        &format!("/tasks/{id}"),
        &origin,
        &[
            ("form_token", &token),
            ("title", "Formed"),
            ("description", "edited without JavaScript"),
            ("due_date", "2031-05-06"),
            ("priority", "low"),
            ("status", "open"),
            ("project_id", ""),
            ("back", "/tasks"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = app.get(&r.location()).await.text();
    assert!(page.contains("Saved.") && page.contains("value=\"Formed\"") && page.contains("2031-05-06"));

    // A back link to another site is not followed.
    let r = page_post(
        &app,
        &format!("/tasks/{id}/delete"),
        &origin,
        &[("form_token", &token), ("back", "https://evil.example/")],
    )
    .await;
    assert_eq!((r.status, r.location().as_str()), (303, "/tasks?notice=deleted"));
    let gone = app.get(&format!("/tasks/{id}")).await;
    assert_eq!(gone.status, 404);
    assert!(gone.text().contains("There is no such task"), "{}", gone.text());
    assert!(
        gone.text().contains("id=\"nav-tasks\""),
        "the 404 keeps the dashboard's frame"
    );
}

#[actix_web::test]
async fn pages_show_tasks_projects_the_current_nav_item_and_the_project_context() {
    let app = signed_in(0).await;
    let dashboard = app.get("/dashboard").await.text();
    assert!(
        dashboard.contains("Review the new pricing page"),
        "seeded tasks show"
    );
    assert!(dashboard.contains("Overdue"), "the overdue one says so");
    assert!(dashboard.contains("id=\"nav-dashboard\" aria-current=\"page\""));
    let (project, name) = first_project(&app).await;
    let projects = app.get("/projects").await.text();
    assert!(projects.contains(&name) && projects.contains("open ·"));
    let page = app.get(&format!("/projects/{project}")).await.text();
    assert!(
        page.contains(&format!("data-project-id=\"{project}\"")),
        "the assistant sends the project's id"
    );
    assert!(page.contains("id=\"nav-projects\" aria-current=\"page\""));
    let tasks = app.get("/tasks").await.text();
    assert!(
        tasks.contains("data-project-id=\"\""),
        "no project on the task list"
    );
    assert!(
        tasks.contains("id=\"assistant-panel\""),
        "the assistant is on every page"
    );
    // Every field has a label.
    for id in [
        "new-title",
        "new-project",
        "new-due",
        "new-priority",
        "filter-status",
        "filter-project",
        "filter-q",
        "filter-sort",
    ] {
        assert!(tasks.contains(&format!("<label for=\"{id}\"")), "{id}");
    }
}

/// An app whose task routes go to `tasks` and `projects` on the test upstream.
async fn with_backend_at(tasks: &str, projects: &str, extra: &[(&str, &str)]) -> TestApp {
    let routes =
        json!([{ "name": "tasks", "url": tasks }, { "name": "projects", "url": projects }]).to_string();
    let mut vars = vec![("REMOTE_ROUTES", routes.as_str())];
    vars.extend_from_slice(extra);
    let app = spawn_app_with(&vars).await;
    app.login_as(0, "/dashboard").await;
    app
}

#[actix_web::test]
async fn backend_trouble_renders_the_page_with_a_message_and_a_retry_link() {
    let up = spawn_upstream();
    let closed = closed_port_url();
    let slow = format!("{}/chatkit/slow-headers", up.url);
    let garbage = format!("{}/chatkit/status/418", up.url);
    let cases = [
        (closed.clone(), closed.clone(), 502, "cannot be reached"),
        (slow.clone(), slow.clone(), 504, "did not answer in time"),
        (garbage.clone(), garbage.clone(), 502, "cannot read"),
    ];
    for (tasks, projects, status, words) in cases {
        let app = with_backend_at(&tasks, &projects, &[("UPSTREAM_HEADER_TIMEOUT_SECS", "1")]).await;
        for page in ["/dashboard", "/tasks?status=all", "/projects"] {
            let r = app.get(page).await;
            assert_eq!(r.status, status, "{page} with {tasks}");
            let html = r.text();
            assert!(html.contains(words), "{page}: {html}");
            assert!(
                html.contains(&format!("id=\"retry\" href=\"{}\"", page.replace('&', "&#38;"))),
                "{html}"
            );
            assert!(html.contains("id=\"nav-tasks\""), "inside the dashboard's frame");
            assert!(!html.contains("\"error\""), "no raw JSON");
        }
        // A form keeps what was typed when the backend fails.
        let token = app.form_token("/sessions").await;
        let r = page_post(
            &app,
            "/tasks",
            &app.origin,
            &[("form_token", &token), ("title", "Do not lose me")],
        )
        .await;
        assert_eq!(r.status, status);
        assert!(r.text().contains("value=\"Do not lose me\""), "{}", r.text());
    }
}

#[actix_web::test]
async fn a_token_the_backend_refuses_leads_to_sign_in_and_back() {
    let up = spawn_upstream();
    let refusing = format!("{}/chatkit/status/401", up.url);
    let app = with_backend_at(&refusing, &refusing, &[]).await;
    // A page with the way to sign in, not a redirect: a provider that signs in silently
    // would otherwise send the browser round in a loop.
    let r = app.get("/tasks?status=done").await;
    assert_eq!(r.status, 401);
    let html = r.text();
    assert!(html.contains("Sign in again"), "{html}");
    assert!(
        html.contains("href=\"/api/auth/login?returnTo=%2Ftasks%3Fstatus%3Ddone\""),
        "{html}"
    );
    assert!(html.contains("id=\"nav-tasks\""), "in the dashboard's frame");
    assert_eq!(
        app.get("/api/auth/me").await.status,
        200,
        "our session is untouched"
    );
}

#[actix_web::test]
async fn the_assistant_adds_a_task_to_the_project_of_the_page_it_was_asked_from() {
    let app = spawn_app_with(&[("DEMO_WORD_DELAY_MS", "1")]).await;
    app.login_as(0, "/dashboard").await;
    let (project, name) = first_project(&app).await;
    let ask = json!({ "type": "threads.create", "params": { "input": {
        "content": [{ "type": "input_text", "text": "add a task: buy milk" }],
        "attachments": [], "inference_options": {} } } });
    let req = app
        .api_request("/api/chatkit")
        .insert_header(("X-Page-URL", format!("{}/projects/{project}", app.origin)))
        .insert_header((
            "X-Page-Title",
            percent_encoding::utf8_percent_encode(
                &format!("{name} · Projects · TaskFlow"),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string(),
        ))
        .insert_header(("X-Project-ID", project.to_string()));
    let r = app.send(req, Some(ask.to_string().into_bytes())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events: Vec<Value> = r
        .text()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event"))
        .collect();
    let answer: String = events
        .iter()
        .filter_map(|e| e["update"]["delta"].as_str())
        .collect();
    assert!(
        answer.starts_with(&format!("Added “buy milk” to {name}.")),
        "{answer}"
    );
    assert!(answer.contains(&format!("Asked from “{name} · Projects · TaskFlow” (/projects/{project}), project “{name}” (id {project})")), "{answer}");
    let effect = events
        .iter()
        .find(|e| e["type"] == "client_effect")
        .expect("a client effect");
    assert_eq!(effect["name"], "tasks.changed");

    let list = api(
        &app,
        "GET",
        &format!("/api/remote/tasks?project={project}&q=buy%20milk"),
        None,
    )
    .await
    .json();
    assert_eq!(titles(&list), ["buy milk"], "created in that project");
    // Anything else is still an echo.
    let echo = json!({ "type": "threads.create", "params": { "input": {
        "content": [{ "type": "input_text", "text": "hello" }], "attachments": [], "inference_options": {} } } });
    let r = app.post_api("/api/chatkit", &echo.to_string()).await;
    assert!(r.text().contains("You said: "), "{}", r.text());
}
