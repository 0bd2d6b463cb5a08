//! RSA signing keys of the demo provider, generated at start and rotatable.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::{pkcs1::EncodeRsaPrivateKey, pkcs8::EncodePublicKey, traits::PublicKeyParts, RsaPrivateKey};
use serde::Serialize;

/// One RS256 key: its id, signing key, public JWK and public PEM.
pub struct SigningKey {
    /// Key id (`kid`).
    pub kid: String,
    encoding: EncodingKey,
    /// The public key, for the demo backend's token checks.
    pub decoding: DecodingKey,
    /// The public key as a JWK.
    pub jwk: serde_json::Value,
    /// The public key as SPKI PEM (used to forge HS256 tokens in tests).
    pub public_pem: String,
}

impl SigningKey {
    /// Generates a 2048-bit RSA key.
    pub fn generate() -> anyhow::Result<Self> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
        let der = private.to_pkcs1_der()?;
        let kid = crate::ids::random_token()[..16].to_owned();
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        let decoding = DecodingKey::from_rsa_components(&n, &e)?;
        let jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": n,
            "e": e,
        });
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)?;
        Ok(Self {
            kid,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding,
            jwk,
            public_pem,
        })
    }

    /// Signs `claims` with RS256 under `kid` (normally this key's own id).
    pub fn sign<T: Serialize>(&self, claims: &T, kid: &str) -> anyhow::Result<String> {
        self.sign_typed(claims, kid, "JWT")
    }

    /// Signs with an explicit `typ` header (`logout+jwt` for logout tokens).
    pub fn sign_typed<T: Serialize>(&self, claims: &T, kid: &str, typ: &str) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        header.typ = Some(typ.to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}
