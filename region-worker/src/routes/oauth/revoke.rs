//! Revoking a grant, for every reason it happens: an admin's Disconnect, a second
//! redemption of its code (RFC 6749 §4.1.2), a rotated refresh token presented again.
//! The revocation and its audit event commit together; the caller publishes the flag
//! to Redis after the commit.

use serde_json::json;
use shared::ids::TeamId;
use uuid::Uuid;

use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::grants::{self, Revocation, RevokeReason};
use crate::store::pg::GenericClient;

/// Revokes `grant_id` (of `team_id` when given) and audits it with `client`, a
/// transaction the caller commits.
pub async fn revoke_in(
    client: &impl GenericClient,
    grant_id: Uuid,
    team_id: Option<TeamId>,
    reason: RevokeReason,
    actor: &str,
) -> Result<Revocation, StoreError> {
    let outcome = grants::revoke(client, grant_id, team_id, reason).await?;
    if let Revocation::Revoked(team) = outcome {
        let action = match reason {
            RevokeReason::Disconnected => AuditAction::ScimOAuthGrantDisconnected,
            RevokeReason::CodeReuse | RevokeReason::RefreshTokenReuse => {
                AuditAction::ScimOAuthGrantRevoked
            }
        };
        audit::record(
            client,
            &AuditEvent {
                team_id: Some(team),
                actor,
                action,
                target: Some(&grant_id.to_string()),
                detail: json!({ "reason": reason.as_str() }),
            },
        )
        .await?;
        if reason == RevokeReason::Disconnected {
            tracing::info!(%grant_id, team_id = %team, "SCIM OAuth grant disconnected");
        } else {
            tracing::warn!(%grant_id, team_id = %team, reason = reason.as_str(), "SCIM OAuth grant revoked on reuse");
        }
    }
    Ok(outcome)
}

/// Whether the flag should be (re)published after the commit.
pub fn needs_publish(outcome: Revocation) -> bool {
    !matches!(outcome, Revocation::NotFound)
}
