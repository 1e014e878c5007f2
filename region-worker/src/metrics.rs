//! The worker's metrics: declared here, labelled by route template (never by raw path,
//! user or token), exported in Prometheus text on the admin listener.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by route template, method and status.
pub const HTTP_REQUESTS: &str = "worker_http_requests_total";
/// Request latency, by route template.
pub const HTTP_DURATION: &str = "worker_http_request_duration_seconds";
/// Token checks, by kind and outcome.
pub const TOKEN_CHECKS: &str = "worker_token_checks_total";
/// Store failures answered with 503, by store.
pub const STORE_UNAVAILABLE: &str = "worker_store_unavailable_total";

/// The process-wide Prometheus recorder. The `metrics` facade has one global recorder
/// per process; several workers in one test process share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .expect("static bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed already (another component
            // of the same test process); metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
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
