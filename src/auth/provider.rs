//! The OpenID provider as seen by this relying party: discovery, JWKS cache, id_token
//! validation and the token/userinfo/revocation calls.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use jsonwebtoken::{jwk::Jwk, Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{OidcSettings, TokenAuthMethod};

/// How long the provider has to answer a call, whichever client carries it.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A call to the provider, with its own deadline and a user agent: the client it goes
/// through is the proxy's, which sets neither by default.
fn to_provider(req: awc::ClientRequest) -> awc::ClientRequest {
    req.timeout(PROVIDER_TIMEOUT).insert_header((
        actix_web::http::header::USER_AGENT,
        concat!("taskflow-bff/", env!("CARGO_PKG_VERSION")),
    ))
}

/// Asymmetric algorithms we accept; HMAC and `none` never are.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The parts of the discovery document we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Issuer; must equal the configured one exactly.
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Code exchange and refresh.
    pub token_endpoint: String,
    /// Signing keys.
    pub jwks_uri: String,
    /// Profile claims (name, email).
    pub userinfo_endpoint: Option<String>,
    /// RP-initiated logout.
    pub end_session_endpoint: Option<String>,
    /// Token revocation (RFC 7009).
    pub revocation_endpoint: Option<String>,
    /// Algorithms the provider may sign id_tokens with.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// RFC 9207: the provider sends `iss` on the authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// What the token endpoint returns.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    /// The id_token (absent on some refresh responses).
    pub id_token: Option<String>,
    /// The access token.
    pub access_token: Option<String>,
    /// The (possibly rotated) refresh token.
    pub refresh_token: Option<String>,
    /// Access token lifetime in seconds.
    pub expires_in: Option<i64>,
}

/// Claims of a validated id_token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    /// Subject.
    pub sub: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    #[serde(default)]
    pub iat: i64,
    /// Nonce from the authorization request.
    pub nonce: Option<String>,
    /// Authorized party.
    pub azp: Option<String>,
    /// Provider session id.
    pub sid: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Audience: a string or a list.
    pub aud: Audience,
}

/// `aud` may be a single string or an array.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

/// Profile claims from the userinfo endpoint.
#[derive(Debug, Deserialize)]
pub struct UserInfo {
    /// Must equal the id_token's `sub`.
    pub sub: String,
    /// Display name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
}

/// Why an id_token was refused; the text is safe to show and log.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Malformed, unsupported algorithm, unknown key or bad signature.
    #[error("id_token rejected: {0}")]
    Invalid(String),
    /// The keys could not be fetched.
    #[error("cannot fetch the provider's keys: {0}")]
    Keys(anyhow::Error),
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Jwk>,
    unnamed: Vec<Jwk>,
    refetched_at: Option<Instant>,
}

/// Shared provider state; HTTP calls take the caller's (per-worker) awc client.
pub struct Provider {
    settings: OidcSettings,
    issuer: String,
    redirect_uri: String,
    leeway: Duration,
    min_refetch: Duration,
    metadata: RwLock<Option<Arc<Metadata>>>,
    keys: RwLock<KeyCache>,
    refetch: tokio::sync::Mutex<()>,
}

impl Provider {
    /// A provider for `settings`, with our callback at `redirect_uri`.
    pub fn new(
        settings: OidcSettings,
        redirect_uri: String,
        leeway: Duration,
        min_refetch: Duration,
    ) -> Self {
        // The issuer identifier is compared as a string; Url adds a '/' to bare origins.
        let issuer = settings.issuer.as_str().trim_end_matches('/').to_owned();
        Self {
            settings,
            issuer,
            redirect_uri,
            leeway,
            min_refetch,
            metadata: RwLock::new(None),
            keys: RwLock::new(KeyCache::default()),
            refetch: tokio::sync::Mutex::new(()),
        }
    }

    /// The configured issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Our client id.
    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// Our callback URL.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The settings this provider was built from.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Whether discovery has succeeded.
    pub fn is_ready(&self) -> bool {
        self.cached_metadata().is_some()
    }

    /// Discovery metadata, fetched on first use and cached.
    pub async fn metadata(&self, client: &awc::Client) -> anyhow::Result<Arc<Metadata>> {
        if let Some(m) = self.cached_metadata() {
            return Ok(m);
        }
        // One discovery at a time; whoever waited finds it done.
        let _guard = self.refetch.lock().await;
        if let Some(m) = self.cached_metadata() {
            return Ok(m);
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let md: Metadata = get_json(client, &url).await.context("discovery")?;
        if md.issuer.trim_end_matches('/') != self.issuer {
            bail!(
                "discovery names issuer {:?}, configured {:?}",
                md.issuer,
                self.issuer
            );
        }
        if !md.id_token_signing_alg_values_supported.is_empty() && allowed_algs(&md).is_empty() {
            bail!(
                "the provider signs id_tokens only with {:?}; an asymmetric algorithm is required",
                md.id_token_signing_alg_values_supported
            );
        }
        let md = Arc::new(md);
        self.refetch_keys(client, &md).await?;
        *self.metadata.write().map_err(|_| anyhow!("poisoned"))? = Some(md.clone());
        tracing::info!(issuer = %self.issuer, "provider metadata loaded");
        Ok(md)
    }

    fn cached_metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata.read().ok().and_then(|m| m.clone())
    }

    async fn refetch_keys(&self, client: &awc::Client, md: &Metadata) -> anyhow::Result<()> {
        let set: serde_json::Value = get_json(client, &md.jwks_uri).await.context("jwks")?;
        let mut cache = KeyCache {
            refetched_at: Some(Instant::now()),
            ..KeyCache::default()
        };
        let list = set
            .get("keys")
            .and_then(|k| k.as_array())
            .cloned()
            .unwrap_or_default();
        for raw in list {
            if raw.get("use").and_then(|u| u.as_str()) == Some("enc") {
                continue;
            }
            // Keys of types we cannot use are skipped rather than failing the whole set.
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            match jwk.common.key_id.clone() {
                Some(kid) => {
                    cache.keys.insert(kid, jwk);
                }
                None => cache.unnamed.push(jwk),
            }
        }
        *self.keys.write().map_err(|_| anyhow!("poisoned"))? = cache;
        Ok(())
    }

    fn find_key(&self, kid: Option<&str>) -> Option<Jwk> {
        let cache = self.keys.read().ok()?;
        match kid {
            Some(k) => cache.keys.get(k).cloned(),
            None if cache.keys.len() + cache.unnamed.len() == 1 => {
                cache.keys.values().chain(cache.unnamed.iter()).next().cloned()
            }
            None => None,
        }
    }

    /// Checks a JWT from the provider: algorithm allow-list, key from the JWKS (refetched
    /// once, rate-limited, for an unknown kid), signature, `iss`, `aud`, `exp` when present,
    /// and the `required` claims. Returns the header and the claims.
    pub async fn verify_jwt<T: serde::de::DeserializeOwned>(
        &self,
        client: &awc::Client,
        token: &str,
        required: &[&str],
    ) -> Result<(jsonwebtoken::Header, T), TokenError> {
        let md = self.metadata(client).await.map_err(TokenError::Keys)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("malformed header ({e})")))?;
        if !allowed_algs(&md).contains(&header.alg) {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} not allowed",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let jwk = match self.find_key(kid) {
            Some(k) => k,
            None => {
                let _guard = self.refetch.lock().await;
                // Another request may have refetched while we waited for the lock.
                match self.find_key(kid) {
                    Some(k) => k,
                    None => {
                        let recent = self
                            .keys
                            .read()
                            .ok()
                            .and_then(|c| c.refetched_at)
                            .is_some_and(|t| t.elapsed() < self.min_refetch);
                        if !recent {
                            tracing::info!(kid, "unknown key id; refetching JWKS");
                            self.refetch_keys(client, &md).await.map_err(TokenError::Keys)?;
                        }
                        self.find_key(kid)
                            .ok_or_else(|| TokenError::Invalid(format!("unknown key id {kid:?}")))?
                    }
                }
            }
        };
        if let Some(key_alg) = jwk.common.key_algorithm {
            if format!("{key_alg:?}") != format!("{:?}", header.alg) {
                return Err(TokenError::Invalid("key and token algorithms differ".into()));
            }
        }
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| TokenError::Invalid(format!("unusable key ({e})")))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&md.issuer]);
        v.set_audience(&[&self.settings.client_id]);
        v.set_required_spec_claims(required);
        v.leeway = self.leeway.as_secs();
        let data =
            jsonwebtoken::decode::<T>(token, &key, &v).map_err(|e| TokenError::Invalid(e.to_string()))?;
        Ok((header, data.claims))
    }

    /// Validates an id_token: [`Provider::verify_jwt`], then `iat`, `azp` and, when given, `nonce`.
    pub async fn validate_id_token(
        &self,
        client: &awc::Client,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<IdClaims, TokenError> {
        let (_, claims): (_, IdClaims) = self
            .verify_jwt(client, token, &["exp", "iss", "aud", "sub"])
            .await?;
        if claims.iat > crate::clock::now() + self.leeway.as_secs() as i64 {
            return Err(TokenError::Invalid("issued in the future".into()));
        }
        let several = matches!(&claims.aud, Audience::Many(a) if a.len() > 1);
        match claims.azp.as_deref() {
            Some(azp) if azp != self.settings.client_id => {
                return Err(TokenError::Invalid("azp is another client".into()))
            }
            None if several => return Err(TokenError::Invalid("azp missing with several audiences".into())),
            _ => {}
        }
        if let Some(expected) = nonce {
            if claims.nonce.as_deref() != Some(expected) {
                return Err(TokenError::Invalid("nonce does not match".into()));
            }
        }
        Ok(claims)
    }

    /// `exp` of a token this relying party validated when it got it; the signature is not
    /// checked again (only used to know how long a revoked token needs remembering).
    pub fn expiry_of(token: &str) -> Option<i64> {
        #[derive(Deserialize)]
        struct Exp {
            exp: i64,
        }
        let mut v = Validation::default();
        v.insecure_disable_signature_validation();
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Exp>(token, &DecodingKey::from_secret(&[]), &v)
            .ok()
            .map(|d| d.claims.exp)
    }

    /// The leeway applied to `iat`/`exp`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        client: &awc::Client,
        code: &str,
        verifier: &str,
    ) -> anyhow::Result<TokenResponse> {
        self.token_request(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Uses a refresh token; `Err` with [`RefreshRejected`] when the provider refused it.
    pub async fn refresh(&self, client: &awc::Client, refresh_token: &str) -> anyhow::Result<TokenResponse> {
        self.token_request(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
        )
        .await
    }

    async fn token_request(
        &self,
        client: &awc::Client,
        params: &[(&str, &str)],
    ) -> anyhow::Result<TokenResponse> {
        let md = self.metadata(client).await?;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let req = self
            .client_auth(to_provider(client.post(&md.token_endpoint)), &mut form)
            .insert_header(("Accept", "application/json"));
        let mut res = req
            .send_form(&form)
            .await
            .map_err(|e| anyhow!("token endpoint unreachable: {e}"))?;
        let body = res
            .body()
            .limit(256 * 1024)
            .await
            .context("token response body")?;
        if !res.status().is_success() {
            let err: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = err
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown")
                .to_owned();
            return Err(anyhow::Error::new(RefreshRejected(code))
                .context(format!("token endpoint answered {}", res.status())));
        }
        serde_json::from_slice(&body).context("token response is not the expected JSON")
    }

    /// Reads name and email from the userinfo endpoint, if the provider has one.
    pub async fn userinfo(
        &self,
        client: &awc::Client,
        access_token: &str,
    ) -> anyhow::Result<Option<UserInfo>> {
        let md = self.metadata(client).await?;
        let Some(url) = &md.userinfo_endpoint else {
            return Ok(None);
        };
        let mut res = to_provider(client.get(url))
            .bearer_auth(access_token)
            .insert_header(("Accept", "application/json"))
            .send()
            .await
            .map_err(|e| anyhow!("userinfo unreachable: {e}"))?;
        if !res.status().is_success() {
            bail!("userinfo answered {}", res.status());
        }
        Ok(Some(res.json().limit(64 * 1024).await.context("userinfo JSON")?))
    }

    /// Revokes a refresh token at the provider (RFC 7009); best effort.
    pub async fn revoke(&self, client: &awc::Client, refresh_token: &str) {
        let Ok(md) = self.metadata(client).await else {
            return;
        };
        let Some(url) = md.revocation_endpoint.clone() else {
            return;
        };
        let mut form = vec![("token", refresh_token), ("token_type_hint", "refresh_token")];
        let req = self.client_auth(to_provider(client.post(&url)), &mut form);
        match req.send_form(&form).await {
            Ok(r) if r.status().is_success() => tracing::info!("refresh token revoked at the provider"),
            Ok(r) => tracing::warn!(status = r.status().as_u16(), "revocation refused"),
            Err(e) => tracing::warn!(error = %e, "revocation endpoint unreachable"),
        }
    }
}

impl Provider {
    /// Adds client authentication per `OIDC_TOKEN_AUTH_METHOD`: a Basic header, or the
    /// credentials in the form.
    fn client_auth<'a>(
        &'a self,
        req: awc::ClientRequest,
        form: &mut Vec<(&'a str, &'a str)>,
    ) -> awc::ClientRequest {
        let secret = self.settings.client_secret.expose_secret();
        match self.settings.token_auth_method {
            TokenAuthMethod::Basic => {
                req.basic_auth(form_encode(&self.settings.client_id), form_encode(secret))
            }
            TokenAuthMethod::Post => {
                form.push(("client_id", &self.settings.client_id));
                form.push(("client_secret", secret));
                req
            }
        }
    }
}

/// The provider refused a grant (`invalid_grant` and friends).
#[derive(Debug, thiserror::Error)]
#[error("the provider refused the grant: {0}")]
pub struct RefreshRejected(pub String);

/// Allowed algorithms: our asymmetric list narrowed to what the provider advertises.
fn allowed_algs(md: &Metadata) -> Vec<Algorithm> {
    if md.id_token_signing_alg_values_supported.is_empty() {
        return vec![Algorithm::RS256];
    }
    ASYMMETRIC
        .iter()
        .copied()
        .filter(|a| {
            md.id_token_signing_alg_values_supported
                .iter()
                .any(|s| s == &format!("{a:?}"))
        })
        .collect()
}

/// RFC 6749 §2.3.1: client credentials are form-encoded before Basic encoding.
fn form_encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

async fn get_json<T: serde::de::DeserializeOwned>(client: &awc::Client, url: &str) -> anyhow::Result<T> {
    let mut res = to_provider(client.get(url))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .map_err(|e| anyhow!("{url} unreachable: {e}"))?;
    if !res.status().is_success() {
        bail!("{url} answered {}", res.status());
    }
    res.json()
        .limit(1024 * 1024)
        .await
        .with_context(|| format!("{url} is not valid JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn provider_calls_name_themselves_whichever_client_carries_them() {
        let bare = awc::Client::builder().no_default_headers().finish();
        let req = to_provider(bare.get("http://provider.invalid/jwks"));
        let agent = req.headers().get(actix_web::http::header::USER_AGENT);
        assert_eq!(
            agent.and_then(|v| v.to_str().ok()),
            Some(concat!("taskflow-bff/", env!("CARGO_PKG_VERSION")))
        );
    }

    fn md(algs: &[&str]) -> Metadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://id.example.com",
            "authorization_endpoint": "https://id.example.com/a",
            "token_endpoint": "https://id.example.com/t",
            "jwks_uri": "https://id.example.com/k",
            "id_token_signing_alg_values_supported": algs,
        }))
        .expect("valid metadata")
    }

    #[test]
    fn hmac_and_none_are_never_allowed() {
        assert!(allowed_algs(&md(&["HS256", "none"])).is_empty());
        assert_eq!(allowed_algs(&md(&["RS256", "HS256"])), vec![Algorithm::RS256]);
        assert_eq!(allowed_algs(&md(&["EdDSA"])), vec![Algorithm::EdDSA]);
        assert_eq!(allowed_algs(&md(&[])), vec![Algorithm::RS256]);
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }
}
