//! The process-wide Prometheus recorder. The `metrics` facade has exactly one global
//! recorder per process; the gateway and the worker both install it through this
//! function so that, when several of them run in one process (the integration tests),
//! they share one registry instead of one of them silently recording into nothing.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Upper bounds of every `*_duration_seconds` histogram: from sub-millisecond
/// proxying to a 30 s upstream timeout.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Installs the recorder on first call and returns its handle (the same one after).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Only this function installs a recorder, and only once.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
