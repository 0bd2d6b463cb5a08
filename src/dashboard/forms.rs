//! Page forms cannot send `X-CSRF`, so each carries a synchronizer token: random, one per
//! session, kept in the session's own state (actix-session's map) and compared in
//! constant time; the form must also pass the same-origin check.

use actix_session::Session;
use actix_web::HttpRequest;

use crate::{error::PageError, ids::random_token};

/// The state entry and the form field holding the token.
pub const FORM_TOKEN: &str = "form_token";

/// The session's form token, created on first use.
pub fn form_token(session: &Session) -> Result<String, PageError> {
    if let Ok(Some(t)) = session.get::<String>(FORM_TOKEN) {
        return Ok(t);
    }
    let t = random_token();
    session
        .insert(FORM_TOKEN, &t)
        .map_err(|e| PageError::Unexpected(anyhow::anyhow!("cannot keep the form token: {e}")))?;
    Ok(t)
}

/// Refuses a form post that is cross-site or does not carry the session's token.
pub fn check(req: &HttpRequest, origin: &str, session: &Session, submitted: &str) -> Result<(), PageError> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let same_origin = match (header("origin"), header("sec-fetch-site")) {
        (Some(o), _) => o == origin,
        (None, Some(site)) => site == "same-origin",
        (None, None) => false,
    };
    let expected = session.get::<String>(FORM_TOKEN).ok().flatten();
    let token_ok = expected.is_some_and(|t| constant_time_eq(t.as_bytes(), submitted.as_bytes()));
    if same_origin && token_ok {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "This form has expired or did not come from this site. Go back, reload the page and try again."
                .into(),
        ))
    }
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
