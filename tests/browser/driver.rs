//! Starts the app, chromedriver and a fresh headless Chromium profile.

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder};
use taskflow_bff::{config::Settings, startup::Application};

/// A browser session against a running app; kills chromedriver and its browser when dropped.
pub struct Browser {
    pub client: Client,
    pub origin: String,
    /// The demo backend's base URL.
    pub backend: String,
    driver: Child,
    profile: std::path::PathBuf,
    data: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: Chromium's processes would outlive chromedriver's (and
        // keep using the machine) when a test does not close its session.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Spawns the app in demo mode and a browser; `None` when chromedriver is not installed
/// outside CI (CI installs it, and there a missing driver fails the test).
pub async fn start(extra: &[(&str, &str)]) -> Option<Browser> {
    start_with(extra, 1280, true).await
}

/// [`start`] with a window `width` pixels wide, and JavaScript on or off.
pub async fn start_with(extra: &[(&str, &str)], width: u32, javascript: bool) -> Option<Browser> {
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    if Command::new(&chromedriver).arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "chromedriver is required in CI");
        eprintln!("skipped: chromedriver not installed (apt-get install chromium chromium-driver)");
        return None;
    }
    let data = std::env::temp_dir().join(format!("taskflow-bff-browser-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data).expect("temp dir");
    let mut vars: std::collections::HashMap<String, String> = [
        ("BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}/sessions.db", data.display()),
        ),
        ("WORKERS".to_owned(), "2".to_owned()),
    ]
    .into();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let app = Application::build(Settings::from_map(&vars).expect("settings"))
        .await
        .expect("app");
    let origin = app.state().origin().to_owned();
    let backend = app
        .state()
        .routes
        .backend
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    actix_web::rt::spawn(app.run_until_stopped());

    let port = crate::binary::free_port();
    let driver = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        // A process group of its own, which the browser joins: see `Drop`.
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = std::env::temp_dir().join(format!("taskflow-bff-chrome-{}", uuid::Uuid::new_v4()));
    let mut caps = serde_json::Map::new();
    // Chromium keeps windows at least 500 px wide: narrower screens are emulated (with
    // JavaScript on only: chromedriver's clicks hang in emulation without it).
    let mut options = serde_json::json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", format!("--window-size={width},800"),
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": { "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 } },
    });
    caps.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({ "browser": "ALL" }),
    );
    if width < 500 && javascript {
        options["mobileEmulation"] =
            serde_json::json!({ "deviceMetrics": { "width": width, "height": 844, "pixelRatio": 1.0 } });
    }
    caps.insert("goog:chromeOptions".into(), options);
    let mut last_err = None;
    for _ in 0..50 {
        let builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match builder {
            Ok(client) => {
                return Some(Browser {
                    client,
                    origin,
                    backend,
                    driver,
                    profile,
                    data,
                })
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot start a WebDriver session: {last_err:?}");
}

/// chromedriver's browser console log since the last read (`goog:loggingPrefs` is set).
#[derive(Debug)]
struct ConsoleLog;

impl fantoccini::wd::WebDriverCompatibleCommand for ConsoleLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Console messages at SEVERE level (script errors, CSP violations, failed loads) since the
/// last call, except those mentioning `ignore` (a resource known to be unreachable here).
pub async fn console_errors(c: &Client, ignore: &str) -> Vec<String> {
    let log = c.issue_cmd(ConsoleLog).await.expect("console log");
    log.as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["level"] == "SEVERE")
                .filter_map(|e| e["message"].as_str())
                .filter(|m| !m.contains(ignore))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Waits up to 20 s for the element `css` names.
pub async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Waits for the element `css` names and clicks it.
pub async fn click(c: &Client, css: &str) {
    wait_for(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// On the demo provider's page: picks demo user `n` (0 Alice, 1 Bob).
pub async fn pick_user(c: &Client, n: usize) {
    click(c, &format!("#user-{n}")).await;
}

/// From the landing page: Sign in, pick Alice, wait for the dashboard.
pub async fn sign_in_by_clicking(c: &Client, origin: &str) {
    c.goto(&format!("{origin}/")).await.expect("open landing");
    click(c, "#signin").await;
    pick_user(c, 0).await;
    wait_for(c, "#greeting-name").await;
}
