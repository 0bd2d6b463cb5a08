//! Sign in, open the chat, watch the streamed answer grow, sign out.

use std::time::Duration;

use fantoccini::Locator;

use crate::driver::{click, pick_user, wait_for};

#[actix_web::test]
async fn chat_answer_streams_in_word_by_word() {
    // An unreachable widget script makes the page use its built-in client, as offline installs do.
    let Some(b) = crate::driver::start(&[
        ("CHATKIT_SCRIPT_URL", "http://127.0.0.1:9/chatkit.js"),
        ("DEMO_WORD_DELAY_MS", "250"),
    ])
    .await
    else {
        return;
    };
    let c = &b.client;
    let wait = || c.wait().at_most(Duration::from_secs(20));
    c.goto(&format!("{}/chat", b.origin)).await.expect("open chat");
    pick_user(c, 0).await;

    let input = wait()
        .for_element(Locator::Css("#chat-input"))
        .await
        .expect("the chat client");
    assert_eq!(
        c.current_url().await.expect("url").path(),
        "/chat",
        "returned to the chat"
    );
    input.send_keys("hello world").await.expect("type");
    click(c, "#chat-send").await;

    // Observe the answer several times while it streams: it must grow, then be complete.
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = match c.find(Locator::Css(".msg.assistant")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if seen.last() != Some(&text) {
            seen.push(text.clone());
        }
        if text == "You said: hello world" || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("You said: hello world"),
        "{seen:?}"
    );
    let partial = seen
        .iter()
        .filter(|t| !t.is_empty() && t.as_str() != "You said: hello world")
        .count();
    assert!(
        partial >= 2,
        "the answer grew over several observations: {seen:?}"
    );

    // A second message goes to the same thread, once the first answer has ended (Send is
    // busy until then).
    wait()
        .for_element(Locator::Css("#chat-send:not([disabled])"))
        .await
        .expect("Send available again");
    let input = c.find(Locator::Css("#chat-input")).await.expect("input");
    input.send_keys("again").await.expect("type");
    click(c, "#chat-send").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = c
            .find_all(Locator::Css(".msg.assistant"))
            .await
            .expect("messages");
        let second = match all.get(1) {
            Some(e) => e.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if second == "You said: again" {
            break;
        }
        if std::time::Instant::now() > deadline {
            let state = c
                .execute("return document.getElementById('chat').innerHTML", vec![])
                .await
                .expect("script");
            panic!("second answer, got {second:?}: {state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A reload brings the conversation back.
    c.refresh().await.expect("reload");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let texts = assistant_texts(c).await;
        if texts == ["You said: hello world", "You said: again"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "history after a reload: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let options = c
        .find_all(Locator::Css("#thread-list option"))
        .await
        .expect("options");
    assert_eq!(options.len(), 2, "the conversation is listed");

    // New chat starts empty; Stop ends an answer that is still streaming.
    c.find(Locator::Css("#new-chat"))
        .await
        .expect("New chat")
        .click()
        .await
        .expect("click");
    assert!(assistant_texts(c).await.is_empty());
    let input = c.find(Locator::Css("#chat-input")).await.expect("input");
    input
        .send_keys("one two three four five six seven eight nine ten")
        .await
        .expect("type");
    click(c, "#chat-send").await;
    let stop = wait()
        .for_element(Locator::Css("#chat-stop:not([hidden])"))
        .await
        .expect("Stop while streaming");
    assert!(
        !c.find(Locator::Css("#chat-send"))
            .await
            .expect("send")
            .is_enabled()
            .await
            .expect("state"),
        "Send is busy"
    );
    stop.click().await.expect("stop");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = c
            .find(Locator::Css("#chat-status"))
            .await
            .expect("status")
            .text()
            .await
            .unwrap_or_default();
        if status == "Stopped." {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "status {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The backend saw the answer cancelled (the BFF dropped the upstream request).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut stats = awc::Client::default()
            .get(format!("{}/demo/stats", b.backend))
            .send()
            .await
            .expect("stats");
        let j: serde_json::Value = stats.json().await.expect("json");
        if j["cancelled_answers"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backend never saw the cancel: {j}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut = assistant_texts(c).await;
    assert!(
        cut.len() == 1 && cut[0] != "You said: one two three four five six seven eight nine ten",
        "{cut:?}"
    );

    click(c, "#signout").await;
    wait_for(c, "#signin").await;
    let left = c
        .execute(
            "return Object.keys(sessionStorage).filter(k => k.startsWith('taskflow.chat.')).length",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(left.as_u64(), Some(0), "no chat state survives sign-out");

    // Bob in the same tab chats on a thread of his own.
    c.goto(&format!("{}/chat", b.origin)).await.expect("open chat");
    pick_user(c, 1).await;
    let input = wait()
        .for_element(Locator::Css("#chat-input"))
        .await
        .expect("chat");
    // At 1280×720 the input is on screen without scrolling.
    c.set_window_size(1280, 720).await.expect("resize");
    let fits = c
        .execute(
            "const r = document.getElementById('chat-input').getBoundingClientRect(); return r.bottom <= window.innerHeight && r.top >= 0",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(fits.as_bool(), Some(true), "the input is visible at 1280x720");
    assert!(assistant_texts(c).await.is_empty(), "nothing of Alice's");
    input.send_keys("hi from bob").await.expect("type");
    click(c, "#chat-send").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while assistant_texts(c).await != ["You said: hi from bob"] {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            assistant_texts(c).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Answers are Markdown with HTML escaped: markup in the text stays text.
    wait()
        .for_element(Locator::Css("#chat-send:not([disabled])"))
        .await
        .expect("Send available again");
    let input = c.find(Locator::Css("#chat-input")).await.expect("input");
    input
        .send_keys("<img src=x onerror=alert(1)> **bold** `code`")
        .await
        .expect("type");
    click(c, "#chat-send").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c
        .find_all(Locator::Css(".msg.assistant code"))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            assistant_texts(c).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.find_all(Locator::Css(".msg img"))
            .await
            .expect("query")
            .is_empty(),
        "no HTML from text"
    );
    assert!(!c
        .find_all(Locator::Css(".msg.assistant strong"))
        .await
        .expect("query")
        .is_empty());
    b.client.clone().close().await.expect("close");
}

async fn assistant_texts(c: &fantoccini::Client) -> Vec<String> {
    let mut out = Vec::new();
    for e in c
        .find_all(Locator::Css(".msg.assistant"))
        .await
        .unwrap_or_default()
    {
        out.push(e.text().await.unwrap_or_default());
    }
    out
}

#[actix_web::test]
async fn a_session_ended_elsewhere_mid_answer_says_signed_out_and_keeps_the_draft() {
    let Some(b) = crate::driver::start(&[
        ("CHATKIT_SCRIPT_URL", "http://127.0.0.1:9/chatkit.js"),
        ("DEMO_WORD_DELAY_MS", "400"),
        ("STREAM_REVALIDATE_SECS", "1"),
        ("SESSION_CACHE_MS", "0"),
    ])
    .await
    else {
        return;
    };
    let c = &b.client;
    let wait = || c.wait().at_most(Duration::from_secs(20));
    c.goto(&format!("{}/chat", b.origin)).await.expect("open chat");
    pick_user(c, 0).await;
    let input = wait()
        .for_element(Locator::Css("#chat-input"))
        .await
        .expect("chat");
    input
        .send_keys("a long question with many many words to answer slowly")
        .await
        .expect("type");
    click(c, "#chat-send").await;
    wait()
        .for_element(Locator::Css("#chat-stop:not([hidden])"))
        .await
        .expect("streaming");
    // Alice, on another device, signs out everywhere else: this browser's session ends.
    let other = crate::binary::sign_in(&b.origin).await;
    let ended = awc::Client::default()
        .post(format!("{}/api/auth/sessions/end-others", b.origin))
        .insert_header(("Cookie", other))
        .insert_header(("Origin", b.origin.as_str()))
        .insert_header(("X-CSRF", "1"))
        .send()
        .await
        .expect("end others");
    assert_eq!(ended.status().as_u16(), 200);
    let status = wait()
        .for_element(Locator::Css("#chat-status a"))
        .await
        .expect("a sign-in link");
    assert_eq!(status.text().await.expect("text"), "Sign in again");
    let said = c
        .find(Locator::Css("#chat-status"))
        .await
        .expect("status")
        .text()
        .await
        .expect("text");
    assert!(said.starts_with("You were signed out"), "{said}");
    // The draft survives the sign-in.
    c.find(Locator::Css("#chat-input"))
        .await
        .expect("input")
        .send_keys("my draft")
        .await
        .expect("type");
    status.click().await.expect("sign in again");
    pick_user(c, 0).await;
    let input = wait()
        .for_element(Locator::Css("#chat-input"))
        .await
        .expect("chat again");
    assert_eq!(
        input.prop("value").await.expect("value").as_deref(),
        Some("my draft")
    );
    b.client.clone().close().await.expect("close");
}
