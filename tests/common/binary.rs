//! The real `taskflow-bff` binary in a process of its own, and a demo sign-in against
//! it: shared by the drills (`tests/api`) and the bench (`benches/proxy.rs`).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running `taskflow-bff`; killed, and its database removed, when dropped.
pub struct BffProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:{port}`.
    pub origin: String,
    dir: PathBuf,
}

impl Drop for BffProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

impl BffProcess {
    /// Starts the binary (demo mode) on a free loopback port with its own SQLite file, in a
    /// cleared environment plus `PATH` and `env`. It is not ready yet: see [`Self::ready`].
    pub fn start(env: &[(&str, String)]) -> Self {
        Self::start_logging_to(env, None)
    }

    /// [`Self::start`] with its log lines (standard output) appended to `log`.
    pub fn start_logging_to(env: &[(&str, String)], log: Option<&std::path::Path>) -> Self {
        Self::start_program(env!("CARGO_BIN_EXE_taskflow-bff").as_ref(), env, log)
    }

    /// [`Self::start_logging_to`] with another build of the binary (the bench's baseline).
    pub fn start_program(
        program: &std::path::Path,
        env: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("taskflow-bff-proc-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // BENCH_BFF_UNDER: a command the binary runs under (a profiler), split at spaces.
        let under = std::env::var("BENCH_BFF_UNDER").unwrap_or_default();
        let mut words = under.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(program);
                c
            }
            None => Command::new(program),
        };
        let child = command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}/s.db", dir.display()))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(match log.and_then(|p| std::fs::File::create(p).ok()) {
                Some(f) => Stdio::from(f),
                None => Stdio::null(),
            })
            .stderr(Stdio::null())
            .spawn()
            .expect("start taskflow-bff");
        Self {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// Waits until `/readyz` answers 200; panics after `secs` seconds.
    pub async fn ready(&self, secs: u64) {
        let c = awc::Client::default();
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let ok = c
                .get(format!("{}/readyz", self.origin))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "taskflow-bff did not become ready");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A response header's value as text, if present and visible ASCII.
pub fn header_text<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Signs in as Alice through the binary's demo provider; returns the `Cookie` header value.
pub async fn sign_in(origin: &str) -> String {
    let c = awc::Client::builder().disable_redirects().finish();
    let res = c
        .get(format!("{origin}/api/auth/login?returnTo=/dashboard"))
        .send()
        .await
        .expect("login");
    let login = header_text(res.headers(), "set-cookie")
        .and_then(|v| v.split(';').next())
        .expect("login cookie")
        .to_owned();
    let authorize = header_text(res.headers(), "location")
        .expect("location")
        .to_owned();
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    form.push(("user".into(), "0".into()));
    let res = c
        .post(format!("{origin}/demo/idp/authorize"))
        .send_form(&form)
        .await
        .expect("authorize");
    let callback = header_text(res.headers(), "location")
        .expect("callback")
        .to_owned();
    let res = c
        .get(callback)
        .insert_header(("Cookie", login))
        .send()
        .await
        .expect("callback");
    res.headers()
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("taskflow_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned()
}
