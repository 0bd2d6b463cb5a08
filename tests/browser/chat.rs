//! Sign in, open the chat, watch the streamed answer grow, sign out.

use std::time::Duration;

use fantoccini::Locator;

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
    wait()
        .for_element(Locator::Css("#user-0"))
        .await
        .expect("sign-in page")
        .click()
        .await
        .expect("Alice");

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
    c.find(Locator::Css("#chat-send"))
        .await
        .expect("send")
        .click()
        .await
        .expect("click");

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

    // A second message goes to the same thread.
    let input = c.find(Locator::Css("#chat-input")).await.expect("input");
    input.send_keys("again").await.expect("type");
    c.find(Locator::Css("#chat-send"))
        .await
        .expect("send")
        .click()
        .await
        .expect("click");
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
        assert!(
            std::time::Instant::now() < deadline,
            "second answer, got {second:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    c.find(Locator::Css("#signout"))
        .await
        .expect("Sign out")
        .click()
        .await
        .expect("click");
    wait()
        .for_element(Locator::Css("#signin"))
        .await
        .expect("signed out");
    b.client.clone().close().await.expect("close");
}
