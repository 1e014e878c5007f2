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

/// The metrics in Prometheus text.
pub async fn metrics() -> String {
    crate::metrics::handle().render()
}

/// Ready when Postgres and Redis both answer within the store timeout.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = state.config.store_timeout;
    let pg = tokio::time::timeout(timeout, async {
        let client = state.pg.get().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("timed out".to_owned()));
    let redis = tokio::time::timeout(timeout, state.redis.ping())
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()));
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
