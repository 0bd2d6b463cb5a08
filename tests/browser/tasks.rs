//! Tasks as users meet them: created and completed with JavaScript (in place) and without
//! (forms and redirects), found on their project's page, and added by the assistant beside
//! the list, which shows the new task without a reload.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::driver::{click, sign_in_by_clicking, start_with, wait_for};

/// The titles in the page's task list.
async fn listed(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for e in c
        .find_all(Locator::Css("#task-list .task-title"))
        .await
        .unwrap_or_default()
    {
        out.push(e.text().await.unwrap_or_default());
    }
    out
}

/// Waits up to 15 s until `check` holds for the listed titles.
async fn until_listed(c: &Client, what: &str, check: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let titles = listed(c).await;
        if check(&titles) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: the list shows {titles:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 15 s for the element `css` names to read `text` (a page being replaced
/// may still show the old one).
async fn until_text(c: &Client, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now == text {
            return;
        }
        assert!(Instant::now() < deadline, "{css} reads {now:?}, not {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Through the nav: Projects, then the project called `name`.
async fn open_project(c: &Client, name: &str) {
    for link in ["Projects", name] {
        c.find(Locator::LinkText(link))
            .await
            .unwrap_or_else(|e| panic!("no link {link}: {e}"))
            .click()
            .await
            .expect("click");
    }
}

/// Marks the document; a reload or navigation loses the mark.
async fn mark(c: &Client) {
    c.execute("window.__sameDocument = true", vec![])
        .await
        .expect("mark");
}

async fn same_document(c: &Client) -> bool {
    c.execute("return window.__sameDocument === true", vec![])
        .await
        .expect("read mark")
        .as_bool()
        .unwrap_or(false)
}

/// Picks the option of `select` whose text is `label`.
async fn choose(c: &Client, select: &str, label: &str) {
    c.find(Locator::Css(select))
        .await
        .expect("select")
        .select_by_label(label)
        .await
        .expect("option");
}

async fn type_into(c: &Client, css: &str, text: &str) {
    wait_for(c, css).await.send_keys(text).await.expect("type");
}

/// The id of the listed task titled `title`.
async fn task_id(c: &Client, title: &str) -> String {
    for row in c.find_all(Locator::Css("#task-list .task")).await.expect("rows") {
        let t = row.find(Locator::Css(".task-title")).await.expect("title");
        if t.text().await.unwrap_or_default() == title {
            return row.attr("data-task").await.expect("attr").expect("id");
        }
    }
    panic!("{title} is not listed");
}

#[actix_web::test]
async fn with_javascript_a_task_is_added_and_completed_in_place_and_found_on_its_project_page() {
    let Some(b) = start_with(
        &[("CHATKIT_SCRIPT_URL", "http://127.0.0.1:9/chatkit.js")],
        1280,
        true,
    )
    .await
    else {
        return;
    };
    let c = &b.client;
    sign_in_by_clicking(c, &b.origin).await;
    c.goto(&format!("{}/tasks", b.origin)).await.expect("tasks");
    mark(c).await;
    type_into(c, "#new-title", "Buy stamps").await;
    choose(c, "#new-project", "Home").await;
    click(c, "#add-task").await;
    until_listed(c, "after Add", |t| t.iter().any(|x| x == "Buy stamps")).await;
    assert!(same_document(c).await, "added without a page load");
    until_text(c, "#live-status", "Task added.").await;
    let title = c.find(Locator::Css("#new-title")).await.expect("field");
    assert_eq!(
        title.prop("value").await.expect("value").as_deref(),
        Some(""),
        "the form is ready for the next one"
    );

    // A date typed only in part is refused before anything is sent (the browser would
    // send it as empty, and no date at all would be saved).
    type_into(c, "#new-title", "Half a date").await;
    type_into(c, "#new-due", "0615").await;
    click(c, "#add-task").await;
    until_text(c, "#new-due-error", "Enter a complete date, or clear the field.").await;
    assert!(
        !listed(c).await.iter().any(|x| x == "Half a date"),
        "nothing was added"
    );

    let id = task_id(c, "Buy stamps").await;
    click(c, &format!("#task-{id} .check")).await;
    until_listed(c, "after Complete", |t| !t.iter().any(|x| x == "Buy stamps")).await;
    assert!(same_document(c).await, "completed without a page load");

    // On its project's page, among the done tasks.
    open_project(c, "Home").await;
    choose(c, "#filter-status", "Done").await;
    click(c, "#apply-filters").await;
    until_listed(c, "done on the project page", |t| {
        t.iter().any(|x| x == "Buy stamps")
    })
    .await;
    let row = wait_for(c, &format!("#task-{id}")).await;
    assert!(row
        .attr("class")
        .await
        .expect("class")
        .unwrap_or_default()
        .contains("done"));
}

#[actix_web::test]
async fn without_javascript_a_task_is_added_completed_and_found_on_its_project_page() {
    let Some(b) = start_with(&[], 1280, false).await else {
        return;
    };
    let c = &b.client;
    sign_in_by_clicking(c, &b.origin).await;
    c.goto(&format!("{}/tasks", b.origin)).await.expect("tasks");
    type_into(c, "#new-title", "Post the letter").await;
    choose(c, "#new-project", "Home").await;
    click(c, "#add-task").await;
    until_text(c, "#notice", "Task added.").await;
    until_listed(c, "after Add", |t| t.iter().any(|x| x == "Post the letter")).await;

    let id = task_id(c, "Post the letter").await;
    click(c, &format!("#task-{id} .check")).await;
    until_text(c, "#notice", "Task completed.").await;
    assert!(
        !listed(c).await.iter().any(|x| x == "Post the letter"),
        "no longer open"
    );

    open_project(c, "Home").await;
    choose(c, "#filter-status", "All").await;
    click(c, "#apply-filters").await;
    until_listed(c, "on the project page", |t| {
        t.iter().any(|x| x == "Post the letter")
    })
    .await;

    // And an empty title is refused next to its field, without losing the rest.
    c.goto(&format!("{}/tasks/new", b.origin)).await.expect("new");
    type_into(c, "#description", "kept").await;
    click(c, "#save-task").await;
    until_text(c, "#title-error", "Enter a title.").await;
    let kept = c.find(Locator::Css("#description")).await.expect("field");
    assert_eq!(kept.prop("value").await.expect("value").as_deref(), Some("kept"));
}

#[actix_web::test]
async fn the_assistant_on_a_project_page_adds_a_task_that_appears_without_a_reload() {
    let Some(b) = start_with(
        &[
            ("CHATKIT_SCRIPT_URL", "http://127.0.0.1:9/chatkit.js"),
            ("DEMO_WORD_DELAY_MS", "20"),
        ],
        1280,
        true,
    )
    .await
    else {
        return;
    };
    let c = &b.client;
    sign_in_by_clicking(c, &b.origin).await;
    open_project(c, "Home").await;
    let project = c
        .current_url()
        .await
        .expect("url")
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned();
    mark(c).await;
    click(c, "#assistant-toggle").await;
    // The built-in client, once it has started (the widget's script is unreachable).
    type_into(
        c,
        "#fallback:not([hidden]) #chat-input",
        "add a task: call the bakery",
    )
    .await;
    click(c, "#chat-send").await;
    until_listed(c, "after asking the assistant", |t| {
        t.iter().any(|x| x == "call the bakery")
    })
    .await;
    assert!(same_document(c).await, "the list updated in place");
    // The user's own message shows, whole (a nav rule once hid it).
    let mine = wait_for(c, ".msg.user").await;
    assert!(
        mine.is_displayed().await.expect("displayed"),
        "the user's message is visible"
    );
    assert_eq!(
        mine.text().await.unwrap_or_default(),
        "add a task: call the bakery"
    );
    let answer = wait_for(c, ".msg.assistant")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(answer.starts_with("Added “call the bakery” to Home."), "{answer}");

    // The backend was told which project the page shows.
    let stats: serde_json::Value = awc::Client::default()
        .get(format!("{}/demo/stats", b.backend))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let seen = &stats["last_chat_context"];
    assert_eq!(seen["project_id"].to_string(), project, "{stats}");
    assert!(seen["page_url"]
        .as_str()
        .unwrap_or("")
        .ends_with(&format!("/projects/{project}")));
    assert_eq!(seen["page_title"], "Home · Projects · TaskFlow");
}
