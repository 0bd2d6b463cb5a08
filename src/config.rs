//! Typed settings read from the environment, validated once at start.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A configuration problem, printed as one line naming the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {var}: {expected}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What was expected instead.
    pub expected: String,
}

impl ConfigError {
    fn new(var: &'static str, expected: impl Into<String>) -> Self {
        Self {
            var,
            expected: expected.into(),
        }
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuthMethod {
    /// HTTP Basic with client id and secret (`client_secret_basic`).
    Basic,
    /// Client id and secret in the form body (`client_secret_post`).
    Post,
}

/// Which of the session's tokens is sent upstream as the Bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardToken {
    /// The OIDC id_token (what the Next.js route forwarded).
    IdToken,
    /// The OAuth access token.
    AccessToken,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The OpenID provider this relying party signs users in with.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Issuer identifier; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: Url,
    /// Registered client id.
    pub client_id: String,
    /// Registered client secret.
    pub client_secret: SecretString,
    /// Space-separated scopes requested at login.
    pub scopes: String,
    /// Optional `prompt` sent on the authorization request.
    pub prompt: Option<String>,
    /// Client authentication method at the token endpoint.
    pub token_auth_method: TokenAuthMethod,
}

/// One entry of `REMOTE_ROUTES`: `/api/remote/{name}/…` → `{url}/…`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteRoute {
    /// Route name, one path segment.
    pub name: String,
    /// Upstream base URL.
    pub url: Url,
    /// Forward without a session (no token, no identity headers).
    #[serde(default)]
    pub anonymous: bool,
}

/// Every setting of the service, by section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How the server listens, whom it believes, and what one client may make it do.
    pub server: ServerSettings,
    /// The provider; `None` means demo mode (built-in provider).
    pub oidc: Option<OidcSettings>,
    /// Where sessions live and how long they last.
    pub session: SessionSettings,
    /// Which token goes upstream, when it is refreshed, how tokens are validated and retired.
    pub tokens: TokenSettings,
    /// Where proxied routes go, and the proxy's timeouts and limits.
    pub upstream: UpstreamSettings,
    /// The ChatKit web component on the chat page.
    pub chat: ChatSettings,
    /// The built-in provider and backend of demo mode.
    pub demo: DemoSettings,
}

/// How the server listens, whom it believes, and what one client may make it do.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address the HTTP server binds.
    pub bind_addr: SocketAddr,
    /// Public origin of the BFF as browsers see it; `None` derives it from the bound address.
    pub public_url: Option<Url>,
    /// Log format.
    pub log_format: LogFormat,
    /// Load balancers in front of us (`TRUSTED_PROXIES`): only their `X-Forwarded-For` counts.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a stopping server lets open requests and streams finish.
    pub shutdown_grace: Duration,
    /// HTTP worker threads; `None` uses one per core.
    pub workers: Option<usize>,
    /// Sign-in requests (login and callback) allowed per client address and minute.
    pub auth_rate_per_min: u32,
    /// Code exchanges at the provider's token endpoint allowed per minute, all clients together.
    pub token_rate_per_min: u32,
    /// Time allowed for a body the BFF reads itself (forms, JSON) to arrive in full.
    pub body_timeout: Duration,
    /// Largest form or JSON body the BFF reads itself.
    pub max_form_body: usize,
}

/// Where sessions live and how long they last.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Master secret for the session cookie, the login cookie and tokens at rest.
    pub secret: Option<SecretString>,
    /// sqlx connection URL of the session database (`sqlite:` or `postgres:`).
    pub database_url: String,
    /// Redis URL when sessions live in Redis (`SESSION_STORE=redis`).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// How long a loaded session may be reused from memory (0 = every request asks the store).
    pub cache: Duration,
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// How often expired sessions and spent one-time values are swept from SQL.
    pub sweep_interval: Duration,
}

/// Which token goes upstream, when it is refreshed, how tokens are validated and retired.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Token sent upstream as the Bearer token.
    pub forward_token: ForwardToken,
    /// Tokens expiring within this window are refreshed before use.
    pub refresh_skew: Duration,
    /// Minimum time between JWKS refetches caused by an unknown `kid`.
    pub jwks_min_refetch: Duration,
    /// Leeway for `exp`/`iat` checks.
    pub clock_leeway: Duration,
    /// Name of the Next.js route's id_token cookie to accept during a migration (`LEGACY_COOKIE`).
    pub legacy_cookie: Option<String>,
    /// Send the id_token as `id_token_hint` at sign-out (in a POST form), see `auth::signout`.
    pub logout_id_token_hint: bool,
}

/// Where proxied routes go, and the proxy's timeouts and limits.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Base URL of the backend the remote-API routes forward to.
    pub backend_url: Option<Url>,
    /// ChatKit endpoint; defaults to `{BACKEND_URL}/chatkit`.
    pub chatkit_url: Option<Url>,
    /// Time allowed to connect to an upstream.
    pub connect_timeout: Duration,
    /// Time allowed for an upstream's response headers.
    pub header_timeout: Duration,
    /// Longest silence allowed between two chunks of an upstream body.
    pub idle_timeout: Duration,
    /// How long an idle outbound connection may be reused; below the servers' own idle limit.
    pub keepalive: Duration,
    /// Interval of `: keep-alive` comments on quiet SSE streams; `None` disables them.
    pub sse_heartbeat: Option<Duration>,
    /// How often an open event stream checks that its session still exists (`None`: never).
    pub stream_revalidate: Option<Duration>,
    /// Largest JSON request body accepted by the proxy.
    pub max_json_body: usize,
    /// Largest upload (multipart) request body accepted by the proxy.
    pub max_upload_body: usize,
    /// The remote-API route table (`REMOTE_ROUTES`, JSON).
    pub remote_routes: Vec<RemoteRoute>,
}

/// The ChatKit web component on the chat page.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// `domainKey` handed to the ChatKit web component.
    pub domain_key: String,
    /// Script URL of the ChatKit web component.
    pub script_url: String,
}

/// The built-in provider and backend of demo mode.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// Lifetime of tokens issued by the demo provider.
    pub token_ttl: Duration,
    /// Pause between two streamed words of the demo backend.
    pub word_delay: Duration,
    /// The demo backend's SQLite database (`DEMO_DATABASE_URL`; by default beside the
    /// session database when that is SQLite, else `data/demo-backend.db`).
    pub database_url: String,
}

/// `sqlite://dir/x.db` → `sqlite://dir/demo-backend.db`; other stores → `data/`.
fn demo_database_beside(database_url: &str) -> String {
    let file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| *path != ":memory:");
    match file.and_then(|f| std::path::Path::new(f).parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => format!("sqlite://{}/demo-backend.db", dir.display()),
        _ => "sqlite://data/demo-backend.db".into(),
    }
}

impl Settings {
    /// Reads settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables (the process environment or a test's).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

        let bind_addr = match get("BIND_ADDR") {
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::new("BIND_ADDR", "a socket address like 127.0.0.1:8080"))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let public_url = get("PUBLIC_URL")
            .map(|v| parse_http_url("PUBLIC_URL", v))
            .transpose()?;
        if let Some(u) = &public_url {
            if u.path() != "/" || u.query().is_some() {
                return Err(ConfigError::new(
                    "PUBLIC_URL",
                    "an origin without path or query, like https://app.example.com",
                ));
            }
        }

        let oidc = match get("OIDC_ISSUER") {
            None => None,
            Some(v) => {
                let issuer = parse_http_url("OIDC_ISSUER", v)?;
                let public_https = public_url.as_ref().is_some_and(|u| u.scheme() == "https");
                if public_https && issuer.scheme() != "https" {
                    return Err(ConfigError::new(
                        "OIDC_ISSUER",
                        "an https URL when PUBLIC_URL is https",
                    ));
                }
                let client_id = get("OIDC_CLIENT_ID")
                    .ok_or_else(|| ConfigError::new("OIDC_CLIENT_ID", "required when OIDC_ISSUER is set"))?
                    .to_owned();
                let client_secret = get("OIDC_CLIENT_SECRET")
                    .ok_or_else(|| {
                        ConfigError::new("OIDC_CLIENT_SECRET", "required when OIDC_ISSUER is set")
                    })?
                    .into();
                let scopes = get("OIDC_SCOPES")
                    .unwrap_or("openid profile email offline_access")
                    .to_owned();
                if !scopes.split_whitespace().any(|s| s == "openid") {
                    return Err(ConfigError::new(
                        "OIDC_SCOPES",
                        "a scope list that includes openid",
                    ));
                }
                let token_auth_method = match get("OIDC_TOKEN_AUTH_METHOD") {
                    None | Some("client_secret_basic") => TokenAuthMethod::Basic,
                    Some("client_secret_post") => TokenAuthMethod::Post,
                    Some(_) => {
                        return Err(ConfigError::new(
                            "OIDC_TOKEN_AUTH_METHOD",
                            "client_secret_basic or client_secret_post",
                        ))
                    }
                };
                Some(OidcSettings {
                    issuer,
                    client_id,
                    client_secret,
                    scopes,
                    prompt: get("OIDC_PROMPT").map(str::to_owned),
                    token_auth_method,
                })
            }
        };

        let session_secret: Option<SecretString> = get("SESSION_SECRET").map(Into::into);
        match &session_secret {
            Some(s) if s.expose_secret().len() < 32 => {
                return Err(ConfigError::new(
                    "SESSION_SECRET",
                    "at least 32 characters (try: openssl rand -base64 48)",
                ))
            }
            None if oidc.is_some() => {
                return Err(ConfigError::new(
                    "SESSION_SECRET",
                    "required outside demo mode, at least 32 characters",
                ))
            }
            _ => {}
        }

        let database_url = get("DATABASE_URL")
            .unwrap_or("sqlite://data/taskflow-bff.db")
            .to_owned();
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(ConfigError::new("DATABASE_URL", "a sqlite: or postgres:// URL"));
        }
        let demo_database_url = match get("DEMO_DATABASE_URL") {
            Some(u) if u.starts_with("sqlite:") => u.to_owned(),
            Some(_) => return Err(ConfigError::new("DEMO_DATABASE_URL", "a sqlite: URL")),
            None => demo_database_beside(&database_url),
        };
        let redis_url = match get("SESSION_STORE") {
            None | Some("database") => None,
            Some("redis") => Some(
                get("REDIS_URL")
                    .filter(|u| u.starts_with("redis://") || u.starts_with("rediss://"))
                    .ok_or_else(|| ConfigError::new("REDIS_URL", "a redis:// URL when SESSION_STORE=redis"))?
                    .to_owned(),
            ),
            Some(_) => return Err(ConfigError::new("SESSION_STORE", "database or redis")),
        };

        let forward_token = match get("FORWARD_TOKEN") {
            None | Some("id_token") => ForwardToken::IdToken,
            Some("access_token") => ForwardToken::AccessToken,
            Some(_) => return Err(ConfigError::new("FORWARD_TOKEN", "id_token or access_token")),
        };
        let log_format = match get("LOG_FORMAT") {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(ConfigError::new("LOG_FORMAT", "pretty or json")),
        };

        let backend_url = get("BACKEND_URL")
            .map(|v| parse_http_url("BACKEND_URL", v))
            .transpose()?;
        let chatkit_url = get("CHATKIT_URL")
            .map(|v| parse_http_url("CHATKIT_URL", v))
            .transpose()?;

        let session_idle = secs(&get, "SESSION_IDLE_SECS", 8 * 3600)?;
        let session_absolute = secs(&get, "SESSION_ABSOLUTE_SECS", 7 * 24 * 3600)?;
        if session_idle > session_absolute {
            return Err(ConfigError::new(
                "SESSION_IDLE_SECS",
                "no more than SESSION_ABSOLUTE_SECS",
            ));
        }
        let heartbeat = secs(&get, "SSE_HEARTBEAT_SECS", 0)?;

        Ok(Self {
            server: ServerSettings {
                bind_addr,
                public_url,
                log_format,
                trusted_proxies: match get("TRUSTED_PROXIES") {
                    None => Vec::new(),
                    Some(v) => v
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            p.parse::<ipnet::IpNet>()
                                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        })
                        .collect::<Result<_, _>>()
                        .map_err(|_| {
                            ConfigError::new("TRUSTED_PROXIES", "comma-separated addresses or CIDR ranges")
                        })?,
                },
                shutdown_grace: secs(&get, "SHUTDOWN_GRACE_SECS", 30)?,
                auth_rate_per_min: positive(&get, "AUTH_RATE_PER_MIN", 30)?,
                token_rate_per_min: positive(&get, "TOKEN_ENDPOINT_RATE_PER_MIN", 120)?,
                body_timeout: {
                    let d = secs(&get, "BODY_TIMEOUT_SECS", 10)?;
                    if d.is_zero() {
                        return Err(ConfigError::new(
                            "BODY_TIMEOUT_SECS",
                            "a positive number of seconds",
                        ));
                    }
                    d
                },
                max_form_body: bytes(&get, "MAX_FORM_BODY_BYTES", 64 << 10)?,
                workers: match get("WORKERS") {
                    None => None,
                    Some(v) => Some(
                        v.parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| ConfigError::new("WORKERS", "a positive number of threads"))?,
                    ),
                },
            },
            oidc,
            session: SessionSettings {
                secret: session_secret,
                database_url,
                redis_url,
                redis_prefix: get("REDIS_PREFIX").unwrap_or("taskflow-bff:").to_owned(),
                cache: millis(&get, "SESSION_CACHE_MS", 2000)?,
                idle: session_idle,
                absolute: session_absolute,
                sweep_interval: {
                    let d = secs(&get, "SWEEP_INTERVAL_SECS", 60)?;
                    if d.is_zero() {
                        return Err(ConfigError::new(
                            "SWEEP_INTERVAL_SECS",
                            "a positive number of seconds",
                        ));
                    }
                    d
                },
            },
            tokens: TokenSettings {
                forward_token,
                refresh_skew: secs(&get, "REFRESH_SKEW_SECS", 60)?,
                jwks_min_refetch: secs(&get, "JWKS_MIN_REFETCH_SECS", 10)?,
                clock_leeway: secs(&get, "CLOCK_LEEWAY_SECS", 60)?,
                legacy_cookie: get("LEGACY_COOKIE").map(str::to_owned),
                logout_id_token_hint: flag(&get, "LOGOUT_ID_TOKEN_HINT", false)?,
            },
            upstream: UpstreamSettings {
                backend_url,
                chatkit_url,
                connect_timeout: secs(&get, "UPSTREAM_CONNECT_TIMEOUT_SECS", 5)?,
                header_timeout: secs(&get, "UPSTREAM_HEADER_TIMEOUT_SECS", 30)?,
                idle_timeout: secs(&get, "UPSTREAM_IDLE_TIMEOUT_SECS", 300)?,
                // Under the 5 s that uvicorn, Node and actix servers keep idle connections: a
                // connection the server is closing at that moment would fail the request.
                keepalive: secs(&get, "UPSTREAM_KEEPALIVE_SECS", 4)?,
                sse_heartbeat: (!heartbeat.is_zero()).then_some(heartbeat),
                stream_revalidate: {
                    let d = secs(&get, "STREAM_REVALIDATE_SECS", 15)?;
                    (!d.is_zero()).then_some(d)
                },
                max_json_body: bytes(&get, "MAX_JSON_BODY_BYTES", 1 << 20)?,
                max_upload_body: bytes(&get, "MAX_UPLOAD_BODY_BYTES", 100 << 20)?,
                remote_routes: match get("REMOTE_ROUTES") {
                    None => Vec::new(),
                    Some(v) => {
                        let routes: Vec<RemoteRoute> = serde_json::from_str(v).map_err(|_| {
                            ConfigError::new(
                                "REMOTE_ROUTES",
                                r#"a JSON list like [{"name":"tasks","url":"http://backend/api/tasks"}]"#,
                            )
                        })?;
                        for r in &routes {
                            let name_ok = valid_route_name(&r.name);
                            if !name_ok || !matches!(r.url.scheme(), "http" | "https") {
                                return Err(ConfigError::new(
                                    "REMOTE_ROUTES",
                                    "route names of a-z, 0-9, - and _, and http(s) URLs",
                                ));
                            }
                        }
                        routes
                    }
                },
            },
            chat: ChatSettings {
                domain_key: get("CHATKIT_DOMAIN_KEY")
                    .unwrap_or("domain_pk_localhost")
                    .to_owned(),
                script_url: get("CHATKIT_SCRIPT_URL")
                    .unwrap_or("https://cdn.platform.openai.com/deployments/chatkit/chatkit.js")
                    .to_owned(),
            },
            demo: DemoSettings {
                token_ttl: secs(&get, "DEMO_TOKEN_TTL_SECS", 300)?,
                word_delay: millis(&get, "DEMO_WORD_DELAY_MS", 120)?,
                database_url: demo_database_url,
            },
        })
    }

    /// Demo mode: no provider configured, the built-in one is used.
    pub fn demo_mode(&self) -> bool {
        self.oidc.is_none()
    }
}

/// Route names are identifiers (`[a-z0-9_-]+`, at most 64 bytes), never paths.
pub fn valid_route_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_http_url(var: &'static str, v: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(v).map_err(|_| ConfigError::new(var, "an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(var, "an absolute http(s) URL"));
    }
    Ok(url)
}

fn secs<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match get(var) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ConfigError::new(var, "a whole number of seconds")),
    }
}

fn millis<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match get(var) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ConfigError::new(var, "a whole number of milliseconds")),
    }
}

fn flag<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(var).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(_) => Err(ConfigError::new(var, "true or false")),
    }
}

fn positive<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::new(var, "a positive whole number")),
    }
}

fn bytes<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &'static str,
    default: usize,
) -> Result<usize, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ConfigError::new(var, "a whole number of bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_map(&map)
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

    #[test]
    fn empty_environment_is_demo_mode() {
        let s = parse(&[]).expect("defaults are valid");
        assert!(s.demo_mode());
        assert_eq!(s.server.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.tokens.forward_token, ForwardToken::IdToken);
    }

    #[test]
    fn missing_client_id_names_the_variable() {
        let err = parse(&[
            ("OIDC_ISSUER", "https://id.example.com"),
            ("SESSION_SECRET", SECRET),
        ])
        .unwrap_err();
        assert_eq!(err.var, "OIDC_CLIENT_ID");
        assert_eq!(
            err.to_string(),
            "configuration error: OIDC_CLIENT_ID: required when OIDC_ISSUER is set"
        );
    }

    #[test]
    fn malformed_issuer_is_rejected() {
        for bad in ["not a url", "ftp://id.example.com", "id.example.com"] {
            let err = parse(&[("OIDC_ISSUER", bad)]).unwrap_err();
            assert_eq!(err.var, "OIDC_ISSUER", "{bad}");
        }
    }

    #[test]
    fn http_issuer_with_https_public_url_is_rejected() {
        let err = parse(&[
            ("PUBLIC_URL", "https://app.example.com"),
            ("OIDC_ISSUER", "http://id.example.com"),
            ("OIDC_CLIENT_ID", "c"),
            ("OIDC_CLIENT_SECRET", "s"),
            ("SESSION_SECRET", SECRET),
        ])
        .unwrap_err();
        assert_eq!(err.var, "OIDC_ISSUER");
    }

    #[test]
    fn short_session_secret_is_rejected() {
        let err = parse(&[("SESSION_SECRET", "short")]).unwrap_err();
        assert_eq!(err.var, "SESSION_SECRET");
        assert!(err.to_string().contains("at least 32"));
    }

    #[test]
    fn session_secret_is_required_outside_demo_mode() {
        let err = parse(&[
            ("OIDC_ISSUER", "https://id.example.com/api/auth"),
            ("OIDC_CLIENT_ID", "c"),
            ("OIDC_CLIENT_SECRET", "s"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "SESSION_SECRET");
    }

    #[test]
    fn issuer_path_is_kept_and_secrets_are_redacted() {
        let s = parse(&[
            ("OIDC_ISSUER", "https://id.example.com/api/auth"),
            ("OIDC_CLIENT_ID", "c"),
            ("OIDC_CLIENT_SECRET", "very-secret-value"),
            ("SESSION_SECRET", SECRET),
            ("OIDC_TOKEN_AUTH_METHOD", "client_secret_post"),
        ])
        .expect("valid");
        let oidc = s.oidc.as_ref().expect("provider configured");
        assert_eq!(oidc.issuer.as_str(), "https://id.example.com/api/auth");
        assert_eq!(oidc.token_auth_method, TokenAuthMethod::Post);
        let debug = format!("{s:?}");
        assert!(!debug.contains("very-secret-value"));
        assert!(!debug.contains(SECRET));
    }

    #[test]
    fn remote_routes_are_parsed_and_checked() {
        let s = parse(&[(
            "REMOTE_ROUTES",
            r#"[{"name":"tasks","url":"http://127.0.0.1:8000/api/tasks"},{"name":"status","url":"http://127.0.0.1:8000/s","anonymous":true}]"#,
        )])
        .expect("valid");
        assert_eq!(s.upstream.remote_routes.len(), 2);
        assert!(s.upstream.remote_routes[1].anonymous);
        for bad in [
            r#"{"name":"x"}"#,
            r#"[{"name":"../x","url":"http://a"}]"#,
            r#"[{"name":"x","url":"file:///etc"}]"#,
        ] {
            assert_eq!(
                parse(&[("REMOTE_ROUTES", bad)]).unwrap_err().var,
                "REMOTE_ROUTES",
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_enums_and_numbers_are_rejected() {
        assert_eq!(
            parse(&[("FORWARD_TOKEN", "cookie")]).unwrap_err().var,
            "FORWARD_TOKEN"
        );
        assert_eq!(parse(&[("LOG_FORMAT", "xml")]).unwrap_err().var, "LOG_FORMAT");
        assert_eq!(parse(&[("BIND_ADDR", "localhost")]).unwrap_err().var, "BIND_ADDR");
        assert_eq!(
            parse(&[("SESSION_IDLE_SECS", "ten")]).unwrap_err().var,
            "SESSION_IDLE_SECS"
        );
        assert_eq!(
            parse(&[("PUBLIC_URL", "https://app.example.com/sub")])
                .unwrap_err()
                .var,
            "PUBLIC_URL"
        );
        assert_eq!(
            parse(&[("TRUSTED_PROXIES", "10.0.0.0/8, lb.internal")])
                .unwrap_err()
                .var,
            "TRUSTED_PROXIES"
        );
        assert_eq!(
            parse(&[("UPSTREAM_KEEPALIVE_SECS", "4.5")]).unwrap_err().var,
            "UPSTREAM_KEEPALIVE_SECS"
        );
        assert_eq!(
            parse(&[("SESSION_CACHE_MS", "abc")]).unwrap_err().to_string(),
            "configuration error: SESSION_CACHE_MS: a whole number of milliseconds"
        );
    }

    #[test]
    fn hardening_settings_have_safe_defaults_and_are_checked() {
        let s = parse(&[]).expect("defaults");
        assert!(
            !s.tokens.logout_id_token_hint,
            "the token stays off the browser by default"
        );
        assert_eq!(s.server.auth_rate_per_min, 30);
        assert_eq!(s.server.body_timeout, Duration::from_secs(10));
        assert!(
            parse(&[("LOGOUT_ID_TOKEN_HINT", "true")])
                .expect("valid")
                .tokens
                .logout_id_token_hint
        );
        for (var, bad) in [
            ("LOGOUT_ID_TOKEN_HINT", "maybe"),
            ("AUTH_RATE_PER_MIN", "0"),
            ("TOKEN_ENDPOINT_RATE_PER_MIN", "-1"),
            ("BODY_TIMEOUT_SECS", "0"),
            ("SWEEP_INTERVAL_SECS", "x"),
        ] {
            assert_eq!(parse(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let s = parse(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1,::1")]).expect("valid");
        let shown: Vec<String> = s.server.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]);
        assert!(parse(&[]).expect("defaults").server.trusted_proxies.is_empty());
    }
}
