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
//! - `gateway_retries_total{region}`: attempts on another replica after a failure.
//! - `gateway_worker_requests_total{region,worker}` and
//!   `gateway_worker_duration_seconds{region,worker}`: attempts sent to each worker and
//!   their time to response head.
//! - `gateway_worker_errors_total{region,worker,kind}`: the same failures as
//!   `gateway_upstream_errors_total`, per worker.
//! - `gateway_worker_ejections_total{region,worker,reason}`: a worker taken out of the
//!   balancer, `reason` `connect` (passive) or `health` (active checks).
//! - `gateway_worker_healthy{region,worker}`: 1 when the active checks pass.
//! - `gateway_open_connections{listener}`: open client connections, `listener` `http`
//!   or `https`.
//! - `gateway_shed_connections_total{reason}`: connections answered `503` and closed,
//!   `reason` `global` or `per_ip`.
//! - `gateway_tls_certificate_expiry_timestamp_seconds{host,path}`: the `notAfter` of
//!   each `[gateway] certificates` entry's leaf, set when certificates load and on each
//!   reload (`host` is the entry's first host name, `path` its certificate file).
//!
//! Handles are registered once when the routing table is built (per status code,
//! lazily on first use), so the request path only touches atomics: no key is built,
//! hashed or allocated per request.
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
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, SharedString};
use metrics_exporter_prometheus::PrometheusHandle;
use shared::ids::RegionId;

use crate::error::UpstreamErrorKind;

const REQUESTS: &str = "gateway_requests_total";
const DURATION: &str = "gateway_request_duration_seconds";
const UPSTREAM_ERRORS: &str = "gateway_upstream_errors_total";
const RETRIES: &str = "gateway_retries_total";
const WORKER_REQUESTS: &str = "gateway_worker_requests_total";
const WORKER_DURATION: &str = "gateway_worker_duration_seconds";
const WORKER_ERRORS: &str = "gateway_worker_errors_total";
const WORKER_EJECTIONS: &str = "gateway_worker_ejections_total";
const WORKER_HEALTHY: &str = "gateway_worker_healthy";
const OPEN_CONNECTIONS: &str = "gateway_open_connections";
const SHED: &str = "gateway_shed_connections_total";
const CERT_EXPIRY: &str = "gateway_tls_certificate_expiry_timestamp_seconds";

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
    metrics::describe_counter!(RETRIES, "Attempts on another replica after a failure.");
    metrics::describe_counter!(WORKER_REQUESTS, "Attempts sent to each worker.");
    metrics::describe_histogram!(
        WORKER_DURATION,
        metrics::Unit::Seconds,
        "Time from sending to a worker to its response head."
    );
    metrics::describe_counter!(WORKER_ERRORS, "Failed attempts, by worker and kind.");
    metrics::describe_counter!(
        WORKER_EJECTIONS,
        "Workers taken out of balancing, by reason (connect, health)."
    );
    metrics::describe_gauge!(WORKER_HEALTHY, "1 when the worker's health checks pass.");
    metrics::describe_gauge!(OPEN_CONNECTIONS, "Open client connections, by listener.");
    metrics::describe_counter!(SHED, "Connections refused with 503 by a connection limit.");
    metrics::describe_gauge!(
        CERT_EXPIRY,
        metrics::Unit::Seconds,
        "notAfter of each served TLS certificate, as a Unix timestamp, by first host and file."
    );
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
    /// `gateway_retries_total{region}`.
    retries: Counter,
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
            retries: if has_upstreams {
                metrics::counter!(RETRIES, "region" => region.clone())
            } else {
                Counter::noop()
            },
            region,
        }
    }

    /// Counts one answered request and its time to response head.
    pub(crate) fn record(&self, status: http::StatusCode, elapsed: Duration) {
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

    /// Counts one retry on another replica.
    pub(crate) fn retried(&self) {
        self.retries.increment(1);
    }
}

/// Why a worker was taken out of balancing: the `reason` label of
/// `gateway_worker_ejections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EjectReason {
    /// A connection to it failed (passive).
    Connect,
    /// Its health checks failed (active).
    Health,
}

/// The metric handles of one worker.
#[derive(Debug)]
pub(crate) struct WorkerMetrics {
    /// `gateway_worker_requests_total`.
    requests: Counter,
    /// `gateway_worker_duration_seconds`.
    duration: Histogram,
    /// `gateway_worker_errors_total`, by [`UpstreamErrorKind`] in declaration order.
    errors: [Counter; 3],
    /// `gateway_worker_ejections_total{reason="connect"}`.
    ejected_connect: Counter,
    /// `gateway_worker_ejections_total{reason="health"}`.
    ejected_health: Counter,
    /// `gateway_worker_healthy`.
    healthy: Gauge,
}

impl WorkerMetrics {
    /// Handles for worker `addr` of `region`.
    pub(crate) fn new(region: &RegionId, addr: &str) -> Self {
        let region = SharedString::from(region.as_str().to_owned());
        let worker = SharedString::from(addr.to_owned());
        let labels = [("region", region.clone()), ("worker", worker.clone())];
        let with = |key: &'static str, value: &'static str| {
            [
                ("region", region.clone()),
                ("worker", worker.clone()),
                (key, SharedString::const_str(value)),
            ]
        };
        let error =
            |kind: UpstreamErrorKind| metrics::counter!(WORKER_ERRORS, &with("kind", kind.label()));
        let healthy = metrics::gauge!(WORKER_HEALTHY, &labels);
        healthy.set(1.0);
        Self {
            requests: metrics::counter!(WORKER_REQUESTS, &labels),
            duration: metrics::histogram!(WORKER_DURATION, &labels),
            errors: [
                error(UpstreamErrorKind::Connect),
                error(UpstreamErrorKind::Request),
                error(UpstreamErrorKind::Timeout),
            ],
            ejected_connect: metrics::counter!(WORKER_EJECTIONS, &with("reason", "connect")),
            ejected_health: metrics::counter!(WORKER_EJECTIONS, &with("reason", "health")),
            healthy,
        }
    }

    /// Counts an attempt that got a response head after `elapsed`.
    pub(crate) fn answered(&self, elapsed: Duration) {
        self.requests.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }

    /// Counts an attempt that failed.
    pub(crate) fn failed(&self, kind: UpstreamErrorKind) {
        self.requests.increment(1);
        let index = match kind {
            UpstreamErrorKind::Connect => 0,
            UpstreamErrorKind::Request => 1,
            UpstreamErrorKind::Timeout => 2,
        };
        self.errors[index].increment(1);
    }

    /// Counts an ejection.
    pub(crate) fn ejected(&self, reason: EjectReason) {
        match reason {
            EjectReason::Connect => self.ejected_connect.increment(1),
            EjectReason::Health => self.ejected_health.increment(1),
        }
    }

    /// Sets the health gauge.
    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.set(if healthy { 1.0 } else { 0.0 });
    }
}

/// The `gateway_open_connections{listener}` gauge.
pub(crate) fn open_connections(listener: &'static str) -> Gauge {
    metrics::gauge!(OPEN_CONNECTIONS, "listener" => listener)
}

/// The `gateway_shed_connections_total{reason}` counter.
pub(crate) fn shed(reason: &'static str) -> Counter {
    metrics::counter!(SHED, "reason" => reason)
}

/// Sets `gateway_tls_certificate_expiry_timestamp_seconds` for one certificate entry.
pub(crate) fn certificate_expiry(host: &str, path: &std::path::Path, not_after: i64) {
    let labels = [
        ("host", SharedString::from(host.to_owned())),
        ("path", SharedString::from(path.display().to_string())),
    ];
    metrics::gauge!(CERT_EXPIRY, &labels).set(not_after as f64);
}
