//! taskflow-bff: OIDC sign-in, server-side sessions, the dashboard and a streaming proxy.
// One exception, in `proxy::upstream_io`: a call to glibc's malloc_trim.
#![deny(unsafe_code)]

pub mod auth;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod health;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod session;
pub mod startup;
pub mod state;
pub mod telemetry;
