//! SCIM 2.0 under `/api/scim/v2/{team_id}/`: workspace resolution and bearer-token
//! authentication, in front of the resource handlers.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::ids::TeamId;
use shared::token::{self, TokenHash, TokenKind};

use crate::state::AppState;
use crate::store::tokens::{self, TokenRecord};
use crate::store::{StoreError, workspaces};

/// The SCIM media type of every response.
pub const SCIM_JSON: &str = "application/scim+json";

/// The SCIM routes, relative to `/api/scim/v2`.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/{team_id}", axum::routing::any(unknown_endpoint))
        .route("/{team_id}/{*rest}", axum::routing::any(unknown_endpoint))
        .route_layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// A SCIM error response (RFC 7644 §3.12).
pub fn scim_error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_str(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(SCIM_JSON));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"scim\""),
        );
    }
    response
}

fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "store unavailable");
    metrics::counter!(crate::metrics::STORE_UNAVAILABLE).increment(1);
    let mut r = scim_error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "A backing store is unavailable; retry shortly.",
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(crate::error::RETRY_AFTER_SECS),
    );
    r
}

/// The authenticated SCIM caller, placed in request extensions.
#[derive(Debug, Clone)]
pub struct ScimCaller {
    /// The workspace of the URL (equal to the token's).
    pub team_id: TeamId,
    /// The token's record (scopes, grant).
    pub token: TokenRecord,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves the workspace and the caller. Order matters for what a caller learns:
/// a `team_id` that is not a workspace of this region is `404` whatever the token;
/// a missing or invalid token, or one of another workspace, is `401`. The common case
/// (valid token of this workspace) costs one token lookup and no workspace query.
async fn authenticate(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    mut req: Request,
    next: Next,
) -> Response {
    let raw_team = params
        .iter()
        .find(|(k, _)| k == "team_id")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let Ok(team_id) = TeamId::parse(raw_team) else {
        return scim_error(StatusCode::NOT_FOUND, None, "No workspace with this id in this region.");
    };
    let record = match check_token(&state, req.headers()).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    if let Some(token) = record.filter(|r| r.team_id == team_id) {
        req.extensions_mut().insert(ScimCaller { team_id, token });
        return next.run(req).await;
    }
    match workspaces::exists(&state.pg, team_id).await {
        Ok(false) => scim_error(StatusCode::NOT_FOUND, None, "No workspace with this id in this region."),
        Ok(true) => scim_error(
            StatusCode::UNAUTHORIZED,
            None,
            "Missing or invalid bearer token for this workspace's SCIM base URL.",
        ),
        Err(e) => unavailable(e),
    }
}

async fn check_token(state: &AppState, headers: &HeaderMap) -> Result<Option<TokenRecord>, StoreError> {
    let Some(presented) = bearer(headers) else {
        return Ok(None);
    };
    match token::parse_prefix(presented) {
        Some(p) if p.kind == TokenKind::Scim && p.region == state.config.region_id().as_str() => {}
        _ => return Ok(None),
    }
    let hash = TokenHash::of(presented);
    let record = tokens::lookup(&state.pg, &state.redis, &hash, TokenKind::Scim).await;
    metrics::counter!(
        crate::metrics::TOKEN_CHECKS,
        "kind" => "scim",
        "outcome" => match &record { Ok(Some(_)) => "valid", Ok(None) => "invalid", Err(_) => "error" }
    )
    .increment(1);
    record
}

async fn unknown_endpoint() -> Response {
    scim_error(StatusCode::NOT_FOUND, None, "No such SCIM endpoint.")
}
