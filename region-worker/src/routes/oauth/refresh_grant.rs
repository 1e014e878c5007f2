//! The `refresh_token` grant (RFC 6749 §6): rotates the refresh token on every use with
//! a fresh idle expiry, and issues a new access token whose scopes may be narrowed but
//! never widened. A refresh token presented after it was rotated revokes the whole
//! grant (reuse detection): either the client or an attacker holds a stolen copy.

use serde_json::json;
use shared::scope;
use shared::token::{self, TokenHash, TokenKind};

use super::error::OAuthError;
use super::issue::{self, Pair, TokenResponse};
use super::params::Params;
use super::revoke::{needs_publish, revoke_in};
use crate::config::ScimOAuthConfig;
use crate::state::AppState;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::grants::{self, RevokeReason};
use crate::store::tokens;

const INVALID_REFRESH: &str = "the refresh token is invalid, expired or revoked";

/// Runs the grant for an authenticated client.
pub async fn rotate(
    state: &AppState,
    server: &ScimOAuthConfig,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let presented = params
        .get("refresh_token")?
        .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
    let requested = match params.get("scope")? {
        None => None,
        Some(s) => {
            let list = scope::parse_list(s).map_err(|_| {
                OAuthError::InvalidScope("scopes are scim.read, scim.write and entitlements.read")
            })?;
            (!list.is_empty()).then_some(list)
        }
    };
    match token::parse_prefix(presented) {
        Some(p)
            if p.kind == TokenKind::Refresh && p.region == state.config.region_id().as_str() => {}
        _ => return Err(OAuthError::InvalidGrant(INVALID_REFRESH)),
    }
    let hash = TokenHash::of(presented);
    let actor = format!("oauth-client:{}", server.client_id);
    let now = state.config.clock.now();

    let mut client = state.pg.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = grants::lock_refresh_token(&tx, &hash).await? else {
        return Err(OAuthError::InvalidGrant(INVALID_REFRESH));
    };
    if row.client_id != server.client_id {
        return Err(OAuthError::InvalidGrant(INVALID_REFRESH));
    }
    if row.grant_revoked {
        // Heals a publication that failed after the revocation committed.
        if let Err(e) = tokens::publish_grant_revoked(&state.redis, row.grant_id).await {
            tracing::warn!(error = %e, "could not republish a grant's revocation");
        }
        return Err(OAuthError::InvalidGrant(INVALID_REFRESH));
    }
    if row.retired {
        let outcome = revoke_in(
            &tx,
            row.grant_id,
            Some(row.team_id),
            RevokeReason::RefreshTokenReuse,
            &actor,
        )
        .await?;
        tx.commit().await?;
        if needs_publish(outcome) {
            tokens::publish_grant_revoked(&state.redis, row.grant_id).await?;
        }
        return Err(OAuthError::InvalidGrant(
            "the refresh token was already used; the grant is revoked",
        ));
    }
    if row.expires_at.is_some_and(|e| e <= now.unix_timestamp()) {
        return Err(OAuthError::InvalidGrant(INVALID_REFRESH));
    }
    let access_scopes: Vec<scope::Scope> = match requested {
        None => row.scopes.clone(),
        Some(list) => {
            let names = list;
            if !names.iter().all(|n| row.scopes.contains(n)) {
                return Err(OAuthError::InvalidScope(
                    "a refresh may narrow the grant's scopes but never widen them",
                ));
            }
            names
        }
    };
    grants::retire_refresh_token(&tx, &hash).await?;
    let issued = issue::issue(
        &tx,
        state,
        server,
        &Pair {
            team_id: row.team_id,
            grant_id: row.grant_id,
            access_scopes: &access_scopes,
            refresh_scopes: &row.scopes,
            now,
        },
    )
    .await?;
    grants::touch_refreshed(&tx, row.grant_id).await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(row.team_id),
            actor: &actor,
            action: AuditAction::ScimOAuthTokenRefreshed,
            target: Some(&row.grant_id.to_string()),
            detail: json!({ "grant_type": "refresh_token", "scopes": access_scopes }),
        },
    )
    .await?;
    tx.commit().await?;
    issued.prime(state).await;
    Ok(issued.response)
}
