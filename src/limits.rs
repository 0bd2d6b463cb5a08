//! Limits on what one client can make the BFF do: sign-in requests per client address
//! (each may cost a call to the provider's token endpoint, which providers rate-limit per
//! client: one visitor must not lock everyone out of signing in), code exchanges overall,
//! and a deadline for every body the BFF reads itself (a body trickled one byte at a time
//! must not hold a connection). Proxied bodies keep the proxy's idle timeout instead.

use std::{
    future::Future as _,
    net::IpAddr,
    num::NonZeroU32,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_governor::{GovernorConfig, GovernorConfigBuilder, KeyExtractor, PeerIpKeyExtractor};
use actix_web::{
    dev::{Payload, ServiceRequest},
    error::PayloadError,
    HttpMessage, HttpResponse, HttpResponseBuilder, ResponseError,
};
use bytes::Bytes;
use futures_util::Stream;
use governor::{
    clock::{Clock, DefaultClock, QuantaInstant},
    DefaultDirectRateLimiter, NotUntil, Quota, RateLimiter,
};
use ipnet::IpNet;

use crate::error::PageError;

/// Keys sign-in requests by client address, as `TRUSTED_PROXIES` lets it be known.
#[derive(Clone)]
pub struct ClientAddress(pub std::sync::Arc<Vec<IpNet>>);

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;
    type KeyExtractionError = <PeerIpKeyExtractor as KeyExtractor>::KeyExtractionError;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        let ip = match crate::client_ip::client_ip(req.request(), &self.0) {
            Some(ip) => ip,
            None => PeerIpKeyExtractor.extract(req)?,
        };
        Ok(network_of(ip))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        _response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now());
        tracing::warn!(retry_after_secs = wait.as_secs(), "sign-in throttled");
        PageError::RateLimited(wait.as_secs().max(1)).error_response()
    }
}

/// The unit one client controls: its IPv4 address, or its IPv6 /64 (one host gets a whole
/// /64, and rotating through it must not buy more attempts).
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        other => other,
    }
}

/// The sign-in throttle shared by every worker: `per_min` requests a minute per address,
/// all of them available at once (a burst of retries is fine; a loop is not).
pub type SignInThrottle = GovernorConfig<ClientAddress, governor::middleware::NoOpMiddleware>;

/// Builds the sign-in throttle.
pub fn sign_in_throttle(per_min: u32, trusted: &[IpNet]) -> SignInThrottle {
    let per_request = Duration::from_secs(60) / per_min.max(1);
    GovernorConfigBuilder::default()
        .period(per_request)
        .burst_size(per_min.max(1))
        .key_extractor(ClientAddress(std::sync::Arc::new(trusted.to_vec())))
        .finish()
        .expect("only a zero period or burst is refused, and both are at least one")
}

/// Code exchanges at the token endpoint, all clients together, per minute.
pub fn token_endpoint_budget(per_min: u32) -> DefaultDirectRateLimiter {
    let n = NonZeroU32::new(per_min).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_minute(n))
}

/// Seconds until the budget allows another call, or `None` if it allows one now.
pub fn take(budget: &DefaultDirectRateLimiter) -> Option<u64> {
    budget
        .check()
        .err()
        .map(|nu| nu.wait_time_from(DefaultClock::default().now()).as_secs().max(1))
}

/// Whether a path's body is read by the BFF itself (not streamed to an upstream).
fn reads_own_body(path: &str) -> bool {
    !(path.starts_with("/api/chatkit") || path.starts_with("/api/remote/"))
}

/// Gives the request's body a deadline: past it, reading fails with `TimedOut`, which the
/// extractors' error handlers answer with 408.
pub fn body_deadline(req: &mut ServiceRequest, deadline: Duration) {
    if !reads_own_body(req.path()) {
        return;
    }
    let inner = req.take_payload();
    let until = tokio::time::Instant::now() + deadline;
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(Deadline {
        inner,
        until,
        sleep: None,
    });
    req.set_payload(Payload::from(stream));
}

/// Whether a payload error is the deadline of [`body_deadline`].
pub fn is_deadline(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

struct Deadline {
    inner: Payload,
    until: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The timer exists only once someone reads the body: a GET costs nothing.
        let until = self.until;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_budget_refuses_past_its_quota() {
        let budget = token_endpoint_budget(3);
        for _ in 0..3 {
            assert_eq!(take(&budget), None);
        }
        assert!(take(&budget).is_some_and(|secs| secs >= 1));
    }

    #[test]
    fn an_ipv6_client_is_throttled_by_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(network_of(a), network_of(b));
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        assert_eq!(network_of(v4), v4);
    }

    #[test]
    fn proxied_bodies_keep_their_own_timeout() {
        assert!(!reads_own_body("/api/chatkit"));
        assert!(!reads_own_body("/api/remote/tasks/1"));
        assert!(reads_own_body("/api/auth/backchannel-logout"));
        assert!(reads_own_body("/demo/idp/token"));
    }
}
