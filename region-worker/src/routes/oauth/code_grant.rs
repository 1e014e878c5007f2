//! The `authorization_code` grant (RFC 6749 §4.1.3): redeems a code once, for the
//! client, redirect URI and PKCE verifier it is bound to, connecting its grant and
//! issuing the first token pair. A code presented after it was redeemed revokes the
//! grant and everything it issued (§4.1.2).

use serde_json::json;
use shared::token::{self, TokenHash, TokenKind};

use super::error::OAuthError;
use super::issue::{self, Pair, TokenResponse};
use super::params::Params;
use super::revoke::{needs_publish, revoke_in};
use crate::config::ScimOAuthConfig;
use crate::pkce;
use crate::state::AppState;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::grants::{self, RevokeReason};
use crate::store::tokens;

const INVALID_CODE: &str = "the authorization code is invalid, expired or already used";

/// Runs the grant for an authenticated client.
pub async fn redeem(
    state: &AppState,
    server: &ScimOAuthConfig,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = params
        .get("code")?
        .ok_or(OAuthError::InvalidRequest("code is required"))?;
    let redirect_uri = params
        .get("redirect_uri")?
        .ok_or(OAuthError::InvalidRequest(
            "redirect_uri is required: repeat the one sent to the authorize endpoint",
        ))?;
    let verifier = params.get("code_verifier")?;
    match token::parse_prefix(code) {
        Some(p)
            if p.kind == TokenKind::OneTime && p.region == state.config.region_id().as_str() => {}
        _ => return Err(OAuthError::InvalidGrant(INVALID_CODE)),
    }
    let hash = TokenHash::of(code);
    let actor = format!("oauth-client:{}", server.client_id);
    let Some(bound) = grants::take_code(&state.redis, &hash).await? else {
        detect_reuse(state, &hash, &actor).await?;
        return Err(OAuthError::InvalidGrant(INVALID_CODE));
    };
    let now = state.config.clock.now();
    if bound.expires_at <= now.unix_timestamp() {
        return Err(OAuthError::InvalidGrant(
            "the authorization code has expired",
        ));
    }
    if bound.client_id != server.client_id {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was issued to another client",
        ));
    }
    if bound.redirect_uri != redirect_uri {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    match (bound.code_challenge.as_deref(), verifier) {
        (None, None) => {}
        (Some(challenge), Some(v)) if pkce::verify(challenge, v) => {}
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidGrant(
                "code_verifier does not match the code_challenge",
            ));
        }
        (Some(_), None) => {
            return Err(OAuthError::InvalidGrant(
                "code_verifier is required: the authorization request sent a code_challenge",
            ));
        }
        // Refused so that PKCE cannot be stripped from the authorization request.
        (None, Some(_)) => {
            return Err(OAuthError::InvalidGrant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ));
        }
    }
    let mut client = state.pg.get().await?;
    let tx = client.transaction().await?;
    if !grants::mark_redeemed(&tx, bound.grant_id).await? {
        return Err(OAuthError::InvalidGrant(INVALID_CODE));
    }
    let issued = issue::issue(
        &tx,
        state,
        server,
        &Pair {
            team_id: bound.team_id,
            grant_id: bound.grant_id,
            access_scopes: &bound.scopes,
            refresh_scopes: &bound.scopes,
            now,
        },
    )
    .await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(bound.team_id),
            actor: &actor,
            action: AuditAction::ScimOAuthTokenIssued,
            target: Some(&bound.grant_id.to_string()),
            detail: json!({ "grant_type": "authorization_code", "scopes": bound.scopes }),
        },
    )
    .await?;
    tx.commit().await?;
    issued.prime(state).await;
    tracing::info!(team_id = %bound.team_id, grant_id = %bound.grant_id, "SCIM OAuth grant connected");
    Ok(issued.response)
}

/// A code that Redis no longer holds: unknown, expired, or already redeemed. In the
/// last case this is reuse, and the grant it connected is revoked.
async fn detect_reuse(state: &AppState, hash: &TokenHash, actor: &str) -> Result<(), OAuthError> {
    let mut client = state.pg.get().await?;
    let tx = client.transaction().await?;
    let Some(history) = grants::by_code(&tx, hash).await? else {
        return Ok(());
    };
    if !history.redeemed {
        return Ok(());
    }
    let outcome = revoke_in(
        &tx,
        history.grant_id,
        Some(history.team_id),
        RevokeReason::CodeReuse,
        actor,
    )
    .await?;
    tx.commit().await?;
    if needs_publish(outcome) {
        tokens::publish_grant_revoked(&state.redis, history.grant_id).await?;
    }
    Ok(())
}
