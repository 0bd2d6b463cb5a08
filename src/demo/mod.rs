//! Demo mode: a built-in OpenID provider (and, with the proxy, an echo upstream) served
//! by the same binary on loopback, reached over real HTTP through the production code.

pub mod backend;
pub mod idp;
pub mod keys;
pub mod task_input;
pub mod tasks;
pub mod tasks_api;

use std::{collections::HashMap, sync::Mutex, time::Duration};

use secrecy::SecretString;

use keys::SigningKey;

/// The demo users offered on the authorize page: (sub, name, email).
pub const USERS: &[(&str, &str, &str)] = &[
    ("usr_7Hq2LmX9aP", "Alice Example", "alice@example.com"),
    ("usr_4Kd8NwR3bZ", "Bob Example", "bob@example.com"),
];

/// A way the demo provider can be told to misbehave, so tests can check the relying party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed by a key that is not in the JWKS, under the current kid.
    WrongSignature,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the RSA public key as the HMAC secret.
    Hs256WithPublicKey,
    /// `iss` of another provider.
    WrongIssuer,
    /// `aud` of another client.
    WrongAudience,
    /// Expired an hour ago.
    Expired,
    /// A nonce other than the one requested.
    WrongNonce,
    /// Signed by a key whose kid is in no JWKS.
    UnknownKid,
}

struct CodeGrant {
    user: usize,
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
    offline: bool,
    expires_at: i64,
}

struct RefreshGrant {
    user: usize,
    family: String,
    sid: String,
}

#[derive(Default)]
struct Inner {
    keys: Vec<SigningKey>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    rotated: HashMap<String, String>,
    access: HashMap<String, (usize, i64)>,
    forgery: Option<Forgery>,
    refresh_count: u64,
    jwks_requests: u64,
    fail_refresh: bool,
}

/// The built-in provider's state.
pub struct DemoIdp {
    /// Issuer identifier, `{public}/demo/idp`.
    pub issuer: String,
    /// The one registered client.
    pub client_id: String,
    client_secret: SecretString,
    redirect_uri: String,
    post_logout_redirect_uri: String,
    backchannel_logout_uri: String,
    token_ttl: Duration,
    inner: Mutex<Inner>,
}

impl DemoIdp {
    /// A provider at `{origin}/demo/idp` with one client whose callback is on `origin`.
    pub fn new(origin: &str, client_secret: SecretString, token_ttl: Duration) -> anyhow::Result<Self> {
        let inner = Inner {
            keys: vec![SigningKey::generate()?],
            ..Inner::default()
        };
        Ok(Self {
            issuer: format!("{origin}/demo/idp"),
            client_id: "taskflow-demo".into(),
            client_secret,
            redirect_uri: format!("{origin}/api/auth/callback"),
            post_logout_redirect_uri: format!("{origin}/"),
            backchannel_logout_uri: format!("{origin}/api/auth/backchannel-logout"),
            token_ttl,
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signs arbitrary claims with the current key and the given `typ` (tests use it to
    /// forge logout tokens the relying party must refuse).
    pub fn sign_jwt(&self, claims: &serde_json::Value, typ: &str) -> anyhow::Result<String> {
        let inner = self.lock();
        let key = inner
            .keys
            .last()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        key.sign_typed(claims, &key.kid, typ)
    }

    /// A valid logout token for `sub` and/or `sid`.
    pub fn logout_token(&self, sub: Option<&str>, sid: Option<&str>) -> anyhow::Result<String> {
        let now = crate::clock::now();
        let mut claims = serde_json::json!({
            "iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 120,
            "jti": crate::ids::random_token(),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        if let Some(s) = sub {
            claims["sub"] = s.into();
        }
        if let Some(s) = sid {
            claims["sid"] = s.into();
        }
        self.sign_jwt(&claims, "logout+jwt")
    }

    /// Where the relying party receives back-channel logouts.
    pub fn backchannel_logout_uri(&self) -> &str {
        &self.backchannel_logout_uri
    }

    /// The demo client's secret, so that another replica can use this provider.
    pub fn client_secret(&self) -> &SecretString {
        &self.client_secret
    }

    /// Makes the next id_tokens misbehave (or behave again with `None`).
    pub fn set_forgery(&self, f: Option<Forgery>) {
        self.lock().forgery = f;
    }

    /// Adds a new signing key and signs with it from now on; the old one stays published.
    pub fn rotate_key(&self) -> anyhow::Result<String> {
        let key = SigningKey::generate()?;
        let kid = key.kid.clone();
        self.lock().keys.push(key);
        Ok(kid)
    }

    /// How many refresh_token grants were served.
    pub fn refresh_count(&self) -> u64 {
        self.lock().refresh_count
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_requests(&self) -> u64 {
        self.lock().jwks_requests
    }

    /// The subject of a token this provider issued and that is still valid: an id_token
    /// checked against the published keys, or an opaque access token it handed out.
    pub fn verify_bearer(&self, token: &str) -> Option<String> {
        let inner = self.lock();
        if token.contains('.') {
            let header = jsonwebtoken::decode_header(token).ok()?;
            let key = inner.keys.iter().find(|k| Some(&k.kid) == header.kid.as_ref())?;
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            v.set_issuer(&[&self.issuer]);
            v.set_audience(&[&self.client_id]);
            v.leeway = 0;
            #[derive(serde::Deserialize)]
            struct Sub {
                sub: String,
            }
            return jsonwebtoken::decode::<Sub>(token, &key.decoding, &v)
                .ok()
                .map(|d| d.claims.sub);
        }
        let (user, exp) = inner.access.get(token).copied()?;
        (exp > crate::clock::now()).then(|| USERS[user].0.to_owned())
    }

    /// Makes every refresh fail with `invalid_grant` (or work again).
    pub fn set_refresh_failure(&self, fail: bool) {
        self.lock().fail_refresh = fail;
    }
}
