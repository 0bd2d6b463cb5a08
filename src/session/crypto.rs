//! Key derivation from SESSION_SECRET and AES-256-GCM sealing of tokens at rest.

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use hkdf::Hkdf;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Keys derived from the master secret, one per purpose.
#[derive(Clone)]
pub struct Keys {
    tokens: Aes256Gcm,
    cookies: actix_web::cookie::Key,
    sessions: actix_web::cookie::Key,
    /// Names the session-cookie key without revealing it (a digest of it).
    sessions_id: u64,
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
        let mut sessions = [0u8; 64];
        hk.expand(b"session-cookie v1", &mut sessions)
            .expect("64 bytes is a valid HKDF output length");
        let digest = <Sha256 as sha2::Digest>::digest(sessions);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self {
            tokens: Aes256Gcm::new(&tokens.into()),
            cookies: actix_web::cookie::Key::from(&cookies),
            sessions: actix_web::cookie::Key::from(&sessions),
            sessions_id: u64::from_le_bytes(id),
        }
    }

    /// Key of the private (encrypted) login-transaction cookie.
    pub fn cookie_key(&self) -> &actix_web::cookie::Key {
        &self.cookies
    }

    /// The key that encrypts the session cookie (actix-session's private cookie).
    pub fn session_cookie_key(&self) -> &actix_web::cookie::Key {
        &self.sessions
    }

    /// An identifier of [`Keys::session_cookie_key`]: equal keys, equal ids.
    pub fn session_cookie_id(&self) -> u64 {
        self.sessions_id
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
}
