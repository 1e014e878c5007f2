//! Workspaces and their first admin: creation (with the three workspace roles and a
//! one-time sign-in link), listing, existence checks and link redemption; the admins
//! an operator may issue a new link for (an admin locked out before Okta sign-in
//! works has no other way back in); and the custom Okta domains operators allowed for
//! them (`okta_domain_allowances`, V10).

use serde::Serialize;
use serde_json::json;
use shared::ids::{RegionId, TeamId};
use shared::token::TokenHash;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, AuditAction, AuditEvent};
use crate::store::pg::{GenericClient, Pool};

/// The workspace roles every workspace has: key, display name, description, default.
pub const ROLES: [(&str, &str, &str, bool); 3] = [
    (
        "admin",
        "Admin",
        "Manages the workspace: members, integrations and settings",
        false,
    ),
    (
        "member",
        "Member",
        "Uses the workspace: creates and edits work, holds API and MCP tokens",
        true,
    ),
    (
        "viewer",
        "Viewer",
        "Reads the workspace without changing it",
        false,
    ),
];

/// A workspace as listed by operators.
#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    /// Its id.
    pub team_id: TeamId,
    /// Its display name.
    pub name: String,
    /// The region it lives in.
    pub region: String,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The custom Okta domains an operator allowed for it, sorted.
    pub allowed_okta_domains: Vec<String>,
}

/// What creating a workspace made.
#[derive(Debug, Clone)]
pub struct CreatedWorkspace {
    /// The new workspace.
    pub workspace: Workspace,
    /// The first admin's user id.
    pub admin_user_id: Uuid,
}

/// The first admin's name, as SCIM's `name`: Okta's SPEC test reads
/// `name.givenName`/`familyName` on the first user of `GET /Users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminName {
    /// `name.givenName`.
    pub given: String,
    /// `name.familyName`, absent for a one-word name.
    pub family: Option<String>,
}

impl AdminName {
    /// Splits a full name at its last space (`"Mary Ann Smith"` is given `Mary Ann`,
    /// family `Smith`), the way most Western names are written; a one-word name is a
    /// given name alone. `None` when blank.
    pub fn split(full: &str) -> Option<Self> {
        let full = full.split_whitespace().collect::<Vec<_>>().join(" ");
        if full.is_empty() {
            return None;
        }
        Some(match full.rsplit_once(' ') {
            Some((given, family)) => Self {
                given: given.to_owned(),
                family: Some(family.to_owned()),
            },
            None => Self {
                given: full,
                family: None,
            },
        })
    }

    /// The name as written: given, then family.
    pub fn formatted(&self) -> String {
        match &self.family {
            Some(f) => format!("{} {f}", self.given),
            None => self.given.clone(),
        }
    }

    /// SCIM's `name` object.
    fn scim(&self) -> serde_json::Value {
        let mut name = json!({ "givenName": self.given, "formatted": self.formatted() });
        if let Some(f) = &self.family {
            name["familyName"] = json!(f);
        }
        name
    }
}

/// Creates a workspace in `region` with its roles and its first admin (named
/// `admin_name` when given), and records the hash of the admin's one-time sign-in
/// link, all in one transaction.
pub async fn create(
    pool: &Pool,
    region: &RegionId,
    name: &str,
    admin_email: &str,
    admin_name: Option<&AdminName>,
    link_hash: &TokenHash,
    link_expires_at: OffsetDateTime,
) -> Result<CreatedWorkspace, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let team_id = TeamId::generate();
    let row = tx
        .query_one(
            "INSERT INTO workspaces (team_id, name, region) VALUES ($1, $2, $3) RETURNING created_at",
            &[&team_id.as_uuid(), &name, &region.as_str()],
        )
        .await?;
    let created_at: OffsetDateTime = row.get(0);
    let mut admin_role = Uuid::nil();
    for (key, display, description, is_default) in ROLES {
        let id = Uuid::new_v4();
        if key == "admin" {
            admin_role = id;
        }
        tx.execute(
            "INSERT INTO roles (team_id, id, key, display_name, description, is_default)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &team_id.as_uuid(),
                &id,
                &key,
                &display,
                &description,
                &is_default,
            ],
        )
        .await?;
    }
    let admin_user_id = Uuid::new_v4();
    let mut resource = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": admin_email,
        "emails": [{ "value": admin_email, "type": "work", "primary": true }],
        "active": true,
    });
    if let Some(n) = admin_name {
        resource["name"] = n.scim();
    }
    // The columns as `UserColumns::of` extracts them from this resource.
    tx.execute(
        "INSERT INTO users (team_id, id, user_name, email, active, resource, source,
                            display_name, given_name, family_name)
         VALUES ($1, $2, $3, $3, true, $4, 'admin', $5, $6, $7)",
        &[
            &team_id.as_uuid(),
            &admin_user_id,
            &admin_email,
            &resource,
            &admin_name.map(AdminName::formatted),
            &admin_name.map(|n| n.given.as_str()),
            &admin_name.and_then(|n| n.family.as_deref()),
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO user_roles (team_id, user_id, role_id) VALUES ($1, $2, $3)",
        &[&team_id.as_uuid(), &admin_user_id, &admin_role],
    )
    .await?;
    tx.execute(
        "INSERT INTO sign_in_links (hash, team_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        &[
            &link_hash.0.as_slice(),
            &team_id.as_uuid(),
            &admin_user_id,
            &link_expires_at,
        ],
    )
    .await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor: "operator",
            action: AuditAction::WorkspaceCreated,
            target: Some(&team_id.to_string()),
            detail: json!({ "name": name, "admin_user_id": admin_user_id }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedWorkspace {
        workspace: Workspace {
            team_id,
            name: name.to_owned(),
            region: region.to_string(),
            created_at,
            allowed_okta_domains: Vec::new(),
        },
        admin_user_id,
    })
}

/// Every workspace of the region, oldest first.
pub async fn list(pool: &Pool) -> Result<Vec<Workspace>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT w.team_id, w.name, w.region, w.created_at,
                    coalesce(array_agg(a.domain ORDER BY a.domain)
                             FILTER (WHERE a.domain IS NOT NULL), '{}')
               FROM workspaces w
               LEFT JOIN okta_domain_allowances a ON a.team_id = w.team_id
              GROUP BY w.team_id
              ORDER BY w.created_at, w.team_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Workspace {
            team_id: TeamId::from(r.get::<_, Uuid>(0)),
            name: r.get(1),
            region: r.get(2),
            created_at: r.get(3),
            allowed_okta_domains: r.get(4),
        })
        .collect())
}

/// Whether `team_id` is a workspace of this region's store.
pub async fn exists(pool: &Pool, team_id: TeamId) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT 1 FROM workspaces WHERE team_id = $1",
            &[&team_id.as_uuid()],
        )
        .await?;
    Ok(row.is_some())
}

/// The custom Okta domains allowed for `team_id`, sorted.
pub async fn allowed_okta_domains(
    client: &impl GenericClient,
    team_id: TeamId,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT domain FROM okta_domain_allowances WHERE team_id = $1 ORDER BY domain",
            &[&team_id.as_uuid()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What changing an allowance did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowanceChange {
    /// It was written (allowed) or removed (disallowed).
    Changed,
    /// It was already so; nothing written, nothing audited.
    Unchanged,
    /// No workspace has this `team_id`.
    NoWorkspace,
}

/// Allows the custom Okta domain `domain` (normalised) for `team_id`, audited as
/// `workspace.okta_domain.allowed` by `actor`, in one transaction.
pub async fn allow_okta_domain(
    pool: &Pool,
    team_id: TeamId,
    domain: &str,
    actor: &str,
) -> Result<AllowanceChange, StoreError> {
    change_okta_domain(pool, team_id, domain, actor, true).await
}

/// Removes the allowance of `domain` for `team_id`, audited as
/// `workspace.okta_domain.disallowed`. Sign-ins through that domain stop at once (the
/// login and the callback check the allowance); the saved Okta settings are kept so
/// that allowing it again restores them.
pub async fn disallow_okta_domain(
    pool: &Pool,
    team_id: TeamId,
    domain: &str,
    actor: &str,
) -> Result<AllowanceChange, StoreError> {
    change_okta_domain(pool, team_id, domain, actor, false).await
}

/// Allows (`allow`) or withdraws `domain` for `team_id`, with its audit event, in one
/// transaction; nothing is written or audited when nothing changes.
async fn change_okta_domain(
    pool: &Pool,
    team_id: TeamId,
    domain: &str,
    actor: &str,
    allow: bool,
) -> Result<AllowanceChange, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let team = team_id.as_uuid();
    if tx
        .query_opt("SELECT 1 FROM workspaces WHERE team_id = $1", &[&team])
        .await?
        .is_none()
    {
        return Ok(AllowanceChange::NoWorkspace);
    }
    let (n, action) = if allow {
        let n = tx
            .execute(
                "INSERT INTO okta_domain_allowances (team_id, domain, allowed_by)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&team, &domain, &actor],
            )
            .await?;
        (n, AuditAction::WorkspaceOktaDomainAllowed)
    } else {
        let n = tx
            .execute(
                "DELETE FROM okta_domain_allowances WHERE team_id = $1 AND domain = $2",
                &[&team, &domain],
            )
            .await?;
        (n, AuditAction::WorkspaceOktaDomainDisallowed)
    };
    if n == 0 {
        return Ok(AllowanceChange::Unchanged);
    }
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action,
            target: Some(&team_id.to_string()),
            detail: json!({ "domain": domain }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(AllowanceChange::Changed)
}

/// An admin of a workspace (a user holding its Admin role), as operators list them.
#[derive(Debug, Clone)]
pub struct WorkspaceAdmin {
    /// The user.
    pub user_id: Uuid,
    /// Their `userName` (the email they sign in with).
    pub user_name: String,
    /// Their primary email.
    pub email: Option<String>,
    /// Their display name, when they have one.
    pub display_name: Option<String>,
    /// Whether they may use the workspace (a deactivated admin gets no link).
    pub active: bool,
    /// When they were created.
    pub created_at: OffsetDateTime,
}

/// The admins of `team_id`, in user-name order; `None` when there is no such
/// workspace.
pub async fn admins(
    pool: &Pool,
    team_id: TeamId,
) -> Result<Option<Vec<WorkspaceAdmin>>, StoreError> {
    let client = pool.get().await?;
    let team = team_id.as_uuid();
    if client
        .query_opt("SELECT 1 FROM workspaces WHERE team_id = $1", &[&team])
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT u.id, u.user_name, u.email, u.display_name, u.active, u.created_at
               FROM users u
               JOIN user_roles ur ON ur.team_id = u.team_id AND ur.user_id = u.id
               JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
              WHERE u.team_id = $1 AND r.key = 'admin'
              ORDER BY lower(u.user_name), u.id",
            &[&team],
        )
        .await?;
    Ok(Some(
        rows.iter()
            .map(|r| WorkspaceAdmin {
                user_id: r.get(0),
                user_name: r.get(1),
                email: r.get(2),
                display_name: r.get(3),
                active: r.get(4),
                created_at: r.get(5),
            })
            .collect(),
    ))
}

/// What issuing a new sign-in link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkIssue {
    /// The link is stored for this admin; `revoked` of their unused links were removed.
    Issued {
        /// The admin.
        user_id: Uuid,
        /// Their `userName`.
        user_name: String,
        /// How many earlier unused links stopped working.
        revoked: u64,
    },
    /// No workspace has this `team_id`.
    NoWorkspace,
    /// No user of the workspace has this email or user name.
    NoUser,
    /// The user is not an admin of the workspace: links are for admins only (everyone
    /// else signs in through Okta).
    NotAdmin,
    /// The admin is deactivated: a link would not sign them in.
    Deactivated,
}

/// Stores a new one-time sign-in link (its hash) for the admin of `team_id` whose email
/// or user name is `email` (case-insensitively, the user name first), removes their
/// earlier unused links, and audits it as `workspace.sign_in_link.issued`, all in one
/// transaction. Anyone else is refused without a change.
pub async fn issue_sign_in_link(
    pool: &Pool,
    team_id: TeamId,
    email: &str,
    link_hash: &TokenHash,
    link_expires_at: OffsetDateTime,
) -> Result<LinkIssue, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let team = team_id.as_uuid();
    if tx
        .query_opt("SELECT 1 FROM workspaces WHERE team_id = $1", &[&team])
        .await?
        .is_none()
    {
        return Ok(LinkIssue::NoWorkspace);
    }
    let rows = tx
        .query(
            "SELECT u.id, u.user_name, u.active,
                    EXISTS (SELECT 1 FROM user_roles ur
                              JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
                             WHERE ur.team_id = u.team_id AND ur.user_id = u.id
                               AND r.key = 'admin')
               FROM users u
              WHERE u.team_id = $1
                AND (lower(u.email) = lower($2) OR lower(u.user_name) = lower($2))
              ORDER BY lower(u.user_name) = lower($2) DESC, u.seq
              FOR UPDATE OF u",
            &[&team, &email],
        )
        .await?;
    let admin = rows.iter().find(|r| r.get::<_, bool>(3));
    let Some(admin) = admin else {
        return Ok(if rows.is_empty() {
            LinkIssue::NoUser
        } else {
            LinkIssue::NotAdmin
        });
    };
    let (user_id, user_name, active): (Uuid, String, bool) =
        (admin.get(0), admin.get(1), admin.get(2));
    if !active {
        return Ok(LinkIssue::Deactivated);
    }
    let revoked = tx
        .execute(
            "DELETE FROM sign_in_links WHERE team_id = $1 AND user_id = $2 AND used_at IS NULL",
            &[&team, &user_id],
        )
        .await?;
    tx.execute(
        "INSERT INTO sign_in_links (hash, team_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        &[&link_hash.0.as_slice(), &team, &user_id, &link_expires_at],
    )
    .await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor: "operator",
            action: AuditAction::WorkspaceSignInLinkIssued,
            target: Some(&user_id.to_string()),
            detail: json!({
                "user_name": user_name,
                "revoked_links": revoked,
                "expires_at": link_expires_at.unix_timestamp(),
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(LinkIssue::Issued {
        user_id,
        user_name,
        revoked,
    })
}

/// A redeemed sign-in link: who it signs in.
#[derive(Debug, Clone, Copy)]
pub struct RedeemedLink {
    /// The workspace.
    pub team_id: TeamId,
    /// The user.
    pub user_id: Uuid,
    /// The user's revocation epoch now, for the session record.
    pub user_epoch: i64,
}

/// Consumes a one-time sign-in link: succeeds once, before expiry at `now` (the
/// worker's clock, which also set the expiry), for an active user.
pub async fn redeem_link(
    pool: &Pool,
    hash: &TokenHash,
    now: OffsetDateTime,
) -> Result<Option<RedeemedLink>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE sign_in_links l SET used_at = now()
               FROM users u
              WHERE l.hash = $1 AND l.used_at IS NULL AND l.expires_at > $2
                AND u.team_id = l.team_id AND u.id = l.user_id AND u.active
          RETURNING l.team_id, l.user_id, u.token_epoch",
            &[&hash.0.as_slice(), &now],
        )
        .await?;
    Ok(row.map(|r| RedeemedLink {
        team_id: TeamId::from(r.get::<_, Uuid>(0)),
        user_id: r.get(1),
        user_epoch: r.get(2),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_name_splits_at_its_last_space() {
        let n = AdminName::split("  Mary Ann   Smith ").unwrap();
        assert_eq!(n.given, "Mary Ann");
        assert_eq!(n.family.as_deref(), Some("Smith"));
        assert_eq!(n.formatted(), "Mary Ann Smith");
        assert_eq!(
            n.scim(),
            json!({ "givenName": "Mary Ann", "familyName": "Smith", "formatted": "Mary Ann Smith" })
        );
        let one = AdminName::split("Cher").unwrap();
        assert_eq!((one.given.as_str(), one.family), ("Cher", None));
        assert_eq!(AdminName::split("   "), None);
    }
}
