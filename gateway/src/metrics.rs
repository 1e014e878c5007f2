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
//! [`install`] builds the Prometheus recorder on its first call, installs it globally and
//! keeps its handle in a `OnceLock`; later calls return the same handle. So several
//! gateways in one process (as in the integration tests) share one registry: their
//! series add up, and each one's `/metrics` shows them all. A test therefore asserts
//! that a series is present and has grown, never an exact process-wide count.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use shared::ids::RegionId;

use crate::error::UpstreamErrorKind;

const REQUESTS: &str = "gateway_requests_total";
const DURATION: &str = "gateway_request_duration_seconds";
const UPSTREAM_ERRORS: &str = "gateway_upstream_errors_total";
const OPEN_CONNECTIONS: &str = "gateway_open_connections";

/// Upper bounds of the duration histogram, in seconds: from sub-millisecond proxying
/// to the 30 s upstream timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The handle of the process-wide recorder; see the module docs.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
pub(crate) fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), DURATION_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed in this process; \
                     /metrics will not show the gateway's metrics"
                );
            }
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
        })
        .clone()
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
        Self::labelled(SharedString::from(region.as_str().to_owned()))
    }

    /// Handles for requests no region serves.
    pub(crate) fn unrouted() -> Self {
        Self::labelled(SharedString::const_str("none"))
    }

    fn labelled(region: SharedString) -> Self {
        let errors = |kind: UpstreamErrorKind| {
            metrics::counter!(UPSTREAM_ERRORS, "region" => region.clone(), "kind" => kind.label())
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
            slot.get_or_init(|| {
                metrics::counter!(REQUESTS, "region" => self.region.clone(), "status" => code.to_string())
            })
            .increment(1);
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
