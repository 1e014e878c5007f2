//! The audit trail: every provisioning change, sign-in, grant and logout, written in
//! the same transaction as the change it records. Never a raw token or secret.

use std::future::Future;

use serde_json::Value;
use shared::ids::TeamId;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::StoreError;
use crate::store::pg::GenericClient;

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
    /// A workspace admin claimed an email domain (pending until its DNS record is found).
    WorkspaceDomainClaimed,
    /// The worker found a claimed email domain's DNS record: its sign-ins route here.
    WorkspaceDomainVerified,
    /// A workspace admin removed their workspace's claim of an email domain.
    WorkspaceDomainRemoved,
    /// An operator released a workspace's verified email domain (`workspace
    /// release-domain`), so that another workspace may verify it.
    WorkspaceDomainReleased,
    /// A workspace admin exported the workspace's activity (the detail names the format
    /// and the filter): who took a copy of the audit trail is itself on the trail.
    WorkspaceActivityExported,
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
    /// An MCP client registered itself (RFC 7591).
    McpClientRegistered,
    /// A user approved an MCP client's request.
    McpGrantApproved,
    /// A user denied an MCP client's request.
    McpGrantDenied,
    /// A user disconnected an MCP client on `/tokens`.
    McpGrantDisconnected,
    /// An MCP grant ended for a reused code or refresh token, or by its client.
    McpGrantRevoked,
    /// The MCP authorization server issued tokens for an authorization code.
    McpTokenIssued,
    /// The MCP authorization server refreshed a grant's tokens.
    McpTokenRefreshed,
    /// A user created a personal API or MCP token.
    TokenCreated,
    /// A user revoked a personal API or MCP token.
    TokenRevoked,
    /// A SCIM request was refused after its workspace was known (a `4xx`: bad filter,
    /// duplicate `userName`, no such resource, bad token…), with its status, `scimType`
    /// and detail. Refusals nobody authenticated for (`401`) and rate-limited ones
    /// (`429`) are recorded at most once a minute per workspace, with a count of the
    /// others.
    ScimRequestRefused,
}

impl AuditAction {
    /// Every action, in the order above.
    pub const ALL: [AuditAction; 47] = [
        Self::WorkspaceCreated,
        Self::WorkspaceOktaDomainAllowed,
        Self::WorkspaceOktaDomainDisallowed,
        Self::WorkspaceSignInLinkIssued,
        Self::WorkspaceDomainClaimed,
        Self::WorkspaceDomainVerified,
        Self::WorkspaceDomainRemoved,
        Self::WorkspaceDomainReleased,
        Self::WorkspaceActivityExported,
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
        Self::McpClientRegistered,
        Self::McpGrantApproved,
        Self::McpGrantDenied,
        Self::McpGrantDisconnected,
        Self::McpGrantRevoked,
        Self::McpTokenIssued,
        Self::McpTokenRefreshed,
        Self::TokenCreated,
        Self::TokenRevoked,
        Self::ScimRequestRefused,
    ];

    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceCreated => "workspace.created",
            Self::WorkspaceOktaDomainAllowed => "workspace.okta_domain.allowed",
            Self::WorkspaceOktaDomainDisallowed => "workspace.okta_domain.disallowed",
            Self::WorkspaceSignInLinkIssued => "workspace.sign_in_link.issued",
            Self::WorkspaceDomainClaimed => "workspace.domain.claimed",
            Self::WorkspaceDomainVerified => "workspace.domain.verified",
            Self::WorkspaceDomainRemoved => "workspace.domain.removed",
            Self::WorkspaceDomainReleased => "workspace.domain.released",
            Self::WorkspaceActivityExported => "workspace.activity.exported",
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
            Self::McpClientRegistered => "mcp.client.registered",
            Self::McpGrantApproved => "mcp.grant.approved",
            Self::McpGrantDenied => "mcp.grant.denied",
            Self::McpGrantDisconnected => "mcp.grant.disconnected",
            Self::McpGrantRevoked => "mcp.grant.revoked",
            Self::McpTokenIssued => "mcp.token.issued",
            Self::McpTokenRefreshed => "mcp.token.refreshed",
            Self::TokenCreated => "token.created",
            Self::TokenRevoked => "token.revoked",
            Self::ScimRequestRefused => "scim.request.refused",
        }
    }

    /// What an admin reads on the Activity page beside the code.
    pub fn label(self) -> &'static str {
        match self {
            Self::WorkspaceCreated => "Workspace created",
            Self::WorkspaceOktaDomainAllowed => "Custom Okta domain allowed",
            Self::WorkspaceOktaDomainDisallowed => "Custom Okta domain withdrawn",
            Self::WorkspaceSignInLinkIssued => "One-time sign-in link issued",
            Self::WorkspaceDomainClaimed => "Email domain claimed",
            Self::WorkspaceDomainVerified => "Email domain verified",
            Self::WorkspaceDomainRemoved => "Email domain removed",
            Self::WorkspaceDomainReleased => "Email domain released by an operator",
            Self::WorkspaceActivityExported => "Activity exported",
            Self::SessionSignedInLink => "Signed in with a one-time link",
            Self::SessionSignedInOkta => "Signed in with Okta",
            Self::SessionSignedOut => "Signed out",
            Self::OidcSignInFailed => "Sign-in refused",
            Self::OidcSignInDeclined => "Sign-in declined",
            Self::OidcUserBound => "Account linked to Okta user",
            Self::OidcUserJitCreated => "User created just in time",
            Self::OktaSettingsCreated => "Okta connected",
            Self::OktaSettingsUpdated => "Okta settings changed",
            Self::OktaUniversalLogout => "Universal Logout accepted",
            Self::OktaUniversalLogoutRefused => "Universal Logout refused",
            Self::ScimUserCreated => "User provisioned",
            Self::ScimUserLinked => "Existing user linked by provisioning",
            Self::ScimUserReplaced => "User updated (replaced)",
            Self::ScimUserPatched => "User updated",
            Self::ScimUserDeactivated => "User deactivated",
            Self::ScimUserReactivated => "User reactivated",
            Self::ScimUserDeleted => "User deleted",
            Self::ScimGroupCreated => "Group created",
            Self::ScimGroupReplaced => "Group replaced",
            Self::ScimGroupPatched => "Group changed",
            Self::ScimGroupDeleted => "Group deleted",
            Self::ScimOAuthGrantApproved => "Provisioning access approved",
            Self::ScimOAuthGrantDenied => "Provisioning access denied",
            Self::ScimOAuthGrantDisconnected => "Provisioning disconnected",
            Self::ScimOAuthGrantRevoked => "Provisioning access revoked",
            Self::ScimOAuthTokenIssued => "Provisioning token issued",
            Self::ScimOAuthTokenRefreshed => "Provisioning token refreshed",
            Self::McpClientRegistered => "MCP client registered",
            Self::McpGrantApproved => "MCP client approved",
            Self::McpGrantDenied => "MCP client denied",
            Self::McpGrantDisconnected => "MCP client disconnected",
            Self::McpGrantRevoked => "MCP client access revoked",
            Self::McpTokenIssued => "MCP client token issued",
            Self::McpTokenRefreshed => "MCP client token refreshed",
            Self::TokenCreated => "Token created",
            Self::TokenRevoked => "Token revoked",
            Self::ScimRequestRefused => "SCIM request refused",
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

tokio::task_local! {
    /// The id the client gave the request being handled ([`with_request_id`]): every
    /// event recorded while handling it carries the id, so an admin can match an event
    /// to a line of Okta's provisioning log without each handler passing it down.
    static REQUEST_ID: Option<String>;
}

/// The longest request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The client's request id: Okta's `X-Okta-Request-Id`, else `X-Request-Id` (which the
/// gateway keeps from the client or makes up). Only a value of 1 to
/// [`MAX_REQUEST_ID_LEN`] printable ASCII characters is kept: it is shown on a page
/// and exported, and a header is anyone's to fill.
pub fn request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    ["x-okta-request-id", "x-request-id"]
        .iter()
        .find_map(|name| {
            let value = headers.get(*name)?.as_bytes();
            let printable = (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
                && value.iter().all(|b| (0x20..0x7f).contains(b));
            printable.then(|| String::from_utf8_lossy(value).into_owned())
        })
}

/// Runs `handling` (a request being handled) with `request_id` as the request id of
/// every event it records.
pub async fn with_request_id<F: Future>(request_id: Option<String>, handling: F) -> F::Output {
    REQUEST_ID.scope(request_id, handling).await
}

/// Writes an audit event with `client` (a transaction, so it commits with the change).
pub async fn record(client: &impl GenericClient, event: &AuditEvent<'_>) -> Result<(), StoreError> {
    let request_id = REQUEST_ID.try_with(Clone::clone).ok().flatten();
    client
        .execute(
            &client.prepare_cached("INSERT INTO audit_events (team_id, actor, action, target, detail, request_id) VALUES ($1, $2, $3, $4, $5, $6)").await?,
            &[
                &event.team_id.map(|t| t.as_uuid()),
                &event.actor,
                &event.action,
                &event.target,
                &event.detail,
                &request_id,
            ],
        )
        .await?;
    Ok(())
}

/// An audit event as stored, for the Activity page and its export.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its id: the position a page starts from, and the order of events recorded at
    /// the same time.
    pub id: i64,
    /// When it was recorded.
    pub at: OffsetDateTime,
    /// Who acted (see [`AuditEvent::actor`]).
    pub actor: String,
    /// The action's code: text, as codes written by an older or newer worker may not
    /// parse into this one's [`AuditAction`].
    pub action: String,
    /// What it happened to.
    pub target: Option<String>,
    /// Details.
    pub detail: Value,
    /// The client's request id, when it sent one.
    pub request_id: Option<String>,
}

/// Which of a workspace's events to read. Every condition is optional; the workspace
/// is not: a query always names it.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only these action codes.
    pub actions: Option<Vec<&'static str>>,
    /// Only events about or by one of these users: `target` is one of the ids, or the
    /// actor is one of them (`user:<id>`, or the bare id of a one-time-link sign-in).
    /// An empty list matches nothing.
    pub users: Option<Vec<uuid::Uuid>>,
    /// Only events at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
}

/// Where a page starts, named by an event id (keyset paging on the event's time and id:
/// the same cost on the last page as on the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The newest events.
    Newest,
    /// The events just older than this one.
    Before(i64),
    /// The events just newer than this one (the page before, going back).
    After(i64),
    /// The events older than an event read before, by its time and id (an export's
    /// next batch: it goes on even if that event has been pruned since).
    Past {
        /// The event's time.
        at: OffsetDateTime,
        /// The event's id.
        id: i64,
    },
}

/// Up to `limit` of the workspace's events that match `filter`, from `cursor`, newest
/// first (by time, then id). The SQL names only the conditions given (a generic plan of
/// `$n IS NULL OR …` could not use the indexes of migration V13).
pub async fn events(
    client: &impl GenericClient,
    team_id: TeamId,
    filter: &EventFilter,
    cursor: Cursor,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    if filter.users.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let team = team_id.as_uuid();
    let targets: Option<Vec<String>> = filter
        .users
        .as_ref()
        .map(|ids| ids.iter().map(ToString::to_string).collect());
    // A user acts as `user:<id>`; a sign-in with the one-time link names the bare id.
    let actors: Option<Vec<String>> = filter.users.as_ref().map(|ids| {
        ids.iter()
            .flat_map(|id| [format!("user:{id}"), id.to_string()])
            .collect()
    });
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&team];
    // The conditions every branch shares; the action is each branch's own.
    let mut shared = String::from("team_id = $1");
    if let (Some(targets), Some(actors)) = (&targets, &actors) {
        params.push(targets);
        params.push(actors);
        shared.push_str(&format!(
            " AND (target = ANY(${}) OR actor = ANY(${}))",
            params.len() - 1,
            params.len()
        ));
    }
    if let Some(from) = &filter.from {
        params.push(from);
        shared.push_str(&format!(" AND at >= ${}", params.len()));
    }
    if let Some(until) = &filter.until {
        params.push(until);
        shared.push_str(&format!(" AND at < ${}", params.len()));
    }
    let (position, order) = match &cursor {
        Cursor::Newest => (None, "DESC"),
        Cursor::Before(id) | Cursor::Past { id, .. } => (Some((id, "<")), "DESC"),
        Cursor::After(id) => (Some((id, ">")), "ASC"),
    };
    // The cursor's own time, read within the workspace: an id of another workspace
    // (or one pruned since) starts no page.
    let position_at: Option<OffsetDateTime> = match (position, &cursor) {
        (_, Cursor::Past { at, .. }) => Some(*at),
        (None, _) => None,
        (Some((id, _)), _) => {
            let statement = client
                .prepare_cached("SELECT at FROM audit_events WHERE team_id = $1 AND id = $2")
                .await?;
            match client.query_opt(&statement, &[&team, id]).await? {
                Some(row) => Some(row.get(0)),
                None => return Ok(Vec::new()),
            }
        }
    };
    if let (Some((id, op)), Some(at)) = (position, &position_at) {
        params.push(at);
        params.push(id);
        shared.push_str(&format!(
            " AND (at, id) {op} (${}, ${})",
            params.len() - 1,
            params.len()
        ));
    }
    params.push(&limit);
    let tail = format!(" ORDER BY at {order}, id {order} LIMIT ${}", params.len());
    const COLUMNS: &str = "id, at, actor, action, target, detail, request_id";
    // One action is an equality the (team_id, action, at, id) index answers in order.
    // A group of several is one such ordered branch per action, merged: `action =
    // ANY(…)` could not be read in page order from that index, and on a large
    // workspace the planner would walk past every other event instead.
    let sql = match filter.actions.as_deref() {
        None => format!("SELECT {COLUMNS} FROM audit_events WHERE {shared}{tail}"),
        Some([]) => return Ok(Vec::new()),
        Some(actions) => {
            let branches: Vec<String> = actions
                .iter()
                .map(|action| {
                    params.push(action);
                    format!(
                        "(SELECT {COLUMNS} FROM audit_events WHERE {shared} AND action = ${}{tail})",
                        params.len()
                    )
                })
                .collect();
            if branches.len() == 1 {
                branches.concat()
            } else {
                format!(
                    "SELECT {COLUMNS} FROM ({}) e{tail}",
                    branches.join(" UNION ALL ")
                )
            }
        }
    };
    let rows = client
        .query(&client.prepare_cached(&sql).await?, &params)
        .await?;
    let mut events: Vec<StoredEvent> = rows
        .iter()
        .map(|row| StoredEvent {
            id: row.get(0),
            at: row.get(1),
            actor: row.get(2),
            action: row.get(3),
            target: row.get(4),
            detail: row.get(5),
            request_id: row.get(6),
        })
        .collect();
    if matches!(cursor, Cursor::After(_)) {
        events.reverse();
    }
    Ok(events)
}

/// Deletes up to `limit` events recorded before `cutoff`, oldest first; returns how
/// many. One short statement: a batch locks its rows only until it commits, so
/// pruning a large backlog never holds long locks (see [`crate::audit_retention`]).
pub async fn prune_batch(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<u64, StoreError> {
    let statement = client
        .prepare_cached(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .await?;
    Ok(client.execute(&statement, &[&cutoff, &limit]).await?)
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

    #[test]
    fn request_ids_are_short_printable_ascii_okta_s_first() {
        use axum::http::{HeaderMap, HeaderValue};
        let mut headers = HeaderMap::new();
        assert_eq!(request_id(&headers), None);
        headers.insert("x-request-id", HeaderValue::from_static("gw-1"));
        assert_eq!(request_id(&headers).as_deref(), Some("gw-1"));
        headers.insert("x-okta-request-id", HeaderValue::from_static("Zx9 okta:1"));
        assert_eq!(request_id(&headers).as_deref(), Some("Zx9 okta:1"));
        // Too long, or not printable ASCII: the next header, else none.
        headers.insert(
            "x-okta-request-id",
            HeaderValue::from_str(&"a".repeat(MAX_REQUEST_ID_LEN + 1)).unwrap(),
        );
        assert_eq!(request_id(&headers).as_deref(), Some("gw-1"));
        headers.insert(
            "x-okta-request-id",
            HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
        );
        headers.insert(
            "x-request-id",
            HeaderValue::from_bytes(b"tab\there").unwrap(),
        );
        assert_eq!(request_id(&headers), None);
        headers.insert(
            "x-request-id",
            HeaderValue::from_str(&"b".repeat(MAX_REQUEST_ID_LEN)).unwrap(),
        );
        assert_eq!(request_id(&headers).unwrap().len(), MAX_REQUEST_ID_LEN);
    }
}
