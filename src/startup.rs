//! Builds the application: binds the listener, wires state and routes; `main` and the
//! tests use the same builder.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{
    dev::{Server, ServiceRequest},
    http::header::HeaderValue,
    middleware::{from_fn, Next},
    web, App, HttpServer,
};
use anyhow::{bail, Context};
use secrecy::SecretString;
use tracing_actix_web::TracingLogger;
use url::Url;

use crate::{
    auth::{provider::Provider, refresh_locks::RefreshLocks},
    config::{OidcSettings, Settings, TokenAuthMethod},
    dashboard, demo, health,
    ids::random_token,
    limits,
    proxy::{forward::ProxyClient, ProxyRoutes},
    routing::{extractor_errors, response_headers, routes},
    session::{crypto::Keys, SessionStore},
    state::AppState,
    telemetry::RequestSpan,
};

/// Pending connections the kernel may queue for us (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    demo_backend: Option<Server>,
}

impl Application {
    /// Validates the environment-dependent parts, binds, connects the store and wires routes.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = bind(&settings)?;
        let port = listener.local_addr()?.port();
        let (state, demo_backend) = build_state(settings, port).await?;
        let throttle = limits::sign_in_throttle(
            state.settings.server.auth_rate_per_min,
            &state.settings.server.trusted_proxies,
        );
        spawn_sweeper(state.clone(), throttle.clone());
        spawn_discovery(&state);

        let app_state = state.clone();
        let csp = content_security_policy(&state);
        let server = HttpServer::new(move || {
            let s = &app_state.settings;
            let (secure, csp, body_timeout) = (app_state.secure_cookies, csp.clone(), s.server.body_timeout);
            let proxy = ProxyClient::new(
                s.upstream.connect_timeout,
                s.upstream.header_timeout,
                s.upstream.keepalive,
            );
            App::new()
                // One layer for what every request gets (each layer is a boxed future per
                // request): its body's deadline, the response headers and error context, the
                // request counter.
                .wrap(from_fn(move |mut req: ServiceRequest, next: Next<_>| {
                    limits::body_deadline(&mut req, body_timeout);
                    let csp = csp.clone();
                    async move {
                        let res = response_headers(req, next, secure, csp).await?;
                        health::count_request(&res);
                        Ok::<_, actix_web::Error>(res)
                    }
                }))
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(app_state.clone())
                // One client per worker for the upstream and the provider: each awc client
                // loads the system's CA bundle when made (tens of milliseconds of CPU).
                .app_data(web::Data::new(proxy.0.clone()))
                .app_data(web::Data::new(proxy))
                .configure(|cfg| extractor_errors(cfg, s.server.max_form_body))
                .configure(|cfg| routes(cfg, &app_state, &throttle))
        })
        .workers(
            state
                .settings
                .server
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        )
        // Nagle's algorithm off, as nginx does: an event written while the previous one is
        // unacknowledged would otherwise wait for the browser's delayed ACK (up to 40 ms).
        .tcp_nodelay(true)
        .on_connect(crate::client_ip::on_connect)
        // On SIGTERM/SIGINT: stop accepting, let requests and streams finish for the grace period.
        .shutdown_timeout(state.settings.server.shutdown_grace.as_secs())
        .listen(listener)?
        .run();

        Ok(Self {
            port,
            server,
            state,
            demo_backend: demo_backend.map(|b| b.server),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (gracefully or not).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Shared state (tests reach the store and the demo provider through it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Runs until the server is stopped (the demo backend stops with it).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let backend = self.demo_backend.map(|s| {
            let handle = s.handle();
            actix_web::rt::spawn(s);
            handle
        });
        let res = self.server.await;
        if let Some(h) = backend {
            h.stop(true).await;
        }
        res
    }
}

/// An HTTP client for calls to the provider; redirects are never followed.
pub fn http_client(connect: Duration, response: Duration, keepalive: Duration) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().timeout(connect).conn_keep_alive(keepalive))
        .timeout(response)
        .disable_redirects()
        .finish()
}

/// Binds the listener (demo mode only on loopback) with a backlog for bursts.
fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    let addr = settings.server.bind_addr;
    if settings.demo_mode() && !addr.ip().is_loopback() {
        bail!(
            "demo mode refuses to listen on {addr} (not loopback): set OIDC_ISSUER to use a real provider, \
             or BIND_ADDR=127.0.0.1:8080"
        );
    }
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    // std listens with a backlog of 128: a page opening hundreds of streams at once would
    // overflow it and wait out a one-second SYN retransmission. Listening again resizes it.
    socket2::SockRef::from(&listener)
        .listen(LISTEN_BACKLOG)
        .context("cannot set the listen backlog")?;
    Ok(listener)
}

/// The provider and, in demo mode (decided here, once), the built-in provider and backend.
struct Identity {
    oidc: OidcSettings,
    demo: Option<(Arc<demo::DemoIdp>, demo::backend::RunningBackend)>,
}

async fn identity(settings: &Settings, origin: &str) -> anyhow::Result<Identity> {
    if let Some(o) = &settings.oidc {
        return Ok(Identity {
            oidc: o.clone(),
            demo: None,
        });
    }
    let client_secret = SecretString::from(random_token());
    let idp = Arc::new(demo::DemoIdp::new(
        origin,
        client_secret.clone(),
        settings.demo.token_ttl,
    )?);
    // The demo backend is a server of its own, as a real backend is: the proxy reaches it
    // over loopback HTTP, and its paths are its own (`/chatkit`, `/api/tasks`).
    let backend =
        demo::backend::start(idp.clone(), settings.demo.word_delay, &settings.demo.database_url).await?;
    let oidc = OidcSettings {
        issuer: Url::parse(&idp.issuer)?,
        client_id: idp.client_id.clone(),
        client_secret,
        scopes: "openid profile email offline_access".into(),
        prompt: None,
        token_auth_method: TokenAuthMethod::Basic,
    };
    Ok(Identity {
        oidc,
        demo: Some((idp, backend)),
    })
}

/// The route table: `BACKEND_URL`, else the demo backend; start-up warnings logged.
fn route_table(settings: &Settings, demo_backend: Option<&Url>) -> ProxyRoutes {
    let backend = settings
        .upstream
        .backend_url
        .clone()
        .or_else(|| demo_backend.cloned());
    let routes = ProxyRoutes::from_settings(settings, backend);
    for warning in routes.warnings() {
        tracing::warn!("{warning}");
    }
    routes
}

/// Everything the workers share: keys, provider, store, route table, metrics.
async fn build_state(
    settings: Settings,
    port: u16,
) -> anyhow::Result<(web::Data<AppState>, Option<demo::backend::RunningBackend>)> {
    let public_url = match &settings.server.public_url {
        Some(u) => u.clone(),
        None => Url::parse(&format!("http://{}:{port}", settings.server.bind_addr.ip()))?,
    };
    let origin = public_url.origin().ascii_serialization();
    let secure_cookies = public_url.scheme() == "https";
    let secret = match &settings.session.secret {
        Some(s) => s.clone(),
        None => {
            tracing::warn!("demo mode: no SESSION_SECRET set, generated one; sessions end at restart");
            SecretString::from(random_token())
        }
    };
    let keys = Keys::derive(&secret);
    let Identity { oidc, demo } = identity(&settings, &origin).await?;
    let provider = Arc::new(Provider::new(
        oidc,
        format!("{origin}/api/auth/callback"),
        settings.tokens.clock_leeway,
        settings.tokens.jwks_min_refetch,
    ));
    let redis = settings
        .session
        .redis_url
        .as_deref()
        .map(|u| (u, settings.session.redis_prefix.as_str()));
    let store = SessionStore::connect(
        &settings.session.database_url,
        redis,
        keys.clone(),
        settings.session.cache,
    )
    .await?;
    let (session_cookie, login_cookie) = if secure_cookies {
        ("__Host-taskflow_session", "__Host-taskflow_login")
    } else {
        ("taskflow_session", "taskflow_login")
    };
    let (demo_idp, demo_backend) = match demo {
        Some((idp, backend)) => (Some(idp), Some(backend)),
        None => (None, None),
    };
    let routes = route_table(&settings, demo_backend.as_ref().map(|b| &b.url));
    let state = AppState {
        forwarded_host: {
            let host = public_url.host_str().unwrap_or("localhost");
            let host = match public_url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            };
            HeaderValue::from_str(&host).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
        },
        forwarded_proto: HeaderValue::from_static(if public_url.scheme() == "https" {
            "https"
        } else {
            "http"
        }),
        origin,
        public_url,
        secure_cookies,
        session_cookie: session_cookie.into(),
        login_cookie: login_cookie.into(),
        keys,
        store,
        provider,
        demo: demo_idp,
        routes,
        refresh_locks: RefreshLocks::default(),
        code_exchanges: limits::token_endpoint_budget(settings.server.token_rate_per_min),
        metrics: Arc::default(),
        settings,
    };
    Ok((web::Data::new(state), demo_backend))
}

/// The page CSP: the ChatKit script's origin, and the provider's for the sign-out form.
fn content_security_policy(state: &AppState) -> HeaderValue {
    let script_origin = Url::parse(&state.settings.chat.script_url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null");
    let provider_origin = Some(state.provider.settings().issuer.origin().ascii_serialization())
        .filter(|o| o != state.origin() && o != "null");
    dashboard::headers::content_security_policy(script_origin.as_deref(), provider_origin.as_deref())
}

/// A client for calls to the provider outside the workers (discovery at start).
fn provider_client(s: &Settings) -> awc::Client {
    http_client(
        s.upstream.connect_timeout,
        Duration::from_secs(10),
        s.upstream.keepalive,
    )
}

/// Discovery in the background: in demo mode the provider is this very server.
fn spawn_discovery(state: &web::Data<AppState>) {
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let client = provider_client(&state.settings);
        for _ in 0..60 {
            match state.provider.metadata(&client).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "provider not reachable yet; retrying")
                }
            }
            actix_web::rt::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

/// Sweeps expired sessions and spent one-time values, and forgets idle throttle entries.
/// Each replica sweeps; deleting a row twice is harmless.
fn spawn_sweeper(state: web::Data<AppState>, throttle: limits::SignInThrottle) {
    let every = state.settings.session.sweep_interval;
    actix_web::rt::spawn(async move {
        loop {
            match state.store.sweep(crate::clock::now()).await {
                Ok((0, 0)) => {}
                Ok((sessions, once)) => {
                    tracing::info!(sessions, one_time_values = once, "swept expired rows")
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "sweep failed; retrying later"),
            }
            throttle.limiter().retain_recent();
            actix_web::rt::time::sleep(every).await;
        }
    });
}
