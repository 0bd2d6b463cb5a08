//! The route table: where each proxied route goes, and the one way an upstream URL is
//! built from a route and the request's tail. Route names are identifiers looked up in the
//! table, never paths; URLs are built by appending to the route's base, never by URL
//! resolution (which applies `../`), and the result must still lie under the base.

use std::{borrow::Cow, collections::HashMap};

use actix_web::http::{header::HeaderValue, Uri};
use percent_encoding::percent_decode_str;
use url::Url;

pub use crate::config::valid_route_name;
use crate::config::Settings;

/// Whether a route needs a signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAuth {
    /// 401 without a session; the token is forwarded.
    Required,
    /// Forwarded without identity headers or token.
    Anonymous,
}

/// Where a proxied route goes.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Prefix of the route on our side, e.g. `/api/chatkit`.
    pub prefix: String,
    /// Base URL the tail is appended to.
    pub base: Url,
    /// Auth policy.
    pub auth: RouteAuth,
    /// `X-Forwarded-Prefix`: what a backend puts before the path it received to get the
    /// path the browser used (`None` when no such prefix exists for this base).
    pub forwarded_prefix: Option<String>,
    /// The target of an empty tail and query (a ChatKit call's): built once.
    root: Option<Uri>,
    /// `forwarded_prefix` as the header sent (none when empty), built once.
    prefix_header: Option<HeaderValue>,
}

impl Upstream {
    /// A route mounted at `prefix` on our side that forwards to `base`.
    pub fn new(prefix: String, base: Url, auth: RouteAuth) -> Self {
        let forwarded_prefix = forwarded_prefix(&prefix, base.path());
        let prefix_header = forwarded_prefix
            .as_deref()
            .filter(|p| !p.is_empty())
            .and_then(|p| HeaderValue::from_str(p).ok());
        let mut up = Self {
            prefix,
            base,
            auth,
            forwarded_prefix,
            root: None,
            prefix_header,
        };
        up.root = up.build("", "");
        up
    }

    /// The `X-Forwarded-Prefix` to send, if any.
    pub fn forwarded_prefix_header(&self) -> Option<&HeaderValue> {
        self.prefix_header.as_ref()
    }

    /// The upstream URL for `tail` (the raw, still percent-encoded path after the prefix)
    /// and the query string; `None` when the tail could leave the base.
    pub fn target(&self, tail: &str, query: &str) -> Option<Uri> {
        if tail.is_empty() && query.is_empty() {
            return self.root.clone();
        }
        self.build(tail, query)
    }

    fn build(&self, tail: &str, query: &str) -> Option<Uri> {
        if !safe_tail(tail) {
            return None;
        }
        let base = self.base.as_str();
        let mut url = String::with_capacity(base.len() + tail.len() + query.len() + 2);
        url.push_str(base.trim_end_matches('/'));
        if !tail.is_empty() {
            url.push('/');
            url.push_str(tail);
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let built = Url::parse(&url).ok()?;
        // The last word: whatever the checks above missed, the built path stays under the base.
        let base_path = self.base.path().trim_end_matches('/');
        let path = built.path();
        let under = path == base_path
            || path
                .strip_prefix(base_path)
                .is_some_and(|rest| rest.starts_with('/'));
        if !(under && built.origin() == self.base.origin()) {
            return None;
        }
        Uri::try_from(String::from(built)).ok()
    }
}

/// The prefix P with "public path = P + upstream path": our route prefix less the base's
/// path, when the base's path is a suffix of it (`/api/chatkit` → `…/chatkit` gives `/api`).
fn forwarded_prefix(ours: &str, base_path: &str) -> Option<String> {
    let base_path = base_path.trim_end_matches('/');
    // Empty: the backend's paths are ours, no header is needed.
    ours.strip_suffix(base_path).map(str::to_owned)
}

/// Checks the raw tail for anything that could change which path the upstream serves: dot
/// segments in every spelling (`.`, `..`, `%2e`, double-encoded `%252e`), path parameters
/// (`..;/`), backslashes, control bytes, and `/` or `\` encoded inside a segment.
pub fn safe_tail(tail: &str) -> bool {
    tail.split('/').all(safe_segment)
}

fn safe_segment(raw: &str) -> bool {
    let mut current = std::borrow::Cow::Borrowed(raw);
    // Each round undoes one layer of encoding, as some server down the line might.
    for _ in 0..4 {
        let s: &str = &current;
        // Windows drops trailing dots and spaces: `..%20` and `...` are dot segments there.
        if !s.is_empty() && s.trim_end_matches(['.', ' ']).is_empty() {
            return false;
        }
        if s.bytes()
            .any(|b| matches!(b, b'/' | b'\\' | b';') || b < 0x20 || b == 0x7f)
        {
            return false;
        }
        if !s.contains('%') {
            return true;
        }
        // IIS-style `%u002e`: nobody legitimate sends it.
        if s.contains("%u") || s.contains("%U") {
            return false;
        }
        let decoded = percent_decode_str(s).collect::<Vec<u8>>();
        // Invalid UTF-8 (overlong `%c0%ae` is a dot to some decoders) is refused, not mended.
        let Ok(next) = String::from_utf8(decoded) else {
            return false;
        };
        if next == s {
            return true;
        }
        current = std::borrow::Cow::Owned(next);
    }
    // Still encoded after four layers: nobody legitimate nests that deep.
    false
}

/// Where each proxied route goes.
#[derive(Debug, Clone, Default)]
pub struct ProxyRoutes {
    /// `/api/chatkit` → `CHATKIT_URL`.
    pub chatkit: Option<Upstream>,
    /// `/api/remote/{name}` → configured base URLs.
    pub remote: HashMap<String, Upstream>,
    /// Without `REMOTE_ROUTES`: `/api/remote/{name}` → `{BACKEND_URL}/api/{name}`.
    pub backend: Option<Url>,
}

impl ProxyRoutes {
    /// The route table from settings; `backend` is `BACKEND_URL` or the demo backend.
    pub fn from_settings(s: &Settings, backend: Option<Url>) -> Self {
        let chatkit = s
            .upstream
            .chatkit_url
            .clone()
            .or_else(|| backend.as_ref().and_then(|b| append(b, "chatkit")))
            .map(|base| Upstream::new("/api/chatkit".into(), base, RouteAuth::Required));
        let remote: HashMap<String, Upstream> = s
            .upstream
            .remote_routes
            .iter()
            .map(|r| {
                let auth = if r.anonymous {
                    RouteAuth::Anonymous
                } else {
                    RouteAuth::Required
                };
                let up = Upstream::new(format!("/api/remote/{}", r.name), r.url.clone(), auth);
                (r.name.clone(), up)
            })
            .collect();
        let backend = if remote.is_empty() { backend } else { None };
        Self {
            chatkit,
            remote,
            backend,
        }
    }

    /// The upstream of `/api/remote/{name}`: a configured route, else `{BACKEND_URL}/api/{name}`.
    pub fn remote(&self, name: &str) -> Option<Cow<'_, Upstream>> {
        if !valid_route_name(name) {
            return None;
        }
        if let Some(u) = self.remote.get(name) {
            return Some(Cow::Borrowed(u));
        }
        let base = append(self.backend.as_ref()?, &format!("api/{name}"))?;
        Some(Cow::Owned(Upstream::new(
            format!("/api/remote/{name}"),
            base,
            RouteAuth::Required,
        )))
    }

    /// Start-up warnings for routes whose backend cannot learn our public path.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |u: &Upstream| {
            if u.forwarded_prefix.is_none() {
                out.push(format!(
                    "{} forwards to {}: its path is not a suffix of ours, so no X-Forwarded-Prefix \
                     is sent and URLs the backend builds from its own path will not work here",
                    u.prefix, u.base
                ));
            }
        };
        self.chatkit.iter().for_each(&mut check);
        self.remote.values().for_each(&mut check);
        if let Some(b) = &self.backend {
            out.push(format!(
                "/api/remote/{{name}} forwards to {}/api/{{name}}: no X-Forwarded-Prefix is sent",
                b.as_str().trim_end_matches('/')
            ));
        }
        out
    }
}

/// `base` with `path` appended as plain text (the path is ours, never the request's).
fn append(base: &Url, path: &str) -> Option<Url> {
    Url::parse(&format!("{}/{path}", base.as_str().trim_end_matches('/'))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(base: &str) -> Upstream {
        Upstream::new(
            "/api/remote/tasks".into(),
            Url::parse(base).expect("url"),
            RouteAuth::Required,
        )
    }

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for bad in [
            "..",
            ".",
            "a/../b",
            "a/./b",
            "%2e%2e",
            "%2E%2E/x",
            "%2e",
            ".%2e",
            "%252e%252e",
            "%25252e%25252e/x",
            "..;/x",
            "a;jsessionid=1",
            "%3b",
            "a%00b",
            "a%09b",
            "a\\..\\b",
            "%5c..",
            "a%2F..",
            "a%2fb",
            "x/%5c..",
            "%u002e%u002e",
            "%c0%ae%c0%ae",
            "..%20",
            "...",
        ] {
            assert!(!safe_tail(bad), "{bad}");
        }
        for ok in [
            "",
            "attachments/att_1/upload",
            "a..b",
            "files/%20x",
            "100%25",
            "a%2Eb",
            "caf%C3%A9",
        ] {
            assert!(safe_tail(ok), "{ok}");
        }
    }

    #[test]
    fn targets_append_to_the_base_and_keep_tail_and_query() {
        let chatkit = up("http://up:8000/chatkit");
        assert_eq!(
            chatkit.target("", "").expect("ok").to_string(),
            "http://up:8000/chatkit"
        );
        assert_eq!(
            chatkit.target("upload/x", "a=1&b=2").expect("ok").to_string(),
            "http://up:8000/chatkit/upload/x?a=1&b=2"
        );
        let root = up("http://up:8000/");
        assert_eq!(root.target("x", "").expect("ok").to_string(), "http://up:8000/x");
        assert!(chatkit.target("%2e%2e/admin", "").is_none());
        assert!(chatkit.target("..%2Fadmin", "").is_none());
    }

    #[test]
    fn route_names_are_identifiers() {
        for ok in ["tasks", "a-b_c", "v2"] {
            assert!(valid_route_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "..%2F..%2Fidp",
            "Tasks",
            "a.b",
            "%2e%2e",
            &"a".repeat(65),
        ] {
            assert!(!valid_route_name(bad), "{bad}");
        }
        let routes = ProxyRoutes {
            backend: Some(Url::parse("http://b:1/").expect("url")),
            ..Default::default()
        };
        assert!(routes.remote("../../internal").is_none());
        assert_eq!(
            routes.remote("tasks").expect("default route").base.as_str(),
            "http://b:1/api/tasks"
        );
    }

    #[test]
    fn forwarded_prefix_makes_public_path_prefix_plus_upstream_path() {
        assert_eq!(
            forwarded_prefix("/api/chatkit", "/chatkit").as_deref(),
            Some("/api")
        );
        assert_eq!(
            forwarded_prefix("/api/chatkit", "/").as_deref(),
            Some("/api/chatkit")
        );
        assert_eq!(
            forwarded_prefix("/api/chatkit", "/api/chatkit").as_deref(),
            Some("")
        );
        assert_eq!(forwarded_prefix("/api/remote/tasks", "/api/tasks"), None);
        assert_eq!(forwarded_prefix("/api/chatkit", "/v1/chat"), None);
    }
}
