//! SCIM 2.0 under `/api/scim/v2/{team_id}/`: workspace resolution, bearer-token
//! authentication, scopes and the per-workspace rate limit, in front of the resource
//! handlers (one file per resource). Every error renders the RFC 7644 error body.

pub mod discovery;
pub mod groups;
pub mod io;
pub mod listing;
pub mod refusals;
pub mod roles;
pub mod users;

use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::ids::TeamId;
use shared::scim::error::ScimError;
use shared::scope::Scope;
use shared::token::{self, TokenHash, TokenKind};

use crate::rate_limit::ClientIp;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit;
use crate::store::tokens::{self, TokenRecord};

pub use io::ScimFailure;

/// The authenticated SCIM caller, placed in request extensions.
#[derive(Debug, Clone)]
pub struct ScimCaller {
    /// The workspace of the URL (equal to the token's).
    pub team_id: TeamId,
    /// The token's record (scopes).
    pub token: TokenRecord,
    /// Who acts, for the audit trail: `scim:` and the first 12 hex digits of the
    /// token's hash (never the token).
    pub actor: String,
}

impl ScimCaller {
    /// Refuses the request (`403`) unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ScimFailure> {
        if self.token.has_scope(scope) {
            Ok(())
        } else {
            Err(ScimError::forbidden(format!("this token lacks the {scope} scope")).into())
        }
    }

    /// Refuses the request unless the token carries one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ScimFailure> {
        if scopes.iter().any(|s| self.token.has_scope(*s)) {
            Ok(())
        } else {
            Err(ScimError::forbidden("this token has no SCIM scope").into())
        }
    }
}

/// Resolves the workspace and the caller. Order matters for what a caller learns:
/// a `team_id` that is not a workspace of this region is `404` whatever the token;
/// a missing or invalid token, or one of another workspace, is `401`. The common case
/// (valid token of this workspace) costs one token lookup and no workspace query.
/// The route table layers it on every SCIM route ([`crate::routes`]).
///
/// Once the workspace is known, every refusal (`4xx`) is audited ([`refusals`]) and
/// every event the request records carries the client's request id
/// ([`audit::with_request_id`]).
pub async fn authenticate(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    client: ClientIp,
    mut req: Request,
    next: Next,
) -> Response {
    let raw_team = params
        .iter()
        .find(|(k, _)| k == "team_id")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let not_found = || {
        ScimFailure::from(ScimError::not_found(
            "No workspace with this id in this region. Confirm the SCIM base URL is the region's '…/api/scim/v2/' + app.team_id and the tenant setting team_id holds the workspace ID.",
        ))
        .into_response()
    };
    let Ok(team_id) = TeamId::parse(raw_team) else {
        return not_found();
    };
    let checked = match check_token(&state, req.headers()).await {
        Ok(r) => r,
        Err(e) => return ScimFailure::from(e).into_response(),
    };
    let request = refusals::Request {
        team_id,
        method: req.method().clone(),
        uri: req.uri().clone(),
        request_id: audit::request_id(req.headers()),
    };
    if let Some((token, actor)) = checked.filter(|(r, _)| r.team_id == team_id) {
        if let Err(failure) = rate_limit(&state, team_id).await {
            let response = failure.into_response();
            let detail = request.detail(&response);
            refusals::throttled(&state, &request, &actor, detail, json!({})).await;
            return crate::metrics::scim_answered(team_id, response);
        }
        req.extensions_mut().insert(ScimCaller {
            team_id,
            token,
            actor: actor.clone(),
        });
        let response = audit::with_request_id(request.request_id.clone(), next.run(req)).await;
        if refusals::is_refusal(response.status()) {
            let detail = request.detail(&response);
            refusals::record(&state, &request, &actor, detail).await;
        }
        return crate::metrics::scim_answered(team_id, response);
    }
    // Whether the workspace exists, from the role cache (a workspace always has its
    // roles, and once read they are kept): a refused request costs no Postgres query
    // for a workspace seen before, so made-up tokens do not reach Postgres twice.
    let exists = async {
        if state.roles.known(team_id) {
            return Ok(true);
        }
        let client = state.pg.get().await.map_err(StoreError::from)?;
        Ok::<bool, StoreError>(!state.roles.get(&client, team_id).await?.is_empty())
    };
    match exists.await {
        Ok(false) => not_found(),
        Ok(true) => {
            let response = ScimFailure::from(ScimError::unauthorized(
                "Missing or invalid bearer token for this workspace's SCIM base URL.",
            ))
            .into_response();
            // A client the failed-authentication gate turned away gets its `429` from
            // the gate and costs nothing more: no audit, not even the throttle's.
            let now = state.config.clock.now();
            let now_ms = now.unix_timestamp() * 1000 + i64::from(now.millisecond());
            if state.failed_auth.left(&client.0, now_ms).is_none() {
                let presented = crate::auth_header::bearer(req.headers()).is_some();
                let extra = json!({
                    "reason": if presented { "invalid_token" } else { "missing_token" },
                    "client": client.0,
                });
                let detail = request.detail(&response);
                refusals::throttled(&state, &request, "anonymous", detail, extra).await;
            }
            crate::metrics::scim_answered(team_id, response)
        }
        Err(e) => ScimFailure::from(e).into_response(),
    }
}

async fn check_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(TokenRecord, String)>, StoreError> {
    let Some(presented) = crate::auth_header::bearer(headers) else {
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
    Ok(record?.map(|r| (r, format!("scim:{}", &hash.to_hex()[..12]))))
}

async fn rate_limit(state: &AppState, team_id: TeamId) -> Result<(), ScimFailure> {
    let bucket = format!("rl:scim:{team_id}");
    match crate::rate_limit::take(&state.redis, &bucket, state.config.scim_rate_limit).await? {
        None => Ok(()),
        Some(seconds) => Err(ScimFailure::too_many_requests(
            "Too many SCIM requests for this workspace; retry later.",
            seconds,
        )),
    }
}

/// Any other path under a workspace's SCIM base: `404` in SCIM's format.
pub async fn unknown_endpoint() -> ScimFailure {
    ScimError::not_found("No such SCIM endpoint.").into()
}
