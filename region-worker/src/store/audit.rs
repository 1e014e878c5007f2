//! The audit trail: every provisioning change, sign-in, grant and logout, written in
//! the same transaction as the change it records. Never a raw token or secret.

use deadpool_postgres::GenericClient;
use serde_json::Value;
use shared::ids::TeamId;

use super::StoreError;

/// One audit event.
#[derive(Debug)]
pub struct AuditEvent<'a> {
    /// The workspace, when the event concerns one.
    pub team_id: Option<TeamId>,
    /// Who acted: `scim:<token id>`, `user:<id>`, `operator`, `okta`.
    pub actor: &'a str,
    /// What happened, dotted: `scim.user.created`, `session.signed_in`, ….
    pub action: &'a str,
    /// What it happened to (a resource id, a user id).
    pub target: Option<&'a str>,
    /// Details: changed attributes before and after, reasons.
    pub detail: Value,
}

/// Writes an audit event with `client` (a transaction, so it commits with the change).
pub async fn record(client: &impl GenericClient, event: &AuditEvent<'_>) -> Result<(), StoreError> {
    client
        .execute(
            &client.prepare_cached("INSERT INTO audit_events (team_id, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)").await?,
            &[
                &event.team_id.map(|t| t.as_uuid()),
                &event.actor,
                &event.action,
                &event.target,
                &event.detail,
            ],
        )
        .await?;
    Ok(())
}
