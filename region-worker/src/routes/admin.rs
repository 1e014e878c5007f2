//! The admin listener's handlers: liveness, readiness (both stores answer) and
//! Prometheus metrics. It is never exposed on the public port; its routes are in
//! [`crate::routes::admin_router`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// Live as long as it answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The metrics in Prometheus text, with the stores checked first so that their gauges
/// are as fresh as the scrape.
pub async fn metrics(State(state): State<AppState>) -> String {
    let _ = crate::metrics::check_stores(&state).await;
    crate::metrics::handle().render()
}

/// Ready when Postgres and Redis both answer within the store timeout.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (pg, redis) = crate::metrics::check_stores(&state).await;
    let ok = pg.is_ok() && redis.is_ok();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let describe = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    (
        status,
        axum::Json(json!({
            "region": state.config.region.id,
            "postgres": describe(&pg),
            "redis": describe(&redis),
        })),
    )
}
