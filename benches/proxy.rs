//! Load benchmark: the BFF against talking to the upstream directly, in one run.
//!
//! `cargo bench --bench proxy` builds in release mode, starts a fast upstream (in this
//! process) and the `taskflow-bff` binary (demo mode, CHATKIT_URL pointing at the
//! upstream), signs in through the demo provider, then measures:
//! - JSON round trips (~1 KiB response, 64 concurrent clients, keep-alive): req/s, p50/p99;
//! - SSE per-event latency (receive time minus the upstream's embedded send time) with 1 and
//!   BENCH_STREAMS concurrent streams, and time to first event;
//! - the BFF's RSS after start, and per open stream with BENCH_STREAMS streams open and with
//!   BENCH_HELD_STREAMS streams held for BENCH_HOLD_SECS (default 60), counting the streams
//!   that fail to open or to deliver their last event.
//!
//! Everything is on loopback and bounded in count and time. Knobs: BENCH_REQUESTS (default
//! 20000), BENCH_STREAMS (default 1000), BENCH_EVENTS (default 20), BENCH_HELD_STREAMS (a second
//! RSS measurement, e.g. 10000), BENCH_ONLY=json or sse (the JSON rows alone, or without the memory rows), BENCH_FLOOR=1
//! (rows for a bare actix-web + awc forwarder: the HTTP stack's own cost), BENCH_SETTLE_SECS
//! (pause after each many-stream run, default 6),
//! BENCH_BASELINE_BIN (another build of the BFF measured in the same run), BENCH_ROUNDS (the
//! proxies, nginx, the BFF, bare and baseline, take turns this many times, each with its
//! share of the requests and all the streams, in orders that balance position and
//! predecessor when it is a multiple of the number of proxies, twice it if odd; default 1, 2
//! with a baseline), BENCH_SESSION_CACHE_MS, BENCH_WORKERS and BENCH_BFF_LOG
//! (passed to the BFF as SESSION_CACHE_MS, WORKERS and RUST_LOG), BENCH_BFF_UNDER (a command
//! the BFF runs under, e.g. `valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out`: one
//! that keeps the BFF's process, as valgrind does, so the bench's signals reach it),
//! BENCH_FLOOR_UNDER (the same for the bare forwarder, with BENCH_FLOOR=1), and
//! BENCH_LOGGING: `silent`
//! (default: nginx without access log, the BFF at `warn`) or `file` (nginx's access log and
//! the BFF's `info` lines, one per request each, written to files): like against like.
//! nginx (the reference column) is installed from Debian's packages if missing.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_web::{web, App, HttpResponse, HttpServer};
use binary::{free_port, sign_in, BffProcess};
use bytes::Bytes;
use futures_util::{future::join_all, stream, StreamExt};

// Shared with the tests; the bench uses part of it.
#[allow(dead_code)]
#[path = "../tests/common/binary.rs"]
mod binary;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------- the upstream ----------

async fn json_body(request: Bytes) -> HttpResponse {
    // A real backend parses the request; actix also closes connections whose request body
    // was left unread, which would make every client reconnect.
    if serde_json::from_slice::<serde_json::Value>(&request).is_err() {
        return HttpResponse::BadRequest().finish();
    }
    // A threads.list-like answer of about 1 KiB.
    let data: Vec<serde_json::Value> = (0..8)
        .map(|i| serde_json::json!({"id": format!("thr_{i:012}"), "title": "A thread about the quarterly plan", "created_at": "2026-11-26T12:00:00Z", "status": {"type": "active"}}))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({"data": data, "has_more": false, "after": null}))
}

async fn sse_events(
    q: web::Query<std::collections::HashMap<String, String>>,
    _request: Bytes,
) -> HttpResponse {
    let n: usize = q.get("n").and_then(|v| v.parse().ok()).unwrap_or(20);
    let every = Duration::from_millis(q.get("ms").and_then(|v| v.parse().ok()).unwrap_or(50));
    let body = stream::unfold(0usize, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            actix_web::rt::time::sleep(every).await;
        }
        let ev = format!(
            "data: {{\"type\":\"thread.item.updated\",\"sent_ns\":{}}}\n\n",
            now_ns()
        );
        Some((Ok::<_, std::io::Error>(Bytes::from(ev)), i + 1))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}

/// Serves the upstream on `listener` until killed (run in a child process of the bench).
fn serve_upstream(listener: TcpListener) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .route("/chatkit", web::post().to(json_body))
                .route("/chatkit/sse", web::post().to(sse_events))
        })
        .workers(1)
        .backlog(4096)
        .max_connections(50_000)
        .listen(listener)?
        .run()
        .await
    })
}

/// A process of this bench (the upstream, the floor forwarder): the open-file cap is per
/// process, and the load client and the upstream each hold one socket per stream.
struct Upstream {
    child: Child,
    port: u16,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UPSTREAM_ROLE: &str = "TASKFLOW_BENCH_UPSTREAM_PORT";

fn start_upstream() -> Upstream {
    start_role(UPSTREAM_ROLE, |port| port.to_string(), "the upstream")
}

/// This executable again in `role` (the env var set to `value(port)`), listening on a free
/// port; returns once it accepts connections.
fn start_role(role: &str, value: impl FnOnce(u16) -> String, what: &str) -> Upstream {
    let port = free_port();
    let exe = std::env::current_exe().expect("bench executable");
    let under = std::env::var("BENCH_FLOOR_UNDER")
        .ok()
        .filter(|u| role == FLOOR_ROLE && !u.trim().is_empty());
    let mut cmd = match &under {
        Some(u) => {
            let mut words = u.split_whitespace();
            let mut c = Command::new(words.next().expect("a command"));
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let child = cmd
        .env(role, value(port))
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let process = Upstream { child, port };
    for _ in 0..if under.is_some() { 4000 } else { 200 } {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return process;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not start");
}

// ---------- the framework's floor ----------

const FLOOR_ROLE: &str = "TASKFLOW_BENCH_FLOOR";

/// A bare actix-web + awc forwarder (BENCH_FLOOR=1): what nginx's configuration does (fixed
/// `Authorization`, bodies streamed both ways, no checks), with the BFF's HTTP stack and
/// worker count. What the BFF costs above it is ours; what it costs above nginx is the stack's.
async fn bare_forward(
    req: actix_web::HttpRequest,
    body: web::Payload,
    client: web::Data<awc::Client>,
    upstream: web::Data<String>,
) -> HttpResponse {
    use actix_web::{body::SizedStream, http::header};
    let length = |h: &header::HeaderMap| {
        h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut up = client
        .request(
            req.method().clone(),
            format!("{}{}", upstream.get_ref(), req.uri()),
        )
        .no_decompress();
    for (k, v) in req.headers() {
        if ![
            header::HOST,
            header::CONNECTION,
            header::CONTENT_LENGTH,
            header::COOKIE,
        ]
        .contains(k)
        {
            up = up.append_header((k.clone(), v.clone()));
        }
    }
    up = up.insert_header((header::AUTHORIZATION, "Bearer bench"));
    let sent = match length(req.headers()) {
        Some(n) => up.send_body(SizedStream::new(n, body)).await,
        None => up.send().await,
    };
    let Ok(res) = sent else {
        return HttpResponse::BadGateway().finish();
    };
    let mut out = HttpResponse::build(res.status());
    for (k, v) in res.headers() {
        if ![
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ]
        .contains(k)
        {
            out.append_header((k.clone(), v.clone()));
        }
    }
    match length(res.headers()) {
        Some(n) => out.body(SizedStream::new(n, res)),
        None => out.streaming(res),
    }
}

fn serve_floor(listener: TcpListener, upstream: u16) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(
                    awc::Client::builder()
                        .connector(awc::Connector::new().limit(0))
                        .disable_redirects()
                        .no_default_headers()
                        .finish(),
                ))
                .app_data(web::Data::new(format!("http://127.0.0.1:{upstream}")))
                .default_service(web::to(bare_forward))
        })
        .workers(2)
        .backlog(4096)
        .tcp_nodelay(true)
        .max_connections(50_000)
        .listen(listener)?
        .run()
        .await
    })
}

fn start_floor(upstream: u16) -> Upstream {
    start_role(
        FLOOR_ROLE,
        |port| format!("{port}:{upstream}"),
        "the floor forwarder",
    )
}

// ---------- nginx, the reference ----------

struct Nginx {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx `proxy_pass` with `proxy_buffering off` and a fixed Authorization header; installed
/// from Debian's packages if missing. `None` when it cannot be had.
/// Whether both proxies write one log line per request to a file (`BENCH_LOGGING=file`).
fn logging_to_files() -> bool {
    std::env::var("BENCH_LOGGING").is_ok_and(|v| v == "file")
}

fn start_nginx(upstream: u16) -> Option<Nginx> {
    let have = |cmd: &str| Command::new(cmd).arg("-v").stderr(Stdio::null()).status().is_ok();
    let nginx = ["nginx", "/usr/sbin/nginx"]
        .into_iter()
        .find(|c| have(c))
        .map(str::to_owned)
        .or_else(|| {
            eprintln!("installing nginx-light for the reference column");
            let apt = |args: &[&str]| {
                Command::new("apt-get")
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let install = ["install", "-y", "-qq", "nginx-light"];
            // A fresh machine has no package lists yet.
            let ok = apt(&install) || (apt(&["update", "-qq"]) && apt(&install));
            (ok && have("/usr/sbin/nginx")).then(|| "/usr/sbin/nginx".to_owned())
        })?;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("taskflow-bff-bench-nginx-{port}"));
    std::fs::create_dir_all(&dir).ok()?;
    let conf = format!(
        "worker_processes auto;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 20000; }}\n\
         http {{\n access_log {access};\n client_body_temp_path {d};\n proxy_temp_path {d};\n\
         fastcgi_temp_path {d};\n uwsgi_temp_path {d};\n scgi_temp_path {d};\n\
         upstream up {{ server 127.0.0.1:{upstream}; keepalive 256; }}\n\
         server {{\n  listen 127.0.0.1:{port};\n  location / {{\n   proxy_pass http://up;\n\
           proxy_http_version 1.1;\n   proxy_set_header Connection \"\";\n   proxy_buffering off;\n\
           proxy_set_header Authorization \"Bearer bench\";\n   proxy_read_timeout 300s;\n  }}\n }}\n}}\n",
        d = dir.display(),
        access = if logging_to_files() {
            format!("{}/access.log", dir.display())
        } else {
            "off".into()
        }
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).ok()?;
    let child = Command::new(nginx)
        .args(["-c", &path.to_string_lossy(), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Nginx { child, port, dir });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

// ---------- the BFF process ----------

/// The binary with the bench's knobs (BENCH_SESSION_CACHE_MS, BENCH_WORKERS, BENCH_BFF_LOG);
/// `program` is another build of it (the baseline), else this build's.
fn start_bff(upstream: u16, program: Option<&std::path::Path>) -> BffProcess {
    let mut env = vec![
        ("CHATKIT_URL", format!("http://127.0.0.1:{upstream}/chatkit")),
        ("DEMO_TOKEN_TTL_SECS", "3600".to_owned()),
        ("RUST_LOG", bff_log_level()),
    ];
    for (knob, var) in [
        ("BENCH_SESSION_CACHE_MS", "SESSION_CACHE_MS"),
        ("BENCH_WORKERS", "WORKERS"),
    ] {
        if let Ok(v) = std::env::var(knob) {
            env.push((var, v));
        }
    }
    let log = logging_to_files().then(|| {
        let who = if program.is_some() { "baseline-" } else { "" };
        std::env::temp_dir().join(format!("taskflow-bff-bench-{who}{}.log", std::process::id()))
    });
    match program {
        Some(p) => BffProcess::start_program(p, &env, log.as_deref()),
        None => BffProcess::start_logging_to(&env, log.as_deref()),
    }
}

/// `BENCH_BFF_LOG`, else `info` when logging to files and `warn` when silent.
fn bff_log_level() -> String {
    std::env::var("BENCH_BFF_LOG").unwrap_or_else(|_| if logging_to_files() { "info" } else { "warn" }.into())
}

/// RSS of `pid` and its child processes (nginx's workers), in KiB.
fn rss_kib(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .unwrap_or(0);
    own + children(pid).map(rss_kib).sum::<u64>()
}

/// Open file descriptors of `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn children(pid: u32) -> impl Iterator<Item = u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .collect::<Vec<_>>()
        .into_iter()
}

/// CPU time (user + system, in clock ticks of 10 ms) used so far by `pid` and its children
/// processes (nginx's workers).
fn cpu_ticks(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    own + children(pid).map(cpu_ticks).sum::<u64>()
}

fn client() -> awc::Client {
    client_with_timeout(Duration::from_secs(30))
}

fn client_with_timeout(timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0).timeout(Duration::from_secs(5)))
        .timeout(timeout)
        .disable_redirects()
        .finish()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Target {
    base: String,
    headers: Vec<(&'static str, String)>,
}

fn request(c: &awc::Client, t: &Target, path: &str) -> awc::ClientRequest {
    let mut r = c
        .post(format!("{}{path}", t.base))
        .insert_header(("Content-Type", "application/json"));
    for (k, v) in &t.headers {
        r = r.insert_header((*k, v.clone()));
    }
    r
}

/// JSON round trips: (req/s, p50 ms, p99 ms, errors).
async fn json_load(t: &Target, total: usize, concurrency: usize) -> (f64, f64, f64, usize) {
    let c = client();
    let t = Arc::new(Target {
        base: t.base.clone(),
        headers: t.headers.clone(),
    });
    let per = total / concurrency;
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let c = c.clone();
        let t = t.clone();
        async move {
            let mut lat = Vec::with_capacity(per);
            let mut errors = 0;
            for _ in 0..per {
                let s = Instant::now();
                match request(&c, &t, "/chatkit")
                    .send_body(r#"{"type":"threads.list","params":{}}"#)
                    .await
                {
                    Ok(mut r) if r.status().is_success() => {
                        if r.body().await.is_err() {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
                lat.push(s.elapsed().as_secs_f64() * 1000.0);
            }
            (lat, errors)
        }
    });
    let results = join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = results.iter().flat_map(|(l, _)| l.iter().copied()).collect();
    let errors = results.iter().map(|(_, e)| e).sum();
    lat.sort_by(|a, b| a.total_cmp(b));
    (
        (per * concurrency) as f64 / elapsed,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        errors,
    )
}

/// The order the proxies run in round `r`: a Williams design, so that over `width` rounds
/// (twice that for an odd number) each proxy runs in every position and right after every
/// other one equally often.
fn turn_order(width: usize, r: usize) -> Vec<usize> {
    let block = r % if width.is_multiple_of(2) { width } else { 2 * width };
    // 0, 1, n-1, 2, n-2, ... shifted by the round.
    let mut row: Vec<usize> = (0..width)
        .map(|j| if j % 2 == 1 { j.div_ceil(2) } else { width - j / 2 })
        .map(|f| (f + block) % width)
        .collect();
    if block >= width {
        row.reverse();
    }
    row
}

/// One proxy measured by the bench: its target, its process (for CPU) and its sums.
struct Column<'a> {
    name: &'static str,
    target: &'a Target,
    pid: u32,
    json: Sums,
    sse: Sums,
}

impl<'a> Column<'a> {
    fn new(name: &'static str, target: &'a Target, pid: u32) -> Self {
        Self {
            name,
            target,
            pid,
            json: Sums::default(),
            sse: Sums::default(),
        }
    }
}

/// A measurement summed over rounds: three figures (averaged), errors, CPU ticks of the
/// whole run and of the part until the last stream ended.
#[derive(Default)]
struct Sums {
    figures: [f64; 3],
    errors: usize,
    cpu: u64,
    cpu_run: u64,
    rounds: usize,
}

impl Sums {
    /// What a column that was not measured shows.
    const MISSING: ([f64; 3], usize, f64, f64) = ([f64::NAN; 3], 0, f64::NAN, f64::NAN);

    fn add(&mut self, figures: [f64; 3], errors: usize, cpu: u64, cpu_run: u64) {
        for (sum, f) in self.figures.iter_mut().zip(figures) {
            *sum += f;
        }
        self.errors += errors;
        self.cpu += cpu;
        self.cpu_run += cpu_run;
        self.rounds += 1;
    }

    /// Averaged figures, all errors, and CPU ticks per round.
    fn mean(&self) -> ([f64; 3], usize, f64, f64) {
        let k = self.rounds.max(1) as f64;
        (
            self.figures.map(|f| f / k),
            self.errors,
            self.cpu as f64 / k,
            self.cpu_run as f64 / k,
        )
    }
}

/// SSE: per-event latency p50/p99 (ms), time-to-first-event p50 (ms), errors, and the CPU
/// ticks `cpu_of` used until the last stream ended (before the settling pause, in which idle
/// upstream connections may be closed).
async fn sse_load(
    t: &Target,
    streams: usize,
    events: usize,
    cpu_of: Option<u32>,
) -> (f64, f64, f64, usize, Option<u64>) {
    let cpu_before = cpu_of.map(cpu_ticks);
    let c = client();
    let t = Arc::new(Target {
        base: t.base.clone(),
        headers: t.headers.clone(),
    });
    let work = (0..streams).map(|_| {
        let c = c.clone();
        let t = t.clone();
        async move {
            let started = Instant::now();
            let path = format!("/chatkit/sse?n={events}&ms=50");
            let mut res = match request(&c, &t, &path).send_body("{}").await {
                Ok(r) if r.status().is_success() => r,
                _ => return (Vec::new(), f64::NAN, 1),
            };
            let mut lat = Vec::new();
            let mut first = f64::NAN;
            let mut buf = String::new();
            while let Some(chunk) = res.next().await {
                let Ok(chunk) = chunk else { return (lat, first, 1) };
                let at = now_ns();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let ev: String = buf.drain(..end + 2).collect();
                    if let Some(sent) = ev
                        .split("\"sent_ns\":")
                        .nth(1)
                        .and_then(|s| s.trim_end_matches(['}', '\n']).parse::<u128>().ok())
                    {
                        if first.is_nan() {
                            first = started.elapsed().as_secs_f64() * 1000.0;
                        }
                        lat.push(at.saturating_sub(sent) as f64 / 1e6);
                    }
                }
            }
            let errors = usize::from(lat.len() != events);
            (lat, first, errors)
        }
    });
    let results = join_all(work).await;
    let cpu = cpu_of
        .zip(cpu_before)
        .map(|(pid, before)| cpu_ticks(pid) - before);
    if streams > 1 {
        // The next column starts on a quiet machine: closing this burst's connections (the
        // upstream's, the proxy's idle ones when reaped) would otherwise overlap its burst.
        let settle = env_usize("BENCH_SETTLE_SECS", 6) as u64;
        actix_web::rt::time::sleep(Duration::from_secs(settle)).await;
    }
    let mut lat: Vec<f64> = results.iter().flat_map(|(l, _, _)| l.iter().copied()).collect();
    let mut firsts: Vec<f64> = results
        .iter()
        .map(|(_, f, _)| *f)
        .filter(|f| !f.is_nan())
        .collect();
    let errors = results.iter().map(|(_, _, e)| e).sum();
    lat.sort_by(|a, b| a.total_cmp(b));
    firsts.sort_by(|a, b| a.total_cmp(b));
    (pct(&lat, 0.5), pct(&lat, 0.99), pct(&firsts, 0.5), errors, cpu)
}

/// Opens `n` streams through the BFF whose second event comes after `hold`; returns the
/// BFF's RSS growth per stream (KiB), its RSS before, streams that failed to open, and
/// streams that then failed to deliver their second event and clean end.
async fn held_streams(t: &Target, pid: u32, n: usize, hold: Duration) -> (f64, u64, usize, usize) {
    let c = client_with_timeout(hold + Duration::from_secs(60));
    let idle = rss_kib(pid);
    let mut held = Vec::with_capacity(n);
    let mut failed = 0;
    let path = format!("/chatkit/sse?n=2&ms={}", hold.as_millis());
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let opened = join_all(chunk.iter().map(|_| request(&c, t, &path).send_body("{}"))).await;
        for r in opened {
            match r {
                Ok(mut r) if r.status().is_success() => {
                    let _ = r.next().await; // the first event: the stream is live end to end
                    held.push(r);
                }
                _ => failed += 1,
            }
        }
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let loaded = rss_kib(pid);
    // Every held stream must still carry its second event and end cleanly.
    let ends = join_all(held.into_iter().map(|mut r| async move {
        let mut text = Vec::new();
        while let Some(chunk) = r.next().await {
            match chunk {
                Ok(b) => text.extend_from_slice(&b),
                Err(_) => return false,
            }
        }
        String::from_utf8_lossy(&text).contains("sent_ns")
    }))
    .await;
    let broken = ends.iter().filter(|ok| !**ok).count();
    (
        loaded.saturating_sub(idle) as f64 / n as f64,
        idle,
        failed,
        broken,
    )
}

/// Prints the memory rows for `n` streams through the BFF (held for `hold`) and nginx.
async fn memory_rows(
    via: &Target,
    pid: u32,
    ngx: Option<&Target>,
    nginx_pid: Option<u32>,
    n: usize,
    hold: Duration,
) {
    let files_before = open_files(pid);
    let (per, before, failed, broken) = held_streams(via, pid, n, hold).await;
    let ended = std::time::Instant::now();
    // nginx holding the same streams, for reference (briefly).
    let (n_per, n_failed) = match (ngx, nginx_pid) {
        (Some(t), Some(p)) => {
            let (per, _, failed, broken) = held_streams(t, p, n, Duration::from_secs(2)).await;
            (per, failed + broken)
        }
        _ => (f64::NAN, 0),
    };
    let blank = "";
    println!(
        "{:<44} {blank:>10} {n_per:>10.1} {per:>10.1} {:>10.2}",
        format!("RSS KiB per open stream ({n})"),
        per / n_per
    );
    println!(
        "{:<44} {blank:>10} {n_failed:>10} {:>10}",
        format!("  streams failed to open / to end, held {}s", hold.as_secs()),
        format!("{failed} / {broken}")
    );
    println!(
        "{:<44} {blank:>10} {blank:>10} {before:>10}",
        "  BFF RSS KiB before opening them"
    );
    // Resources come back without further traffic: idle upstream connections are closed.
    actix_web::rt::time::sleep(
        (ended + Duration::from_secs(10)).saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    println!(
        "{:<44} {blank:>10} {blank:>10} {:>10}",
        "  BFF open files before / 10 s after the end",
        format!("{files_before} / {}", open_files(pid))
    );
    println!(
        "{:<44} {blank:>10} {blank:>10} {:>10}",
        "  BFF RSS KiB 10 s after the end",
        rss_kib(pid)
    );
}

fn main() {
    let requests = env_usize("BENCH_REQUESTS", 20_000);
    let streams = env_usize("BENCH_STREAMS", 1000);
    let events = env_usize("BENCH_EVENTS", 20);
    // One socket per stream in the load client and in the upstream: use the hard limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if let Some(port) = std::env::var(UPSTREAM_ROLE)
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind upstream");
        // std listens with a backlog of 128; bursts of 1,000 connects need more.
        socket2::SockRef::from(&listener).listen(4096).expect("backlog");
        serve_upstream(listener).expect("upstream");
        return;
    }
    if let Some((port, upstream)) = std::env::var(FLOOR_ROLE).ok().and_then(|v| {
        let (a, b) = v.split_once(':')?;
        Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?))
    }) {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind floor");
        socket2::SockRef::from(&listener).listen(4096).expect("backlog");
        serve_floor(listener, upstream).expect("floor");
        return;
    }
    let upstream = start_upstream();
    let up = upstream.port;
    let bff = start_bff(up, None);
    let baseline_bin = std::env::var_os("BENCH_BASELINE_BIN").map(std::path::PathBuf::from);
    let baseline = baseline_bin.as_deref().map(|p| start_bff(up, Some(p)));
    let nginx = start_nginx(up);
    let floor = std::env::var("BENCH_FLOOR")
        .is_ok_and(|v| v == "1")
        .then(|| start_floor(up));
    let pid = bff.child.id();
    let bff_ref = &bff;
    let baseline_ref = baseline.as_ref();
    let floor_ref = floor.as_ref();
    actix_web::rt::System::new().block_on(async move {
        // Under a profiler start-up (the demo provider's RSA key) is many times slower.
        let profiled = std::env::var("BENCH_BFF_UNDER").is_ok_and(|v| !v.trim().is_empty());
        bff_ref.ready(if profiled { 600 } else { 30 }).await;
        let cookie = sign_in(&bff_ref.origin).await;
        let started_rss = rss_kib(pid);
        let direct = Target {
            base: format!("http://127.0.0.1:{up}"),
            headers: vec![("Authorization", "Bearer bench".into())],
        };
        let via = Target {
            base: format!("{}/api", bff_ref.origin),
            headers: vec![
                ("Cookie", cookie),
                ("Origin", bff_ref.origin.clone()),
                ("X-CSRF", "1".into()),
            ],
        };
        let ngx = nginx.as_ref().map(|n| Target {
            base: format!("http://127.0.0.1:{}", n.port),
            headers: vec![],
        });
        let flo = floor_ref.map(|f| {
            let t = Target {
                base: format!("http://127.0.0.1:{}", f.port),
                headers: vec![],
            };
            (t, f.child.id())
        });
        if let Some((t, _)) = &flo {
            let _ = json_load(t, 2000, 64).await;
        }
        // Warm-up: connections, caches.
        let _ = json_load(&via, 2000, 64).await;
        let _ = json_load(&direct, 2000, 64).await;
        if let Some(n) = &ngx {
            let _ = json_load(n, 2000, 64).await;
        }
        // Another build of the BFF, measured in the same run (BENCH_BASELINE_BIN).
        let mut base = None;
        if let Some(b) = baseline_ref {
            b.ready(30).await;
            let t = Target {
                base: format!("{}/api", b.origin),
                headers: vec![
                    ("Cookie", sign_in(&b.origin).await),
                    ("Origin", b.origin.clone()),
                    ("X-CSRF", "1".into()),
                ],
            };
            let _ = json_load(&t, 2000, 64).await;
            base = Some((t, b.child.id()));
        }

        println!(
            "taskflow-bff proxy benchmark ({} cores; loopback; logs {}; BFF log level {}; SESSION_CACHE_MS {})",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if logging_to_files() { "to files (nginx access_log, BFF info)" } else { "silent (no nginx access_log)" },
            bff_log_level(),
            std::env::var("BENCH_SESSION_CACHE_MS").unwrap_or_else(|_| "default".into())
        );
        println!(
            "{:<44} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "", "direct", "nginx", "BFF", "BFF/nginx", "BFF/direct"
        );
        let row = |label: String, d: f64, n: f64, b: f64, ratio: bool| {
            if ratio {
                println!(
                    "{label:<44} {d:>10.0} {n:>10.0} {b:>10.0} {:>10.2} {:>10.2}",
                    b / n,
                    b / d
                );
            } else {
                println!(
                    "{label:<44} {d:>10.3} {n:>10.3} {b:>10.3} {:>+10.3} {:>+10.3}",
                    b - n,
                    b - d
                );
            }
        };
        println!(
            "{:<44} {:>10} {:>10} {:>10}",
            "BFF RSS KiB after start and sign-in", "", "", started_rss
        );
        let (d_rps, d50, d99, de) = json_load(&direct, requests, 64).await;
        // The proxies take turns (BENCH_ROUNDS rounds of requests/rounds each, the order
        // rotated every round), so drift in the machine's speed and the wake of the previous
        // column's run fall on all of them alike.
        let nginx_pid = nginx.as_ref().map(|n| n.child.id());
        let mut columns: Vec<Column> = Vec::new();
        if let (Some(t), Some(p)) = (&ngx, nginx_pid) {
            columns.push(Column::new("nginx", t, p));
        }
        columns.push(Column::new("BFF", &via, pid));
        if let Some((t, p)) = &flo {
            columns.push(Column::new("bare", t, *p));
        }
        if let Some((t, p)) = &base {
            columns.push(Column::new("baseline", t, *p));
        }
        let width = columns.len();
        let default_rounds = if base.is_some() { 2 } else { 1 };
        let rounds = env_usize("BENCH_ROUNDS", default_rounds).max(1);
        for r in 0..rounds {
            for i in turn_order(width, r) {
                let c = &mut columns[i];
                let before = cpu_ticks(c.pid);
                let (rps, p50, p99, errors) = json_load(c.target, requests / rounds, 64).await;
                c.json.add([rps, p50, p99], errors, cpu_ticks(c.pid) - before, 0);
            }
        }
        // CPU ticks per round over the requests of one round (json_load runs whole batches).
        let per_request = |ticks: f64| ticks * 1e4 / ((requests / rounds) / 64 * 64) as f64;
        let named = |name: &str| columns.iter().find(|c| c.name == name);
        let ([n_rps, n50, n99], ne, n_cpu, _) = named("nginx").map_or(Sums::MISSING, |c| c.json.mean());
        let ([b_rps, b50, b99], be, b_cpu, _) = named("BFF").map_or(Sums::MISSING, |c| c.json.mean());
        let (n_cpu, b_cpu) = (per_request(n_cpu), per_request(b_cpu));
        println!("(JSON: {rounds} round(s) of {} requests per proxy, taking turns)", requests / rounds);
        row(
            format!("JSON req/s ({requests} req, 64 conc.)"),
            d_rps,
            n_rps,
            b_rps,
            true,
        );
        // Direct has no proxy: its column stays empty (NaN).
        row(
            "JSON proxy CPU µs per request".into(),
            f64::NAN,
            n_cpu,
            b_cpu,
            false,
        );
        row("JSON p50 latency ms (BFF minus)".into(), d50, n50, b50, false);
        row("JSON p99 latency ms (BFF minus)".into(), d99, n99, b99, false);
        for c in columns.iter().filter(|c| c.name == "baseline" || c.name == "bare") {
            let ([rps, p50, _], _, cpu, _) = c.json.mean();
            let label = if c.name == "bare" { "bare actix-web + awc" } else { "baseline build" };
            row(format!("JSON req/s, {label}"), d_rps, n_rps, rps, true);
            row(format!("JSON proxy CPU µs per request, {}", c.name), f64::NAN, n_cpu, per_request(cpu), false);
            row(format!("JSON p50 latency ms, {}", c.name), d50, n50, p50, false);
            if c.name == "baseline" {
                println!(
                    "this build / baseline: req/s {:.2}, CPU per request {:.2}",
                    b_rps / rps,
                    b_cpu / per_request(cpu)
                );
            }
        }
        let mut json_errors = format!("errors: JSON direct {de}, nginx {ne}, BFF {be}");
        for c in columns.iter().filter(|c| c.name == "bare" || c.name == "baseline") {
            json_errors += &format!(", {} {}", c.name, c.json.errors);
        }
        if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "json") {
            println!("{json_errors}");
            return;
        }
        // Memory first, while the heap holds no memory freed by earlier streams (reused, it
        // would hide the cost of new ones); the large hold last, as it leaves thousands of idle
        // keep-alive connections behind.
        let held = env_usize("BENCH_HELD_STREAMS", streams);
        let hold = Duration::from_secs(env_usize("BENCH_HOLD_SECS", 60) as u64);
        let short = if held == streams {
            hold
        } else {
            Duration::from_secs(2)
        };
        if !std::env::var("BENCH_ONLY").is_ok_and(|v| v == "sse") {
            memory_rows(&via, pid, ngx.as_ref(), nginx_pid, streams, short).await;
        }
        for n in [1, streams] {
            let (d50, d99, dfirst, de2, _) = sse_load(&direct, n, events, None).await;
            for c in columns.iter_mut() {
                c.sse = Sums::default();
            }
            for r in 0..rounds {
                for i in turn_order(width, r) {
                    let c = &mut columns[i];
                    let before = cpu_ticks(c.pid);
                    let (p50, p99, first, errors, run) = sse_load(c.target, n, events, Some(c.pid)).await;
                    let (with_pause, run) = (cpu_ticks(c.pid) - before, run.unwrap_or_default());
                    c.sse.add([p50, p99, first], errors, with_pause, run);
                }
            }
            // CPU per stream: setting it up and passing on its events, until the last stream
            // ends, and with the pause after it (idle upstream connections closed).
            let per_stream = |ticks: f64| ticks * 1e4 / n as f64;
            let named = |name: &str| columns.iter().find(|c| c.name == name);
            let ([n50, n99, nfirst], ne2, n_cpu, n_run) = named("nginx").map_or(Sums::MISSING, |c| c.sse.mean());
            let ([b50, b99, bfirst], be2, b_cpu, b_run) = named("BFF").map_or(Sums::MISSING, |c| c.sse.mean());
            row(format!("SSE per-event p50 ms, {n} streams"), d50, n50, b50, false);
            row(format!("SSE per-event p99 ms, {n} streams"), d99, n99, b99, false);
            row(format!("SSE first event p50 ms, {n} streams"), dfirst, nfirst, bfirst, false);
            if n > 1 {
                row(format!("SSE proxy CPU µs per stream, {n} streams, until they end"), f64::NAN, per_stream(n_run), per_stream(b_run), false);
                row(format!("SSE proxy CPU µs per stream, {n} streams, with the pause"), f64::NAN, per_stream(n_cpu), per_stream(b_cpu), false);
            }
            for c in columns.iter().filter(|c| c.name == "bare" || c.name == "baseline") {
                let (name, ([p50, p99, first], errors, cpu, run)) = (c.name, c.sse.mean());
                row(format!("SSE per-event p50 ms, {n} streams, {name}"), d50, n50, p50, false);
                row(format!("SSE per-event p99 ms, {n} streams, {name}"), d99, n99, p99, false);
                row(format!("SSE first event p50 ms, {n} streams, {name}"), dfirst, nfirst, first, false);
                if n > 1 {
                    row(format!("SSE proxy CPU µs per stream, {n} streams, until they end, {name}"), f64::NAN, per_stream(n_run), per_stream(run), false);
                    row(format!("SSE proxy CPU µs per stream, {n} streams, with the pause, {name}"), f64::NAN, per_stream(n_cpu), per_stream(cpu), false);
                }
                if errors > 0 {
                    println!("  stream errors: {name} {errors}");
                }
            }
            if de2 + ne2 + be2 > 0 {
                println!("  stream errors: direct {de2}, nginx {ne2}, BFF {be2}");
            }
        }
        if held != streams {
            memory_rows(&via, pid, ngx.as_ref(), nginx_pid, held, hold).await;
        }
        println!("{json_errors}");
    });
    // A profiler writes its report when the program exits, not when it is killed.
    if let Some(f) = floor.filter(|_| std::env::var("BENCH_FLOOR_UNDER").is_ok_and(|v| !v.trim().is_empty()))
    {
        let _ = Command::new("kill")
            .args(["-TERM", &f.child.id().to_string()])
            .status();
        let mut f = f;
        let _ = f.child.wait();
    }
    if std::env::var("BENCH_BFF_UNDER").is_ok_and(|v| !v.trim().is_empty()) {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let mut bff = bff;
        let _ = bff.child.wait();
    }
}
