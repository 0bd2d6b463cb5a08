//! Every page as users see it: no sideways scrolling at 360 px, and the core actions
//! (sign out, end another session) with JavaScript turned off. An ignored test saves each
//! page as a PNG into `SCREENSHOT_DIR` (1280 and 390 px wide, JavaScript on and off; without
//! JavaScript Chromium's narrowest window is 500 px) for a person to look at.

use std::time::Duration;

use fantoccini::Client;

use crate::{
    binary::sign_in,
    driver::{click, console_errors, sign_in_by_clicking, start_with, wait_for},
};

async fn screenshot(c: &Client, name: &str) {
    let Ok(dir) = std::env::var("SCREENSHOT_DIR") else {
        return;
    };
    let png = c.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(format!("{dir}/{name}.png"), png).expect("write screenshot");
}

const PAGES: &[(&str, &str)] = &[
    ("dashboard", "/dashboard"),
    ("tasks", "/tasks"),
    ("tasks-all", "/tasks?status=all&sort=priority"),
    ("task-new", "/tasks/new"),
    ("task-edit", "/tasks/1"),
    ("task-delete", "/tasks/1/delete"),
    ("projects", "/projects"),
    ("project", "/projects/1"),
    ("chat", "/chat"),
    ("sessions", "/sessions"),
    ("not-found", "/no-such-page"),
    ("task-not-found", "/tasks/999999"),
];

#[actix_web::test]
async fn no_page_scrolls_sideways_at_360_px_or_logs_a_console_error() {
    let Some(b) = start_with(&[], 360, true).await else {
        return;
    };
    let c = &b.client;
    c.goto(&format!("{}/", b.origin)).await.expect("landing");
    let mut pages = vec![("landing", "/".to_owned())];
    sign_in_by_clicking(c, &b.origin).await;
    pages.extend(PAGES.iter().map(|(n, p)| (*n, (*p).to_owned())));
    for (name, path) in pages {
        c.goto(&format!("{}{path}", b.origin)).await.expect("open");
        let widths = c
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth]",
                vec![],
            )
            .await
            .expect("measure");
        let (scroll, inner) = (widths[0].as_u64().unwrap_or(0), widths[1].as_u64().unwrap_or(0));
        assert!(
            inner > 0 && scroll <= inner,
            "{name}: {scroll} px wide in a {inner} px window"
        );
        if name == "chat" {
            // The widget's script lives on a CDN this machine cannot reach: its failure to
            // load is expected (the built-in client takes over); nothing else may fail.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let errors: Vec<_> = console_errors(c, "chatkit")
            .await
            .into_iter()
            // The 404 page's own status is the one expected failure.
            .filter(|m| !(name.ends_with("not-found") && m.contains("404")))
            .collect();
        assert!(errors.is_empty(), "{name}: console errors {errors:?}");
    }
    // On a phone the chat shows the user's own messages too (a nav rule once hid them).
    c.goto(&format!("{}/chat", b.origin)).await.expect("chat");
    wait_for(c, "#fallback:not([hidden]) #chat-input")
        .await
        .send_keys("hello from a phone")
        .await
        .expect("type");
    click(c, "#chat-send").await;
    let mine = wait_for(c, ".msg.user").await;
    assert!(
        mine.is_displayed().await.expect("displayed"),
        "the user's message shows at 360 px"
    );
    c.clone().close().await.expect("close");
}

#[actix_web::test]
async fn without_javascript_sign_out_and_ending_a_session_work() {
    let Some(b) = start_with(&[], 1280, false).await else {
        return;
    };
    let c = &b.client;
    // Another browser of Alice's, to end from this one.
    sign_in(&b.origin).await;
    sign_in_by_clicking(c, &b.origin).await;
    c.goto(&format!("{}/sessions", b.origin)).await.expect("sessions");
    click(c, "a.end-session").await;
    click(c, "#confirm-end").await;
    let notice = wait_for(c, "#ended-notice").await;
    assert_eq!(notice.text().await.expect("text"), "One session was ended.");
    click(c, "#signout").await;
    let out = wait_for(c, "#signed-out").await;
    assert_eq!(out.text().await.expect("text"), "You are signed out.");
    c.clone().close().await.expect("close");
}

/// Not a check but a tool, so ignored by default: saves what each page looks like.
/// `SCREENSHOT_DIR=/tmp/shots cargo test --test browser -- --ignored screenshots`
#[actix_web::test]
#[ignore = "a tool for people to look at pages, not a check"]
async fn screenshots_of_every_page() {
    if std::env::var("SCREENSHOT_DIR").is_err() {
        eprintln!("set SCREENSHOT_DIR to a folder for the screenshots");
        return;
    }
    for (width, js) in [(1280, true), (390, true), (1280, false), (390, false)] {
        let Some(b) = start_with(&[], width, js).await else {
            return;
        };
        let c = &b.client;
        let tag = format!("{width}-{}", if js { "js" } else { "nojs" });
        c.goto(&format!("{}/", b.origin)).await.expect("landing");
        screenshot(c, &format!("landing-{tag}")).await;
        sign_in(&b.origin).await;
        sign_in_by_clicking(c, &b.origin).await;
        for (name, path) in PAGES {
            c.goto(&format!("{}{path}", b.origin)).await.expect("open");
            tokio::time::sleep(Duration::from_millis(700)).await;
            screenshot(c, &format!("{name}-{tag}")).await;
        }
        c.goto(&format!("{}/projects/1", b.origin))
            .await
            .expect("project");
        click(c, "#assistant-toggle").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        screenshot(c, &format!("assistant-panel-{tag}")).await;
        click(c, "#assistant-toggle").await;
        c.goto(&format!("{}/sessions", b.origin)).await.expect("sessions");
        click(c, "a.end-session").await;
        screenshot(c, &format!("end-session-{tag}")).await;
        click(c, "#signout").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        screenshot(c, &format!("signed-out-{tag}")).await;
        c.clone().close().await.expect("close");
    }
}
