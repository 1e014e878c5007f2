//! The audit trail: every provisioning change, sign-in, grant and logout, written in
//! the same transaction as the change it records. Never a raw token or secret.

use deadpool_postgres::GenericClient;
use serde_json::Value;
use shared::ids::TeamId;

use super::StoreError;

/// What an audit event records. Stored as its dotted code (`scim.user.created`), which
/// admins filter on and the tests read: the codes never change once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// The operator created the workspace (and its first admin).
    WorkspaceCreated,
    /// An operator allowed a custom Okta domain for the workspace.
    WorkspaceOktaDomainAllowed,
    /// An operator withdrew a custom Okta domain's allowance.
    WorkspaceOktaDomainDisallowed,
    /// An operator issued a new one-time sign-in link for an admin of the workspace
    /// (`workspace sign-in-link`), revoking their unused ones.
    WorkspaceSignInLinkIssued,
    /// The first admin signed in with the operator's one-time link.
    SessionSignedInLink,
    /// Someone signed in through the workspace's Okta org.
    SessionSignedInOkta,
    /// Someone signed out.
    SessionSignedOut,
    /// An Okta sign-in was refused (the detail says why).
    OidcSignInFailed,
    /// Someone declined a sign-in they did not start on this browser.
    OidcSignInDeclined,
    /// A user was bound to the Okta subject of their first sign-in.
    OidcUserBound,
    /// A user was created just in time at sign-in.
    OidcUserJitCreated,
    /// A workspace admin connected Okta.
    OktaSettingsCreated,
    /// A workspace admin changed the Okta settings.
    OktaSettingsUpdated,
    /// Okta's Universal Logout revoked a user's credentials.
    OktaUniversalLogout,
    /// A Universal Logout request was refused (the detail says why).
    OktaUniversalLogoutRefused,
    /// SCIM created a user.
    ScimUserCreated,
    /// SCIM adopted an existing user that no SCIM client had provisioned.
    ScimUserLinked,
    /// SCIM replaced a user (PUT).
    ScimUserReplaced,
    /// SCIM patched a user.
    ScimUserPatched,
    /// SCIM deactivated a user.
    ScimUserDeactivated,
    /// SCIM reactivated a user.
    ScimUserReactivated,
    /// SCIM deleted a user.
    ScimUserDeleted,
    /// SCIM created a group.
    ScimGroupCreated,
    /// SCIM replaced a group (PUT).
    ScimGroupReplaced,
    /// SCIM patched a group.
    ScimGroupPatched,
    /// SCIM deleted a group.
    ScimGroupDeleted,
    /// A workspace admin approved Okta's SCIM OAuth request.
    ScimOAuthGrantApproved,
    /// A workspace admin denied Okta's SCIM OAuth request.
    ScimOAuthGrantDenied,
    /// A workspace admin disconnected a SCIM OAuth grant.
    ScimOAuthGrantDisconnected,
    /// A SCIM OAuth grant was revoked for a reused code or refresh token.
    ScimOAuthGrantRevoked,
    /// The SCIM OAuth server issued tokens for an authorization code.
    ScimOAuthTokenIssued,
    /// The SCIM OAuth server refreshed a grant's tokens.
    ScimOAuthTokenRefreshed,
    /// A user created a personal API or MCP token.
    TokenCreated,
    /// A user revoked a personal API or MCP token.
    TokenRevoked,
}

impl AuditAction {
    /// Every action, in the order above.
    pub const ALL: [AuditAction; 34] = [
        Self::WorkspaceCreated,
        Self::WorkspaceOktaDomainAllowed,
        Self::WorkspaceOktaDomainDisallowed,
        Self::WorkspaceSignInLinkIssued,
        Self::SessionSignedInLink,
        Self::SessionSignedInOkta,
        Self::SessionSignedOut,
        Self::OidcSignInFailed,
        Self::OidcSignInDeclined,
        Self::OidcUserBound,
        Self::OidcUserJitCreated,
        Self::OktaSettingsCreated,
        Self::OktaSettingsUpdated,
        Self::OktaUniversalLogout,
        Self::OktaUniversalLogoutRefused,
        Self::ScimUserCreated,
        Self::ScimUserLinked,
        Self::ScimUserReplaced,
        Self::ScimUserPatched,
        Self::ScimUserDeactivated,
        Self::ScimUserReactivated,
        Self::ScimUserDeleted,
        Self::ScimGroupCreated,
        Self::ScimGroupReplaced,
        Self::ScimGroupPatched,
        Self::ScimGroupDeleted,
        Self::ScimOAuthGrantApproved,
        Self::ScimOAuthGrantDenied,
        Self::ScimOAuthGrantDisconnected,
        Self::ScimOAuthGrantRevoked,
        Self::ScimOAuthTokenIssued,
        Self::ScimOAuthTokenRefreshed,
        Self::TokenCreated,
        Self::TokenRevoked,
    ];

    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceCreated => "workspace.created",
            Self::WorkspaceOktaDomainAllowed => "workspace.okta_domain.allowed",
            Self::WorkspaceOktaDomainDisallowed => "workspace.okta_domain.disallowed",
            Self::WorkspaceSignInLinkIssued => "workspace.sign_in_link.issued",
            Self::SessionSignedInLink => "session.signed_in.link",
            Self::SessionSignedInOkta => "session.signed_in.okta",
            Self::SessionSignedOut => "session.signed_out",
            Self::OidcSignInFailed => "oidc.sign_in.failed",
            Self::OidcSignInDeclined => "oidc.sign_in.declined",
            Self::OidcUserBound => "oidc.user.bound",
            Self::OidcUserJitCreated => "oidc.user.jit_created",
            Self::OktaSettingsCreated => "okta.settings.created",
            Self::OktaSettingsUpdated => "okta.settings.updated",
            Self::OktaUniversalLogout => "okta.universal_logout",
            Self::OktaUniversalLogoutRefused => "okta.universal_logout.refused",
            Self::ScimUserCreated => "scim.user.created",
            Self::ScimUserLinked => "scim.user.linked",
            Self::ScimUserReplaced => "scim.user.replaced",
            Self::ScimUserPatched => "scim.user.patched",
            Self::ScimUserDeactivated => "scim.user.deactivated",
            Self::ScimUserReactivated => "scim.user.reactivated",
            Self::ScimUserDeleted => "scim.user.deleted",
            Self::ScimGroupCreated => "scim.group.created",
            Self::ScimGroupReplaced => "scim.group.replaced",
            Self::ScimGroupPatched => "scim.group.patched",
            Self::ScimGroupDeleted => "scim.group.deleted",
            Self::ScimOAuthGrantApproved => "scim_oauth.grant.approved",
            Self::ScimOAuthGrantDenied => "scim_oauth.grant.denied",
            Self::ScimOAuthGrantDisconnected => "scim_oauth.grant.disconnected",
            Self::ScimOAuthGrantRevoked => "scim_oauth.grant.revoked",
            Self::ScimOAuthTokenIssued => "scim_oauth.token.issued",
            Self::ScimOAuthTokenRefreshed => "scim_oauth.token.refreshed",
            Self::TokenCreated => "token.created",
            Self::TokenRevoked => "token.revoked",
        }
    }

    /// The action whose code is `code`.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == code)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl tokio_postgres::types::ToSql for AuditAction {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.as_str().to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

/// One audit event.
#[derive(Debug)]
pub struct AuditEvent<'a> {
    /// The workspace, when the event concerns one.
    pub team_id: Option<TeamId>,
    /// Who acted: `scim:<token id>`, `user:<id>`, `operator`, `okta`.
    pub actor: &'a str,
    /// What happened.
    pub action: AuditAction,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_dotted_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for action in AuditAction::ALL {
            let code = action.as_str();
            assert!(seen.insert(code), "{code} twice");
            assert!(
                code.contains('.')
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{code}"
            );
            assert_eq!(AuditAction::parse(code), Some(action));
        }
        assert_eq!(AuditAction::parse("scim.user"), None);
    }
}
