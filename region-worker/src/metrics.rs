//! The worker's metrics: declared here, labelled by route template (never by raw path,
//! user or token), exported in Prometheus text on the admin listener.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;

/// Requests served, by route template, method and status.
pub const HTTP_REQUESTS: &str = "worker_http_requests_total";
/// Request latency, by route template.
pub const HTTP_DURATION: &str = "worker_http_request_duration_seconds";
/// Token checks, by kind and outcome.
pub const TOKEN_CHECKS: &str = "worker_token_checks_total";
/// Store failures answered (`503`; Universal Logout `422`), by `protocol`: counted in
/// one place, [`crate::error::store_unavailable`], which every protocol's renderer calls.
pub const STORE_UNAVAILABLE: &str = "worker_store_unavailable_total";

/// The process-wide Prometheus recorder (shared with the gateway in test processes).
pub fn handle() -> PrometheusHandle {
    shared::telemetry::prometheus()
}

/// Middleware counting requests and timing them by route template.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route).record(start.elapsed().as_secs_f64());
    response
}
