//! The login transaction (state, nonce, PKCE verifier, returnTo) in a short-lived
//! encrypted cookie, so anonymous visitors create no rows.

use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, CookieJar, SameSite},
    HttpRequest,
};
use serde::{Deserialize, Serialize};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use sha2::{Digest, Sha256};

use crate::{ids::random_token, session::crypto::Keys};

/// How long a sign-in may take at the provider.
pub const LOGIN_TTL_SECS: i64 = 600;

/// One login in progress.
#[derive(Serialize, Deserialize)]
pub struct LoginTransaction {
    /// Echoed back by the provider; binds the callback to this browser.
    pub state: String,
    /// Must come back inside the id_token.
    pub nonce: String,
    /// PKCE code verifier.
    pub verifier: String,
    /// Validated same-origin path to land on.
    pub return_to: String,
    /// Unix time the login started.
    pub started_at: i64,
}

impl LoginTransaction {
    /// A fresh transaction with random state, nonce and verifier.
    pub fn new(return_to: String) -> Self {
        Self {
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            return_to,
            started_at: crate::clock::now(),
        }
    }

    /// The encrypted cookie carrying this transaction.
    pub fn to_cookie(&self, name: &str, secure: bool, keys: &Keys) -> Cookie<'static> {
        let value = serde_json::to_string(self).unwrap_or_default();
        let mut jar = CookieJar::new();
        jar.private_mut(keys.cookie_key()).add(
            Cookie::build(name.to_owned(), value)
                .path("/")
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Lax)
                .max_age(CookieDuration::seconds(LOGIN_TTL_SECS))
                .finish(),
        );
        jar.delta()
            .next()
            .cloned()
            .unwrap_or_else(|| Cookie::new(name.to_owned(), ""))
    }

    /// Reads and decrypts the transaction cookie; `None` if absent, forged or stale.
    pub fn from_request(req: &HttpRequest, name: &str, keys: &Keys) -> Option<Self> {
        let raw = req.cookie(name)?;
        let mut jar = CookieJar::new();
        jar.add_original(raw.into_owned());
        let plain = jar.private(keys.cookie_key()).get(name)?;
        let tx: Self = serde_json::from_str(plain.value()).ok()?;
        let age = crate::clock::now() - tx.started_at;
        (0..=LOGIN_TTL_SECS).contains(&age).then_some(tx)
    }
}

/// A cookie that deletes `name`, with the attributes it was set with.
pub fn removal_cookie(name: &str, secure: bool) -> Cookie<'static> {
    let mut c = Cookie::build(name.to_owned(), "")
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish();
    c.make_removal();
    c
}

/// base64url(SHA-256(v)), the PKCE S256 code challenge.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
    use secrecy::SecretString;

    fn keys() -> Keys {
        Keys::derive(&SecretString::from("a-master-secret-of-sufficient-length!!"))
    }

    #[test]
    fn https_cookies_are_secure_host_only_and_lax() {
        let tx = LoginTransaction::new("/dashboard".into());
        let c = tx.to_cookie("__Host-taskflow_login", true, &keys()).to_string();
        assert!(c.starts_with("__Host-taskflow_login="), "{c}");
        for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
            assert!(c.contains(attr), "{attr} missing in {c}");
        }
        assert!(!c.contains("Domain"), "{c}");
        assert!(!c.contains(&tx.state), "the state is encrypted, not readable");
    }

    #[test]
    fn removal_cookie_expires_now() {
        let c = removal_cookie("taskflow_session", false).to_string();
        assert!(c.contains("Max-Age=0") && c.contains("Path=/"), "{c}");
    }
}

#[cfg(test)]
mod fuzz {
    use actix_web::test::TestRequest;
    use proptest::prelude::*;
    use secrecy::SecretString;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Arbitrary login cookies are refused without a panic; only our own decrypt.
        #[test]
        fn forged_login_cookies_are_refused(value in "[ -~]{0,300}") {
            let keys = Keys::derive(&SecretString::from("a-master-secret-of-sufficient-length!!"));
            let req = TestRequest::default()
                .insert_header(("Cookie", format!("taskflow_login={value}")))
                .to_http_request();
            prop_assert!(LoginTransaction::from_request(&req, "taskflow_login", &keys).is_none());
        }

        /// Sealed session data does not open with any other bytes.
        #[test]
        fn arbitrary_sealed_bytes_do_not_open(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let keys = Keys::derive(&SecretString::from("a-master-secret-of-sufficient-length!!"));
            prop_assert!(keys.open(&bytes, b"row").is_none());
        }
    }

    #[test]
    fn a_real_login_cookie_round_trips() {
        let keys = Keys::derive(&SecretString::from("a-master-secret-of-sufficient-length!!"));
        let tx = LoginTransaction::new("/chat".into());
        let c = tx.to_cookie("taskflow_login", false, &keys);
        let req = TestRequest::default()
            .insert_header(("Cookie", format!("taskflow_login={}", c.value())))
            .to_http_request();
        let back = LoginTransaction::from_request(&req, "taskflow_login", &keys).expect("decrypts");
        assert_eq!(back.state, tx.state);
        assert_eq!(back.return_to, "/chat");
    }
}
