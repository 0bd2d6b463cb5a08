//! The state shared by every worker: settings, store, keys and the provider.

use std::sync::Arc;

use url::Url;

use crate::{
    auth::{provider::Provider, refresh_locks::RefreshLocks},
    config::Settings,
    demo::DemoIdp,
    proxy::routes::ProxyRoutes,
    session::{crypto::Keys, SessionStore},
};

/// Everything a handler needs besides its per-worker HTTP client.
pub struct AppState {
    /// The validated settings.
    pub settings: Settings,
    /// Public origin of this BFF.
    pub public_url: Url,
    /// `public_url` as an origin string (`https://app.example.com`), computed once.
    pub origin: String,
    /// Host and port as browsers see them, the `X-Forwarded-Host` sent upstream, made once.
    pub forwarded_host: actix_web::http::header::HeaderValue,
    /// `http` or `https` as browsers see us, the `X-Forwarded-Proto` sent upstream.
    pub forwarded_proto: actix_web::http::header::HeaderValue,
    /// Whether cookies get `Secure` and the `__Host-` prefix (https public URL).
    pub secure_cookies: bool,
    /// Name of the session cookie.
    pub session_cookie: String,
    /// Name of the login-transaction cookie.
    pub login_cookie: String,
    /// Derived keys.
    pub keys: Keys,
    /// The session store.
    pub store: SessionStore,
    /// The OpenID provider.
    pub provider: Arc<Provider>,
    /// The built-in provider in demo mode.
    pub demo: Option<Arc<DemoIdp>>,
    /// Where the proxied routes go.
    pub routes: ProxyRoutes,
    /// One refresh per session at a time.
    pub refresh_locks: RefreshLocks,
    /// Code exchanges at the provider's token endpoint still allowed this minute.
    pub code_exchanges: governor::DefaultDirectRateLimiter,
    /// This app's counters.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// The public origin without trailing slash, e.g. `https://app.example.com`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether pages show the demo-mode banner.
    pub fn demo_banner(&self) -> bool {
        self.demo.is_some()
    }

    /// The browser's address, as `TRUSTED_PROXIES` allows it to be known.
    pub fn client_ip(&self, req: &actix_web::HttpRequest) -> Option<String> {
        crate::client_ip::client_ip(req, &self.settings.server.trusted_proxies).map(|ip| ip.to_string())
    }

    /// [`AppState::client_ip`] as a header value (made once per connection when it can be).
    pub fn client_ip_header(
        &self,
        req: &actix_web::HttpRequest,
    ) -> Option<actix_web::http::header::HeaderValue> {
        crate::client_ip::client_ip_header(req, &self.settings.server.trusted_proxies)
    }
}
