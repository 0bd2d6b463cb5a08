//! What every page shares: the demo banner and, for a signed-in user, the nav (current
//! item marked), the sign-out form and the assistant panel with the page's context; and
//! the extractor that gives a page handler the signed-in user or sends them to sign in.

use actix_session::Session;
use actix_web::{dev::Payload, http::Method, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::{backend::Backend, forms::form_token};
use crate::{
    auth::{
        extractor::{CurrentSession, MaybeSession},
        return_to::validate_return_to,
    },
    error::PageError,
    proxy::forward::ProxyClient,
    state::AppState,
};

/// The frame of every page.
pub struct Shell<'a> {
    /// Demo mode: the banner shows.
    pub demo: bool,
    /// The signed-in user's part, absent on public pages.
    pub user: Option<UserShell<'a>>,
}

/// The signed-in frame: nav, sign-out and the assistant panel.
pub struct UserShell<'a> {
    /// Shown in the nav.
    pub name: &'a str,
    /// Keys the chat's stored state per user.
    pub sub: &'a str,
    /// The sign-out form's token.
    pub form_token: &'a str,
    /// The nav item marked current (`dashboard`, `tasks`, `projects`, `chat`, `sessions`).
    pub current: &'static str,
    /// Whether the assistant panel is on the page (not on the chat page, which is one).
    pub assistant: bool,
    /// Sent as `X-Project-ID` by the assistant on a project's page.
    pub project_id: Option<i64>,
    /// The ChatKit web component's `domainKey`.
    pub domain_key: &'a str,
    /// The ChatKit web component's script.
    pub script_url: &'a str,
}

impl Shell<'_> {
    /// The frame of a public page.
    pub fn public(demo: bool) -> Shell<'static> {
        Shell { demo, user: None }
    }
}

/// A signed-in page request. Without a session the handler never runs: the browser is
/// sent to sign in and brought back (GET: to this page; a form post: to the page it came
/// from, when that is on this site).
pub struct SignedIn {
    /// The session.
    pub session: CurrentSession,
    /// The session's form token (created on first use).
    pub form_token: String,
    /// The session layer's handle (form checks read it).
    pub cookie: Session,
    /// App state.
    pub state: web::Data<AppState>,
    /// The proxy's client, for the backend.
    pub client: web::Data<ProxyClient>,
}

impl SignedIn {
    /// The frame with `current` marked in the nav and the assistant panel.
    pub fn shell(&self, current: &'static str) -> Shell<'_> {
        let r = &self.session.record;
        Shell {
            demo: self.state.demo_banner(),
            user: Some(UserShell {
                name: r.display_name(),
                sub: &r.sub,
                form_token: &self.form_token,
                current,
                assistant: current != "chat",
                project_id: None,
                domain_key: &self.state.settings.chat.domain_key,
                script_url: &self.state.settings.chat.script_url,
            }),
        }
    }

    /// [`SignedIn::shell`] on a project's page: the assistant sends its id.
    pub fn project_shell(&self, project: i64) -> Shell<'_> {
        let mut shell = self.shell("projects");
        if let Some(u) = shell.user.as_mut() {
            u.project_id = Some(project);
        }
        shell
    }

    /// The backend, acting for this user.
    pub fn backend<'a>(&'a self, req: &'a HttpRequest) -> Backend<'a> {
        Backend {
            req,
            state: &self.state,
            client: &self.client,
            session: &self.session,
        }
    }

    /// Refuses a form post that is cross-site or lacks the session's form token.
    pub fn check_form(&self, req: &HttpRequest, submitted: &str) -> Result<(), PageError> {
        super::forms::check(req, self.state.origin(), &self.cookie, submitted)
    }
}

/// Where sign-in brings the user back to: this page for a GET; for a form post, the page
/// the form was on.
fn come_back_to(req: &HttpRequest, origin: &str) -> String {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return super::views::here(req).to_owned();
    }
    req.headers()
        .get("referer")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix(origin))
        .and_then(validate_return_to)
        .unwrap_or("/dashboard")
        .to_owned()
}

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let maybe = MaybeSession::from_request(req, payload);
        let cookie = Session::from_request(req, payload).into_inner();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let client = req.app_data::<web::Data<ProxyClient>>().cloned();
        let back = state.as_ref().map(|s| come_back_to(req, s.origin()));
        Box::pin(async move {
            let (Some(state), Some(client), Some(back)) = (state, client, back) else {
                return Err(PageError::Unexpected(anyhow::anyhow!("app state missing")).into());
            };
            let cookie = cookie?;
            let Some(session) = maybe.await?.0 else {
                return Err(PageError::SignIn(back).into());
            };
            let form_token = form_token(&cookie)?;
            Ok(SignedIn {
                session,
                form_token,
                cookie,
                state,
                client,
            })
        })
    }
}
