//! `POST {api}/api/mcp/oauth/token`: the MCP authorization server's token endpoint, for
//! public clients (no client authentication: the code is bound to the client, its
//! redirect URI and a PKCE challenge, and refresh tokens to the client).
//!
//! - `authorization_code` redeems a code once, for everything it is bound to; a code
//!   presented after it was redeemed ends the grant it connected (RFC 6749 §4.1.2).
//! - `refresh_token` rotates the refresh token on every use; a rotated one presented
//!   again ends the whole grant (reuse detection), and a refresh after the user's
//!   Universal Logout or deactivation is refused.
//!
//! Access tokens are the region's MCP tokens (`clk_{region}_mcp_…`, an hour), whose
//! audience is the resource the grant names; errors are RFC 6749 §5.2 JSON.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use shared::token::{self, TokenHash, TokenKind};
use time::Duration;

use super::resource;
use crate::body::BodyError;
use crate::pkce;
use crate::rate_limit::{self, ClientIp};
use crate::routes::oauth::error::{STORE_UNAVAILABLE_DESCRIPTION, json_error, no_store};
use crate::routes::oauth::params::{Params, Repeated};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::mcp::{self, EndReason, GrantRow};

/// How long an access token lives: short, since it is checked by epoch and grant.
pub const ACCESS_TTL: Duration = Duration::hours(1);
/// How long a refresh token lives unused.
pub const REFRESH_IDLE_TTL: Duration = Duration::days(30);

const INVALID_CODE: &str = "the authorization code is invalid, expired or already used";
const INVALID_REFRESH: &str = "the refresh token is invalid, expired or revoked";

/// An error at the token or revocation endpoint. Descriptions are fixed text.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A parameter is missing, repeated or malformed.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The code or refresh token is not (or no longer) good for this client.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// The `resource` is not this region's MCP endpoint (RFC 8707).
    #[error("{0}")]
    InvalidTarget(&'static str),
    /// A scope the grant does not hold.
    #[error("{0}")]
    InvalidScope(&'static str),
    /// A grant type other than the two supported.
    #[error("{0}")]
    UnsupportedGrantType(&'static str),
    /// The body is over the limit.
    #[error("the request body is too large")]
    TooLarge,
    /// The client's refused requests emptied its bucket.
    #[error("too many refused requests from this client; retry later")]
    TooMany {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A store is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Repeated> for TokenError {
    fn from(_: Repeated) -> Self {
        TokenError::InvalidRequest("a parameter is repeated")
    }
}

impl From<tokio_postgres::Error> for TokenError {
    fn from(e: tokio_postgres::Error) -> Self {
        TokenError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for TokenError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TokenError::Store(e.into())
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let (code, status) = match &self {
            TokenError::InvalidRequest(_) => ("invalid_request", StatusCode::BAD_REQUEST),
            TokenError::InvalidGrant(_) => ("invalid_grant", StatusCode::BAD_REQUEST),
            TokenError::InvalidTarget(_) => ("invalid_target", StatusCode::BAD_REQUEST),
            TokenError::InvalidScope(_) => ("invalid_scope", StatusCode::BAD_REQUEST),
            TokenError::UnsupportedGrantType(_) => {
                ("unsupported_grant_type", StatusCode::BAD_REQUEST)
            }
            TokenError::TooLarge => ("invalid_request", StatusCode::PAYLOAD_TOO_LARGE),
            TokenError::TooMany { .. } => ("too_many_requests", StatusCode::TOO_MANY_REQUESTS),
            TokenError::Store(_) => ("temporarily_unavailable", StatusCode::SERVICE_UNAVAILABLE),
        };
        let description = match &self {
            TokenError::Store(e) => {
                let outage = crate::error::store_unavailable(crate::error::Protocol::OAuth, e);
                let mut r = json_error(status, code, STORE_UNAVAILABLE_DESCRIPTION);
                outage.set_retry_after(r.headers_mut());
                return r;
            }
            other => other.to_string(),
        };
        tracing::info!(error = code, reason = %description, "MCP token request refused");
        let mut response = json_error(status, code, &description);
        if let TokenError::TooMany { retry_after } = self {
            crate::error::set_retry_after(response.headers_mut(), retry_after);
        }
        response
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct Tokens {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
    scope: String,
}

impl IntoResponse for Tokens {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        no_store(response.headers_mut());
        response
    }
}

/// Reads a form body for the token and revocation endpoints.
pub async fn form(headers: &HeaderMap, body: Body) -> Result<Params, TokenError> {
    if !crate::body::is_form(headers) {
        return Err(TokenError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let body = match crate::body::read_limited(body, crate::body::MAX_SMALL_BODY).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(TokenError::TooLarge),
        Err(BodyError::Unreadable) => {
            return Err(TokenError::InvalidRequest("the body could not be read"));
        }
    };
    let params = Params::parse(&body);
    if params.first_repeated().is_some() {
        return Err(TokenError::InvalidRequest("a parameter is repeated"));
    }
    Ok(params)
}

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    caller: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match form(&headers, body).await {
        Ok(params) => exchange(&state, &params).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(tokens) => tokens.into_response(),
        // Refused requests count against the client's address: what the limit slows
        // down is guessing codes and refresh tokens.
        Err(e) if !matches!(e, TokenError::Store(_)) => {
            super::count("token", "refused");
            match rate_limit::take_for_client(&state, "mcp-token", &caller).await {
                Some(wait) => TokenError::TooMany { retry_after: wait }.into_response(),
                None => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

async fn exchange(state: &AppState, params: &Params) -> Result<Tokens, TokenError> {
    let client_id = params
        .get("client_id")?
        .ok_or(TokenError::InvalidRequest("client_id is required"))?;
    match params.get("grant_type")? {
        Some("authorization_code") => redeem(state, client_id, params).await,
        Some("refresh_token") => refresh(state, client_id, params).await,
        Some(_) => Err(TokenError::UnsupportedGrantType(
            "grant_type must be authorization_code or refresh_token",
        )),
        None => Err(TokenError::InvalidRequest("grant_type is required")),
    }
}

/// Whether `presented` has the visible prefix of a `kind` of this region.
fn ours(state: &AppState, presented: &str, kind: TokenKind) -> bool {
    token::parse_prefix(presented)
        .is_some_and(|p| p.kind == kind && p.region == state.config.region_id().as_str())
}

async fn redeem(state: &AppState, client_id: &str, params: &Params) -> Result<Tokens, TokenError> {
    let code = params
        .get("code")?
        .ok_or(TokenError::InvalidRequest("code is required"))?;
    let redirect_uri = params
        .get("redirect_uri")?
        .ok_or(TokenError::InvalidRequest(
            "redirect_uri is required: repeat the one sent to the authorize endpoint",
        ))?;
    let verifier = params
        .get("code_verifier")?
        .ok_or(TokenError::InvalidRequest(
            "code_verifier is required (PKCE)",
        ))?;
    let requested = params.get("resource")?.ok_or(TokenError::InvalidRequest(
        "resource is required: the MCP server's URL (RFC 8707)",
    ))?;
    if requested != resource(state) {
        return Err(TokenError::InvalidTarget(
            "resource must be this region's MCP server URL",
        ));
    }
    if !ours(state, code, TokenKind::OneTime) {
        return Err(TokenError::InvalidGrant(INVALID_CODE));
    }
    let hash = TokenHash::of(code);
    let Some(bound) = mcp::take_code(&state.redis, &hash).await? else {
        detect_reuse(state, &hash).await?;
        return Err(TokenError::InvalidGrant(INVALID_CODE));
    };
    let now = state.config.clock.now();
    if bound.expires_at <= now.unix_timestamp() {
        return Err(TokenError::InvalidGrant(
            "the authorization code has expired",
        ));
    }
    if bound.client_id != client_id {
        return Err(TokenError::InvalidGrant(
            "the authorization code was issued to another client",
        ));
    }
    if bound.redirect_uri != redirect_uri {
        return Err(TokenError::InvalidGrant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !pkce::verify(&bound.code_challenge, verifier) {
        return Err(TokenError::InvalidGrant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if bound.resource != requested {
        return Err(TokenError::InvalidTarget(
            "resource differs from the authorization request's",
        ));
    }
    let mut client = state.pg.get().await?;
    let tx = client.transaction().await?;
    let Some(grant) = mcp::lock_grant(&tx, bound.grant_id).await? else {
        return Err(TokenError::InvalidGrant(INVALID_CODE));
    };
    if grant.revoked || !grant.user_current || !mcp::mark_redeemed(&tx, grant.id).await? {
        return Err(TokenError::InvalidGrant(INVALID_CODE));
    }
    let minted = mcp::mint_pair(
        &tx,
        state.config.region_id(),
        &grant,
        now + ACCESS_TTL,
        now + REFRESH_IDLE_TTL,
    )
    .await?;
    audit_tokens(
        &tx,
        &grant,
        AuditAction::McpTokenIssued,
        "authorization_code",
    )
    .await?;
    tx.commit().await?;
    minted.prime(&state.redis).await;
    super::count("token", "issued");
    tracing::info!(team_id = %grant.team_id, grant_id = %grant.id, "MCP grant connected");
    Ok(response(minted, &grant))
}

fn response(minted: mcp::Minted, grant: &GrantRow) -> Tokens {
    Tokens {
        access_token: minted.access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TTL.whole_seconds(),
        refresh_token: minted.refresh_token,
        scope: grant.scopes.join(" "),
    }
}

async fn audit_tokens(
    client: &impl crate::store::pg::GenericClient,
    grant: &GrantRow,
    action: AuditAction,
    grant_type: &str,
) -> Result<(), StoreError> {
    audit::record(
        client,
        &AuditEvent {
            team_id: Some(grant.team_id),
            actor: &format!("mcp-client:{}", grant.client_id),
            action,
            target: Some(&grant.id.to_string()),
            detail: json!({ "grant_type": grant_type, "user_id": grant.user_id }),
        },
    )
    .await
}

/// Ends `grant` for `reason` in `tx` and audits it; the caller commits.
pub async fn end_in(
    tx: &impl crate::store::pg::GenericClient,
    state: &AppState,
    grant: &GrantRow,
    reason: EndReason,
) -> Result<(), StoreError> {
    if mcp::end_grant(tx, &state.redis, grant.id, None, reason)
        .await?
        .is_some()
    {
        audit::record(
            tx,
            &AuditEvent {
                team_id: Some(grant.team_id),
                actor: &format!("mcp-client:{}", grant.client_id),
                action: AuditAction::McpGrantRevoked,
                target: Some(&grant.id.to_string()),
                detail: json!({ "reason": reason.as_str(), "user_id": grant.user_id }),
            },
        )
        .await?;
        tracing::warn!(grant_id = %grant.id, reason = reason.as_str(), "MCP grant ended");
    }
    Ok(())
}

/// A code Redis no longer holds: unknown, expired, or already redeemed. In the last
/// case this is reuse, by whichever client (the code leaked), and the grant it
/// connected ends.
async fn detect_reuse(state: &AppState, hash: &TokenHash) -> Result<(), TokenError> {
    let mut client = state.pg.get().await?;
    let tx = client.transaction().await?;
    let Some(grant) = mcp::grant_by_code(&tx, hash).await? else {
        return Ok(());
    };
    if !grant.redeemed || grant.revoked {
        return Ok(());
    }
    end_in(&tx, state, &grant, EndReason::CodeReuse).await?;
    tx.commit().await?;
    Ok(())
}

async fn refresh(state: &AppState, client_id: &str, params: &Params) -> Result<Tokens, TokenError> {
    let presented = params
        .get("refresh_token")?
        .ok_or(TokenError::InvalidRequest("refresh_token is required"))?;
    if let Some(r) = params.get("resource")?
        && r != resource(state)
    {
        return Err(TokenError::InvalidTarget(
            "resource must be this region's MCP server URL",
        ));
    }
    if let Some(s) = params.get("scope")?
        && !s
            .split(' ')
            .filter(|p| !p.is_empty())
            .all(|p| p == super::SCOPE)
    {
        return Err(TokenError::InvalidScope(
            "a refresh may narrow the grant's scopes but never widen them",
        ));
    }
    if !ours(state, presented, TokenKind::Refresh) {
        return Err(TokenError::InvalidGrant(INVALID_REFRESH));
    }
    let hash = TokenHash::of(presented);
    let now = state.config.clock.now();
    let mut client = state.pg.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = mcp::lock_refresh(&tx, &hash).await? else {
        return Err(TokenError::InvalidGrant(INVALID_REFRESH));
    };
    let grant = row.grant;
    if grant.client_id != client_id || grant.revoked {
        return Err(TokenError::InvalidGrant(INVALID_REFRESH));
    }
    if row.retired {
        end_in(&tx, state, &grant, EndReason::RefreshTokenReuse).await?;
        tx.commit().await?;
        return Err(TokenError::InvalidGrant(
            "the refresh token was already used; the grant is revoked",
        ));
    }
    if row.expires_at <= now.unix_timestamp() {
        return Err(TokenError::InvalidGrant(INVALID_REFRESH));
    }
    if !grant.user_current {
        return Err(TokenError::InvalidGrant(
            "the user was signed out or deactivated; authorize again",
        ));
    }
    mcp::retire_refresh(&tx, &hash).await?;
    let minted = mcp::mint_pair(
        &tx,
        state.config.region_id(),
        &grant,
        now + ACCESS_TTL,
        now + REFRESH_IDLE_TTL,
    )
    .await?;
    audit_tokens(&tx, &grant, AuditAction::McpTokenRefreshed, "refresh_token").await?;
    tx.commit().await?;
    minted.prime(&state.redis).await;
    super::count("token", "refreshed");
    Ok(response(minted, &grant))
}
