//! Key derivation from SESSION_SECRET and AES-256-GCM sealing of tokens at rest.

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hkdf::Hkdf;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Keys derived from the master secret, one per purpose.
#[derive(Clone)]
pub struct Keys {
    tokens: Aes256Gcm,
    cookies: actix_web::cookie::Key,
}

impl Keys {
    /// Derives the purpose keys from the master secret with HKDF-SHA256.
    pub fn derive(master: &SecretString) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"taskflow-bff"), master.expose_secret().as_bytes());
        let mut tokens = [0u8; 32];
        let mut cookies = [0u8; 64];
        // expand only fails for outputs longer than 255 hash blocks.
        hk.expand(b"tokens-at-rest v1", &mut tokens)
            .expect("32 bytes is a valid HKDF output length");
        hk.expand(b"login-cookie v1", &mut cookies)
            .expect("64 bytes is a valid HKDF output length");
        Self {
            tokens: Aes256Gcm::new(&tokens.into()),
            cookies: actix_web::cookie::Key::from(&cookies),
        }
    }

    /// Key of the private (encrypted) login-transaction cookie.
    pub fn cookie_key(&self) -> &actix_web::cookie::Key {
        &self.cookies
    }

    /// Encrypts `plain`, binding it to `aad` (the session's key hash) so rows cannot be swapped.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        let ct = self
            .tokens
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("AES-GCM encryption of an in-memory buffer does not fail");
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`Keys::seal`] produced; `None` when tampered or sealed with another key.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, ct) = sealed.split_at(12);
        self.tokens
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
    }
}

/// A fresh random value of 32 bytes, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Hex SHA-256, the form in which secrets such as session keys are stored.
pub fn sha256_hex(v: &str) -> String {
    // Runs on every request (the session lookup): no formatting machinery, one allocation.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(v.as_bytes()) {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// base64url(SHA-256(v)), the PKCE S256 code challenge.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Keys {
        Keys::derive(&SecretString::from(s))
    }

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let k = keys("a-master-secret-of-sufficient-length!!");
        let sealed = k.seal(b"refresh-token", b"row-1");
        assert_eq!(k.open(&sealed, b"row-1").as_deref(), Some(&b"refresh-token"[..]));
        assert!(k.open(&sealed, b"row-2").is_none(), "bound to its row");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(k.open(&bad, b"row-1").is_none());
        assert!(keys("another-master-secret-of-sufficient-len")
            .open(&sealed, b"row-1")
            .is_none());
        assert!(k.open(b"short", b"row-1").is_none());
    }

    #[test]
    fn pkce_matches_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn sha256_hex_is_the_lowercase_hex_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn random_tokens_are_distinct_and_url_safe() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
