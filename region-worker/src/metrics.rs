//! The worker's metrics: declared here, labelled by route template (never by raw path,
//! user or token), exported in Prometheus text on the admin listener.
//!
//! Label values are bounded: route templates, status codes, reason codes from enums,
//! and a `team_id` only where operators need a workspace (SCIM and Universal Logout:
//! one series per tenant and outcome, and only for workspaces that exist here). The
//! region is not a label: a worker serves one region, so Prometheus adds it as a target
//! label (`deploy/observability/prometheus.yml`). The dashboard and alert rules that
//! read these are in `deploy/observability/`.

use std::sync::Once;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use shared::ids::TeamId;

use crate::error::Protocol;
use crate::state::AppState;

/// Requests served, by route template, method and status.
pub const HTTP_REQUESTS: &str = "worker_http_requests_total";
/// Request latency, by route template.
pub const HTTP_DURATION: &str = "worker_http_request_duration_seconds";
/// Token checks, by kind and outcome.
pub const TOKEN_CHECKS: &str = "worker_token_checks_total";
/// Store failures answered (`503`; Universal Logout `422`), by `protocol`: counted in
/// one place, [`crate::error::store_unavailable`], which every protocol's renderer calls.
pub const STORE_UNAVAILABLE: &str = "worker_store_unavailable_total";

/// SCIM requests that reached a workspace of this region, by `team_id` and `result`
/// ([`scim_answered`]).
pub const SCIM_REQUESTS: &str = "worker_scim_requests_total";
/// Sign-ins, by `method` (`okta`, `link`), `outcome` (`signed_in`, `refused`) and
/// `reason` (the refusal's code, `none` when signed in).
pub const SIGN_INS: &str = "worker_sign_ins_total";
/// 1 when the store answered the last check, by `store` (`postgres`, `redis`).
pub const STORE_UP: &str = "worker_store_up";
/// Postgres pool connections, by `state` (`busy`, `idle`).
pub const PG_POOL_CONNECTIONS: &str = "worker_pg_pool_connections";
/// The Postgres pool's size limit.
pub const PG_POOL_MAX: &str = "worker_pg_pool_max_connections";
/// Requests waiting for a Postgres connection.
pub const PG_POOL_WAITING: &str = "worker_pg_pool_waiting";

/// How often [`upkeep`] drains the recorder's histogram buffers (the gateway's interval).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Drains the recorder's histogram buffers every [`UPKEEP_INTERVAL`] until `stop` turns
/// true. The exporter keeps every histogram sample in a buffer until something drains
/// it, and only a scrape or an upkeep does: a worker that nobody scraped grew by each
/// request's samples, without bound (about 17 bytes a request, 2 MB per 10 minutes at
/// 200 requests/s in the soak; BENCHMARKS.md, "Soak (issue 18)"). Drained, a histogram
/// is its fixed buckets, whatever the traffic.
pub async fn upkeep(mut stop: tokio::sync::watch::Receiver<bool>) {
    let handle = handle();
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = interval.tick() => handle.run_upkeep(),
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// The process-wide Prometheus recorder (shared with the gateway in test processes),
/// with the worker's metrics described once.
pub fn handle() -> PrometheusHandle {
    let handle = shared::telemetry::prometheus();
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe);
    handle
}

/// The `# HELP` text of every worker metric, and a zero for each series an alert
/// selects by a fixed label value, so that a rate over it is 0 rather than no data
/// before the first failure (Prometheus's advice for bounded label sets).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "Requests served, by route template, method and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to the response head, by route template."
    );
    describe_counter!(TOKEN_CHECKS, "Bearer token checks, by kind and outcome.");
    describe_counter!(
        STORE_UNAVAILABLE,
        "Requests answered 503 (Universal Logout 422) because a store failed, by protocol."
    );
    describe_counter!(
        SCIM_REQUESTS,
        "SCIM requests to a workspace of this region, by team_id and result (ok, unauthorized, forbidden, rate_limited, client_error, server_error)."
    );
    describe_counter!(
        SIGN_INS,
        "Sign-ins, by method (okta, link), outcome (signed_in, refused) and refusal reason."
    );
    describe_counter!(
        crate::routes::universal_logout::UNIVERSAL_LOGOUTS,
        "Universal Logout requests, by status, reason and team_id (none until a workspace is known)."
    );
    describe_counter!(
        crate::okta::jwks::JWKS_FETCHES,
        "Fetches of Okta orgs' signing key sets, by outcome (ok, error)."
    );
    describe_counter!(
        crate::routes::failed_auth::BLOCKED,
        "Requests turned away because their address failed authentication too often, by host."
    );
    describe_counter!(
        crate::store::revocations::CATCH_UPS,
        "Times the revocation journal was re-read after a missed notification."
    );
    describe_gauge!(
        STORE_UP,
        "1 when the store answered the last check (each /metrics scrape and /readyz), by store."
    );
    describe_gauge!(
        PG_POOL_CONNECTIONS,
        "Postgres pool connections, by state (busy, idle)."
    );
    describe_gauge!(PG_POOL_MAX, "The Postgres pool's size limit.");
    describe_gauge!(
        PG_POOL_WAITING,
        "Requests waiting for a Postgres connection."
    );
    for outcome in ["ok", "error"] {
        metrics::counter!(crate::okta::jwks::JWKS_FETCHES, "outcome" => outcome).increment(0);
    }
    for host in ["api", "app"] {
        metrics::counter!(crate::routes::failed_auth::BLOCKED, "host" => host).increment(0);
    }
    metrics::counter!(crate::store::revocations::CATCH_UPS).increment(0);
    for protocol in Protocol::ALL {
        metrics::counter!(STORE_UNAVAILABLE, "protocol" => protocol.label()).increment(0);
    }
}

/// Counts a SCIM answer to `team_id`, a workspace of this region, by what it means for
/// the tenant's Okta: served, or refused (bad token, missing scope, rate limit), or
/// failed. Called by [`crate::routes::scim::authenticate`] once the workspace is known
/// to exist, so a made-up `team_id` never becomes a series.
pub fn scim_answered(team_id: TeamId, response: Response) -> Response {
    let result = scim_result(response.status());
    metrics::counter!(SCIM_REQUESTS, "team_id" => team_id.to_string(), "result" => result)
        .increment(1);
    response
}

/// The `result` label of a SCIM answer: the refusals Okta cannot get past by retrying
/// apart, the other 4xx (a missing user, a conflict) together.
fn scim_result(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        429 => "rate_limited",
        _ if status.is_server_error() => "server_error",
        _ if status.is_client_error() => "client_error",
        _ => "ok",
    }
}

/// Whether each store answers within the store timeout (`Err` carries why, for
/// `/readyz`), recorded in [`STORE_UP`] with the Postgres pool's occupancy. Run on each
/// scrape, so the gauges are as fresh as the scrape and a worker that no request
/// reaches still reports an outage.
pub async fn check_stores(state: &AppState) -> (Result<(), String>, Result<(), String>) {
    let timeout = state.config.store_timeout;
    // Both at once, so a hung store costs a scrape one store timeout, not two.
    let (pg, redis) = tokio::join!(
        async {
            tokio::time::timeout(timeout, async {
                let client = state.pg.get().await.map_err(|e| e.to_string())?;
                client
                    .simple_query("SELECT 1")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()))
        },
        async {
            tokio::time::timeout(timeout, state.redis.ping())
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()))
        },
    );
    let up = |r: &Result<(), String>| if r.is_ok() { 1.0 } else { 0.0 };
    metrics::gauge!(STORE_UP, "store" => "postgres").set(up(&pg));
    metrics::gauge!(STORE_UP, "store" => "redis").set(up(&redis));
    let pool = state.pg.status();
    let busy = pool.size.saturating_sub(pool.available);
    metrics::gauge!(PG_POOL_CONNECTIONS, "state" => "busy").set(busy as f64);
    metrics::gauge!(PG_POOL_CONNECTIONS, "state" => "idle").set(pool.available as f64);
    metrics::gauge!(PG_POOL_MAX).set(pool.max_size as f64);
    metrics::gauge!(PG_POOL_WAITING).set(pool.waiting as f64);
    (pg, redis)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_results_tell_refusals_from_failures() {
        let result = |code: u16| scim_result(StatusCode::from_u16(code).unwrap());
        assert_eq!(result(200), "ok");
        assert_eq!(result(201), "ok");
        assert_eq!(result(204), "ok");
        assert_eq!(result(401), "unauthorized");
        assert_eq!(result(403), "forbidden");
        assert_eq!(result(429), "rate_limited");
        assert_eq!(result(404), "client_error");
        assert_eq!(result(409), "client_error");
        assert_eq!(result(503), "server_error");
    }
}
