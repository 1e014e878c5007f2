//! The gateway's metrics and the Prometheus recorder behind `/metrics`.
//!
//! Metrics (labels never carry a path, user or token):
//! - `gateway_requests_total{region,status}`: requests answered; `region="none"` for
//!   requests no region serves (`421`).
//! - `gateway_request_duration_seconds{region}`: time to the response head (bodies
//!   stream afterwards and are not timed), a histogram with fixed buckets.
//! - `gateway_upstream_errors_total{region,kind}`: failed attempts to reach a worker,
//!   `kind` one of `connect`, `request`, `timeout`. A connect failure that was retried
//!   successfully still counts.
//! - `gateway_open_connections`: client connections currently open on the public port.
//!
//! Handles are registered once at start (per status code, lazily on first use), so the
//! request path only touches atomics: no key is built, hashed or allocated per request.
//!
//! # One recorder per process
//!
//! `metrics` has a single global recorder per process, and installing a second one fails.
//! [`install`] goes through `shared::telemetry::prometheus`, which builds the Prometheus
//! recorder on its first call (duration histograms get fixed buckets there, so they
//! render as histograms), installs it globally with `metrics::set_global_recorder`
//! guarded by a `OnceLock`, and returns the same handle on every later call. So several
//! gateways and workers in one process (as in the integration tests) share one registry:
//! their series add up, and each one's `/metrics` shows them all. A test therefore
//! asserts that a series is present, never an exact process-wide count.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, SharedString};
use metrics_exporter_prometheus::PrometheusHandle;
use shared::ids::RegionId;

use crate::error::UpstreamErrorKind;

const REQUESTS: &str = "gateway_requests_total";
const DURATION: &str = "gateway_request_duration_seconds";
const UPSTREAM_ERRORS: &str = "gateway_upstream_errors_total";
const OPEN_CONNECTIONS: &str = "gateway_open_connections";

/// Installs the process-wide recorder (once) and describes the gateway's metrics.
pub(crate) fn install() -> PrometheusHandle {
    let handle = shared::telemetry::prometheus();
    metrics::describe_counter!(REQUESTS, "Requests answered, by region and status.");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Time from request to response head, by region."
    );
    metrics::describe_counter!(
        UPSTREAM_ERRORS,
        "Failed attempts to reach a worker, by region and kind."
    );
    metrics::describe_gauge!(OPEN_CONNECTIONS, "Open client connections.");
    handle
}

/// The metric handles of one region (or of the `none` pseudo-region).
#[derive(Debug)]
pub(crate) struct RegionMetrics {
    /// The `region` label value.
    region: SharedString,
    /// `gateway_requests_total` by status code (index `status - 100`), registered on
    /// first use so that only the codes that occur appear as series.
    requests: Box<[OnceLock<Counter>]>,
    /// `gateway_request_duration_seconds{region}`.
    duration: Histogram,
    /// `gateway_upstream_errors_total{kind="connect"}`.
    connect_errors: Counter,
    /// `gateway_upstream_errors_total{kind="request"}`.
    request_errors: Counter,
    /// `gateway_upstream_errors_total{kind="timeout"}`.
    timeout_errors: Counter,
}

impl RegionMetrics {
    /// Handles for `region`.
    pub(crate) fn new(region: &RegionId) -> Self {
        Self::labelled(SharedString::from(region.as_str().to_owned()), true)
    }

    /// Handles for requests no region serves. They never reach a worker, so their
    /// upstream error counters are no-ops rather than series that are always zero.
    pub(crate) fn unrouted() -> Self {
        Self::labelled(SharedString::const_str("none"), false)
    }

    fn labelled(region: SharedString, has_upstreams: bool) -> Self {
        let errors = |kind: UpstreamErrorKind| {
            if !has_upstreams {
                return Counter::noop();
            }
            let labels = [("region", region.clone()), ("kind", kind.label().into())];
            metrics::counter!(UPSTREAM_ERRORS, &labels)
        };
        Self {
            requests: (100..600).map(|_| OnceLock::new()).collect(),
            duration: metrics::histogram!(DURATION, "region" => region.clone()),
            connect_errors: errors(UpstreamErrorKind::Connect),
            request_errors: errors(UpstreamErrorKind::Request),
            timeout_errors: errors(UpstreamErrorKind::Timeout),
            region,
        }
    }

    /// Counts one answered request and its time to response head.
    pub(crate) fn record(&self, status: http::StatusCode, elapsed: std::time::Duration) {
        let code = status.as_u16();
        if let Some(slot) = self.requests.get(usize::from(code).wrapping_sub(100)) {
            let counter = slot.get_or_init(|| {
                let labels = [
                    ("region", self.region.clone()),
                    ("status", code.to_string().into()),
                ];
                metrics::counter!(REQUESTS, &labels)
            });
            counter.increment(1);
        }
        self.duration.record(elapsed.as_secs_f64());
    }

    /// Counts one failed attempt to reach a worker.
    pub(crate) fn upstream_error(&self, kind: UpstreamErrorKind) {
        match kind {
            UpstreamErrorKind::Connect => self.connect_errors.increment(1),
            UpstreamErrorKind::Request => self.request_errors.increment(1),
            UpstreamErrorKind::Timeout => self.timeout_errors.increment(1),
        }
    }
}

/// The `gateway_open_connections` gauge.
pub(crate) fn open_connections() -> Gauge {
    metrics::gauge!(OPEN_CONNECTIONS)
}
