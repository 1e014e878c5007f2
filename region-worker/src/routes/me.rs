//! The product's protected endpoints as personal tokens reach them: `GET /api/me` takes
//! an API token, `GET /api/mcp/whoami` an MCP token, each answering who the token acts
//! for. They read nothing but the token check (one Redis round trip), which makes them
//! the measure of token-check throughput in `BENCHMARKS.md`; a revoked token, or one
//! whose user was logged out by Okta, is refused with `401` on the very next request.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::tokens::TokenApiError;
use super::tokens::auth::{Caller, caller};
use crate::state::AppState;
use crate::store::personal_tokens::PersonalKind;

/// `GET /api/me` with an API token.
pub async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, TokenApiError> {
    let who = caller(&state, &headers, PersonalKind::Api).await?;
    Ok(identity(&state, &who))
}

/// `GET /api/mcp/whoami` with an MCP token.
pub async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, TokenApiError> {
    let who = caller(&state, &headers, PersonalKind::Mcp).await?;
    Ok(identity(&state, &who))
}

fn identity(state: &AppState, who: &Caller) -> Response {
    Json(json!({
        "user_id": who.owner.user_id,
        "team_id": who.owner.team_id,
        "region": state.config.region_id(),
        "token_kind": who.kind.code(),
        "token_expires_at": who.record.expires_at,
    }))
    .into_response()
}
