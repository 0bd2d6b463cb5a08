//! Refresh of a session's tokens before they are forwarded: one refresh per session at
//! a time, rotation-aware (re-read the session before giving up on `invalid_grant`).

use std::borrow::Cow;

use actix_web::http::header::HeaderValue;

use crate::{
    clock::now,
    config::ForwardToken,
    error::ApiError,
    session::{store::AuditEvent, SessionRecord, Tokens},
    state::AppState,
};

use super::provider::{RefreshRejected, TokenResponse};

/// The token forwarded upstream, per `FORWARD_TOKEN`.
pub fn forwarded(tokens: &Tokens, which: ForwardToken) -> Option<&str> {
    match which {
        ForwardToken::IdToken => Some(tokens.id_token.as_str()),
        ForwardToken::AccessToken => tokens.access_token.as_deref(),
    }
}

/// `Authorization: Bearer <token>` for the forwarded token, built once per token set.
pub fn authorization(tokens: &Tokens, which: ForwardToken) -> Option<HeaderValue> {
    let slot = &tokens.bearer.0[which as usize];
    slot.get_or_init(|| forwarded(tokens, which).and_then(bearer))
        .clone()
}

/// `Bearer <token>` as a header value; `None` for a token no header can carry.
pub fn bearer(token: &str) -> Option<HeaderValue> {
    let mut v = bytes::BytesMut::with_capacity(token.len() + 7);
    v.extend_from_slice(b"Bearer ");
    v.extend_from_slice(token.as_bytes());
    HeaderValue::from_maybe_shared(v.freeze()).ok()
}

/// When the forwarded token expires: the id_token's `exp`, or `expires_in` of the access token.
pub fn forward_expiry(which: ForwardToken, id_exp: i64, expires_in: Option<i64>) -> i64 {
    match (which, expires_in) {
        (ForwardToken::AccessToken, Some(secs)) => now() + secs,
        _ => id_exp,
    }
}

/// Whether tokens are due for a refresh: they expire within the skew, where the skew is at
/// most a quarter of the token's own lifetime. A token that lives shorter than the
/// configured skew is then refreshed once per lifetime, not on every request.
pub fn needs_refresh(tokens: &Tokens, skew: i64, now: i64) -> bool {
    let lifetime = tokens.expires_at - tokens.issued_at;
    let skew = if tokens.issued_at > 0 && lifetime > 0 {
        skew.min(lifetime / 4)
    } else {
        skew
    };
    tokens.expires_at <= now + skew
}

/// Returns tokens valid for at least the refresh skew, refreshing them if needed; the
/// record's own when they are (no copy on the hot path).
pub async fn fresh_tokens<'a>(
    state: &AppState,
    client: &awc::Client,
    key_hash: &str,
    record: &'a SessionRecord,
) -> Result<Cow<'a, Tokens>, ApiError> {
    let skew = state.settings.tokens.refresh_skew.as_secs() as i64;
    if !needs_refresh(&record.tokens, skew, now()) {
        return Ok(Cow::Borrowed(&record.tokens));
    }
    refresh(state, client, key_hash, skew).await.map(Cow::Owned)
}

/// One refresh at a time per session in this process, one per session across replicas.
async fn refresh(
    state: &AppState,
    client: &awc::Client,
    key_hash: &str,
    skew: i64,
) -> Result<Tokens, ApiError> {
    let lock = state.refresh_locks.get(key_hash);
    let _held = lock.lock().await;
    // Whoever held the lock before us may have refreshed already.
    let current = reload(state, key_hash).await?;
    if !needs_refresh(&current.tokens, skew, now()) {
        return Ok(current.tokens);
    }
    let Some(refresh_token) = current.tokens.refresh_token.clone() else {
        return end(state, key_hash, &current, "no refresh token").await;
    };
    // Across replicas: whoever takes the store's lease refreshes; the others wait for it.
    let leased = state
        .store
        .take_refresh_lease(key_hash, now(), LEASE_SECS)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    if !leased {
        return wait_for_other_refresh(state, key_hash, &current).await;
    }
    // Another replica may have refreshed and released the lease since we read the session:
    // read again under the lease, so a rotated refresh token is never used twice.
    let latest = reload(state, key_hash).await?;
    if latest.version != current.version || !needs_refresh(&latest.tokens, skew, now()) {
        let _ = state.store.release_refresh_lease(key_hash).await;
        return Ok(latest.tokens);
    }
    let result = state.provider.refresh(client, &refresh_token).await;
    if result.is_err() {
        let _ = state.store.release_refresh_lease(key_hash).await;
    }
    match result {
        Ok(res) => apply(state, client, key_hash, &current, res).await,
        Err(e) if e.downcast_ref::<RefreshRejected>().is_some() => {
            // Another replica may have rotated the refresh token a moment ago.
            let again = reload(state, key_hash).await?;
            if again.version != current.version && !needs_refresh(&again.tokens, skew, now()) {
                return Ok(again.tokens);
            }
            tracing::warn!(error = %e, "refresh refused by the provider");
            end(state, key_hash, &current, "refresh refused").await
        }
        Err(e) if current.tokens.expires_at > now() => {
            tracing::warn!(error = %e, "refresh failed; the current token is still valid");
            Ok(current.tokens)
        }
        Err(e) => Err(ApiError::IdpUnavailable(e)),
    }
}

/// How long a replica may hold the refresh lease of a session.
const LEASE_SECS: i64 = 15;

/// Another replica is refreshing this session: wait for its tokens.
async fn wait_for_other_refresh(
    state: &AppState,
    key_hash: &str,
    current: &SessionRecord,
) -> Result<Tokens, ApiError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(LEASE_SECS as u64);
    while std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        let again = reload(state, key_hash).await?;
        if again.version != current.version {
            return Ok(again.tokens);
        }
    }
    if current.tokens.expires_at > now() {
        return Ok(current.tokens.clone());
    }
    Err(ApiError::IdpUnavailable(anyhow::anyhow!(
        "another replica's refresh did not finish"
    )))
}

async fn reload(state: &AppState, key_hash: &str) -> Result<SessionRecord, ApiError> {
    state
        .store
        .load(key_hash)
        .await
        .map_err(ApiError::StoreUnavailable)?
        .ok_or(ApiError::SessionExpired)
}

async fn apply(
    state: &AppState,
    client: &awc::Client,
    key_hash: &str,
    current: &SessionRecord,
    res: TokenResponse,
) -> Result<Tokens, ApiError> {
    let which = state.settings.tokens.forward_token;
    // A refreshed id_token may repeat the login nonce or carry none: nonce is not checked.
    let (id_token, id_exp) = match res.id_token {
        Some(t) => {
            let claims = match state.provider.validate_id_token(client, &t, None).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "refreshed id_token rejected");
                    return end(state, key_hash, current, "refreshed id_token rejected").await;
                }
            };
            if claims.sub != current.sub {
                return end(
                    state,
                    key_hash,
                    current,
                    "refreshed id_token names another subject",
                )
                .await;
            }
            (t, claims.exp)
        }
        None if which == ForwardToken::IdToken => {
            return end(state, key_hash, current, "refresh returned no id_token").await;
        }
        None => (current.tokens.id_token.clone(), 0),
    };
    let tokens = Tokens {
        id_token,
        access_token: res.access_token.or_else(|| current.tokens.access_token.clone()),
        refresh_token: res.refresh_token.or_else(|| current.tokens.refresh_token.clone()),
        expires_at: forward_expiry(which, id_exp, res.expires_in),
        issued_at: now(),
        bearer: Default::default(),
    };
    let profile = match tokens.access_token.as_deref() {
        Some(at) => state.provider.userinfo(client, at).await.ok().flatten(),
        None => None,
    }
    .filter(|u| u.sub == current.sub);
    let (name, email) = profile.map(|p| (p.name, p.email)).unwrap_or_default();
    let stored = state
        .store
        .update_tokens(
            key_hash,
            current.version,
            &tokens,
            name.as_deref(),
            email.as_deref(),
        )
        .await
        .map_err(ApiError::StoreUnavailable)?;
    if !stored {
        // Lost a race with another replica: its tokens are the ones to use.
        return Ok(reload(state, key_hash).await?.tokens);
    }
    tracing::info!(session = %current.id, "tokens refreshed");
    state
        .metrics
        .refreshes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state
        .store
        .audit(AuditEvent {
            event: "refresh",
            sub: Some(&current.sub),
            session_id: Some(&current.id),
            ip: None,
            detail: None,
        })
        .await;
    Ok(tokens)
}

async fn end(
    state: &AppState,
    key_hash: &str,
    current: &SessionRecord,
    why: &str,
) -> Result<Tokens, ApiError> {
    state
        .metrics
        .refresh_failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state
        .store
        .delete(key_hash)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    state
        .store
        .audit(AuditEvent {
            event: "refresh_failed",
            sub: Some(&current.sub),
            session_id: Some(&current.id),
            ip: None,
            detail: Some(why),
        })
        .await;
    Err(ApiError::SessionExpired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(issued_at: i64, expires_at: i64) -> Tokens {
        Tokens {
            id_token: "i".into(),
            access_token: None,
            refresh_token: Some("r".into()),
            expires_at,
            issued_at,
            bearer: Default::default(),
        }
    }

    #[test]
    fn the_forwarded_token_becomes_a_bearer_header_once_per_token_set() {
        let mut t = tokens(0, 0);
        t.access_token = Some("a".into());
        assert_eq!(authorization(&t, ForwardToken::IdToken).expect("id"), "Bearer i");
        assert_eq!(
            authorization(&t, ForwardToken::AccessToken).expect("at"),
            "Bearer a"
        );
        // Kept with the token set; a refreshed set starts without it.
        assert!(t.bearer.0.iter().all(|slot| slot.get().is_some()));
        t.access_token = None;
        let refreshed = Tokens {
            bearer: Default::default(),
            ..t
        };
        assert_eq!(authorization(&refreshed, ForwardToken::AccessToken), None);
        assert_eq!(bearer("bad\ntoken"), None);
    }

    #[test]
    fn tokens_shorter_than_the_skew_are_refreshed_once_per_lifetime() {
        // A 45 s token with the default 60 s skew: fresh for its first 33 s, not stale at once.
        let t = tokens(1000, 1045);
        assert!(!needs_refresh(&t, 60, 1000));
        assert!(!needs_refresh(&t, 60, 1030));
        assert!(needs_refresh(&t, 60, 1034));
        // Long-lived tokens keep the configured skew.
        let long = tokens(1000, 4600);
        assert!(!needs_refresh(&long, 60, 4530));
        assert!(needs_refresh(&long, 60, 4540));
        // Sessions stored before `issued_at` existed keep the old rule.
        assert!(needs_refresh(&tokens(0, 1045), 60, 1000));
    }
}
