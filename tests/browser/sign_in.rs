//! Sign in with the demo provider, see the dashboard, sign out.

use std::time::Duration;

use fantoccini::Locator;

#[actix_web::test]
async fn sign_in_as_alice_see_her_name_and_sign_out() {
    let Some(b) = crate::driver::start(&[]).await else {
        return;
    };
    let c = &b.client;
    c.goto(&format!("{}/", b.origin)).await.expect("open landing");
    c.find(Locator::Css("#signin"))
        .await
        .expect("Sign in link")
        .click()
        .await
        .expect("click");

    let alice = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#user-0"))
        .await
        .expect("the demo provider's sign-in page");
    assert!(alice.text().await.expect("text").contains("Alice Example"));
    alice.click().await.expect("pick Alice");

    let greeting = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#greeting-name"))
        .await
        .expect("the dashboard");
    assert_eq!(greeting.text().await.expect("text"), "Alice Example");
    assert_eq!(c.current_url().await.expect("url").path(), "/dashboard");
    let banner = c.find(Locator::Css(".demo-banner")).await.expect("demo banner");
    assert!(banner.text().await.expect("text").contains("Demo mode"));
    // The session cookie is invisible to page scripts.
    let visible = c.execute("return document.cookie", vec![]).await.expect("script");
    assert!(
        !visible.as_str().unwrap_or_default().contains("taskflow_session"),
        "{visible}"
    );

    c.find(Locator::Css("#signout"))
        .await
        .expect("Sign out")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#signin"))
        .await
        .expect("back on the landing page, signed out");
    assert_eq!(c.current_url().await.expect("url").path(), "/");

    // The dashboard now asks for sign-in again.
    c.goto(&format!("{}/dashboard", b.origin))
        .await
        .expect("open dashboard");
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#user-0"))
        .await
        .expect("redirected to the provider");
    b.client.clone().close().await.expect("close browser");
}
