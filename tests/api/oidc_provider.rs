//! End to end against a certified third-party OpenID Provider, node `oidc-provider`
//! (`tests/oidc-provider`, installed by `.ci/run` with `npm ci`): discovery, PKCE, the
//! RFC 9207 `iss` parameter, client_secret_basic, id_token checks and userinfo as someone
//! else reads the spec, not only our demo provider.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::spawn_app_with;

const SECRET: &str = "e2e-client-secret-0123456789abcdef";

struct Op {
    child: Child,
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

/// The provider's own cookies (interaction and session), kept apart from the BFF's.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn keep(&mut self, res: &awc::ClientResponse<impl Sized>) {
        for v in res
            .headers()
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
        {
            if let Some((name, value)) = v.split(';').next().and_then(|c| c.split_once('=')) {
                self.0.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn location(res: &awc::ClientResponse<impl Sized>) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_owned()
}

/// GET (or POST a form) at the provider; returns (status, location, body).
async fn op_call(
    c: &awc::Client,
    jar: &mut Jar,
    url: &str,
    form: Option<&[(&str, &str)]>,
) -> (u16, Option<String>, String) {
    let req = match form {
        Some(_) => c.post(url),
        None => c.get(url),
    }
    .insert_header(("Cookie", jar.header()));
    let mut res = match form {
        Some(f) => req.send_form(&f).await,
        None => req.send().await,
    }
    .expect("provider answers");
    jar.keep(&res);
    let body = res.body().await.expect("body");
    let loc = res.status().is_redirection().then(|| location(&res));
    (
        res.status().as_u16(),
        loc,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The `action` of the page's form: the provider's interaction URL.
fn form_action(html: &str) -> String {
    html.split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an interaction form")
        .to_owned()
}

fn absolute(op: &str, loc: String) -> String {
    if loc.starts_with('/') {
        format!("{op}{loc}")
    } else {
        loc
    }
}

#[actix_web::test]
async fn sign_in_and_out_with_node_oidc_provider() {
    let dir = provider_dir();
    if !dir.join("node_modules/oidc-provider").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI installs tests/oidc-provider (npm ci)"
        );
        eprintln!("skipped: run `npm ci --prefix tests/oidc-provider` first");
        return;
    }
    let op_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let op = format!("http://127.0.0.1:{op_port}");
    // The BFF starts first (its discovery retries until the provider answers), so that the
    // provider can be told the BFF's redirect URI.
    let app = spawn_app_with(&[
        ("OIDC_ISSUER", op.as_str()),
        ("OIDC_CLIENT_ID", "taskflow-e2e"),
        ("OIDC_CLIENT_SECRET", SECRET),
        ("SESSION_SECRET", "e2e-session-secret-0123456789abcdef0123"),
        // oidc-provider grants offline_access (a refresh token) only with consent.
        ("OIDC_PROMPT", "consent"),
        ("BACKEND_URL", "http://127.0.0.1:9"),
    ])
    .await;
    let _op = Op {
        child: Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("OP_PORT", op_port.to_string())
            .env("OP_CLIENT_SECRET", SECRET)
            .env("OP_REDIRECT_URI", format!("{}/api/auth/callback", app.origin))
            .env("OP_POST_LOGOUT_URI", format!("{}/", app.origin))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs tests/oidc-provider/provider.mjs"),
    };
    assert!(
        app.becomes_ready(15).await,
        "the BFF never loaded the provider's metadata"
    );

    // Our login → the provider's login and consent pages → our callback.
    let login = app.get("/api/auth/login?returnTo=/dashboard").await;
    assert_eq!(login.status, 302);
    let authorize = login.location();
    assert!(authorize.starts_with(&format!("{op}/auth?")), "{authorize}");
    let c = awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut jar = Jar::default();
    let mut url = authorize;
    let mut callback = None;
    for _ in 0..10 {
        let (status, loc, body) = op_call(&c, &mut jar, &url, None).await;
        match loc {
            Some(l) if l.starts_with(&app.origin) => {
                callback = Some(l);
                break;
            }
            Some(l) => url = absolute(&op, l),
            None => {
                assert_eq!(status, 200, "{body}");
                let action = form_action(&body);
                let form: &[(&str, &str)] = if body.contains("name=\"login\"") {
                    &[("prompt", "login"), ("login", "olga"), ("password", "any")]
                } else {
                    &[("prompt", "consent")]
                };
                let (_, loc, body) = op_call(&c, &mut jar, &action, Some(form)).await;
                url = absolute(
                    &op,
                    loc.unwrap_or_else(|| panic!("no redirect after the form: {body}")),
                );
            }
        }
    }
    let callback = callback.expect("the provider redirected back to the BFF");
    assert!(callback.contains("iss="), "RFC 9207 iss parameter: {callback}");
    let done = app.get(callback.trim_start_matches(&app.origin)).await;
    assert_eq!(done.status, 302, "{}", done.text());
    assert_eq!(done.location(), "/dashboard");

    let me = app.get("/api/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["sub"], "olga");
    assert_eq!(me.json()["name"], "Olga Provider", "from userinfo");
    assert_eq!(me.json()["email"], "olga@example.test");

    // A refresh at the provider's token endpoint before forwarding (the backend itself is
    // down here: the request ends in 502, after the refresh).
    app.expire_token().await;
    let r = app.post_api("/api/remote/tasks", "{}").await;
    assert_eq!(r.status, 502, "{}", r.text());
    let rec = app.session_record().await;
    assert!(
        rec.tokens.expires_at > taskflow_bff::clock::now() + 60,
        "new tokens from the provider"
    );
    assert_eq!(app.get("/api/auth/me").await.status, 200);

    // Sign-out: the session ends here and the browser is sent to the provider's end_session.
    let out = app.logout().await;
    assert_eq!(out.status, 200);
    let to = out.json()["redirect_to"].as_str().unwrap_or_default().to_owned();
    assert!(to.starts_with(&format!("{op}/session/end?")), "{to}");
    // By default the token stays off the browser: client_id names us instead, and the
    // provider takes the request (it may ask the user to confirm).
    assert!(!to.contains("id_token_hint"), "{to}");
    assert!(to.contains("client_id="), "{to}");
    let end = app.get(&to).await;
    assert!(
        end.status == 200 || end.status == 302 || end.status == 303,
        "{} {}",
        end.status,
        end.text()
    );
    assert_eq!(app.get("/api/auth/me").await.status, 401);
}
