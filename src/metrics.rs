//! Prometheus metrics: requests by route and status, upstream latency, open event
//! streams, sign-ins, refreshes and store errors. One set per app (in its state), so two
//! apps in one process count apart.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
        Mutex,
    },
    time::Duration,
};

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    upstream_buckets: [AtomicU64; BUCKETS.len()],
    upstream_count: AtomicU64,
    upstream_sum_us: AtomicU64,
    /// Event streams being proxied right now.
    pub open_streams: AtomicI64,
    /// Completed sign-ins.
    pub logins: AtomicU64,
    /// Callbacks refused or failed.
    pub login_failures: AtomicU64,
    /// Token refreshes done.
    pub refreshes: AtomicU64,
    /// Refreshes that ended a session.
    pub refresh_failures: AtomicU64,
    /// Requests failed because the session store was unreachable.
    pub store_errors: AtomicU64,
    /// Sessions ended by back-channel logout.
    pub backchannel_logouts: AtomicU64,
}

impl Metrics {
    /// Records the time an upstream took to answer with headers.
    pub fn observe_upstream(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.upstream_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.upstream_count.fetch_add(1, Relaxed);
        self.upstream_sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// Counts one request by its route pattern and status.
    pub fn count_request(&self, route: String, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((route, status)).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP taskflow_http_requests_total HTTP requests by route pattern and status.\n# TYPE taskflow_http_requests_total counter"
        );
        for ((route, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let route = route.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "taskflow_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP taskflow_upstream_response_seconds Time until the upstream's response headers.\n# TYPE taskflow_upstream_response_seconds histogram"
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "taskflow_upstream_response_seconds_bucket{{le=\"{le}\"}} {}",
                self.upstream_buckets[i].load(Relaxed)
            );
        }
        let count = self.upstream_count.load(Relaxed);
        let _ = writeln!(
            out,
            "taskflow_upstream_response_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "taskflow_upstream_response_seconds_sum {}",
            self.upstream_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "taskflow_upstream_response_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP taskflow_sse_streams_open Event streams being proxied.\n# TYPE taskflow_sse_streams_open gauge\ntaskflow_sse_streams_open {}",
            self.open_streams.load(Relaxed)
        );
        counter(
            &mut out,
            "taskflow_logins_total",
            "Completed sign-ins.",
            self.logins.load(Relaxed),
        );
        counter(
            &mut out,
            "taskflow_login_failures_total",
            "Refused or failed callbacks.",
            self.login_failures.load(Relaxed),
        );
        counter(
            &mut out,
            "taskflow_refreshes_total",
            "Token refreshes.",
            self.refreshes.load(Relaxed),
        );
        counter(
            &mut out,
            "taskflow_refresh_failures_total",
            "Refreshes that ended a session.",
            self.refresh_failures.load(Relaxed),
        );
        counter(
            &mut out,
            "taskflow_store_errors_total",
            "Requests failed by an unreachable session store.",
            self.store_errors.load(Relaxed),
        );
        counter(
            &mut out,
            "taskflow_backchannel_logouts_total",
            "Sessions ended by back-channel logout.",
            self.backchannel_logouts.load(Relaxed),
        );
        out
    }
}

/// Appends one counter in the exposition format.
pub fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
}
