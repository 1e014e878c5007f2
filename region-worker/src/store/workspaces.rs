//! Workspaces and their first admin: creation (with the three workspace roles and a
//! one-time sign-in link), listing, existence checks and link redemption; and the
//! custom Okta domains operators allowed for them (`okta_domain_allowances`, V10).

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::json;
use shared::ids::{RegionId, TeamId};
use shared::token::TokenHash;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, AuditAction, AuditEvent};

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

/// Creates a workspace in `region` with its roles and its first admin, and records the
/// hash of the admin's one-time sign-in link, all in one transaction.
pub async fn create(
    pool: &Pool,
    region: &RegionId,
    name: &str,
    admin_email: &str,
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
    let resource = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": admin_email,
        "emails": [{ "value": admin_email, "type": "work", "primary": true }],
        "active": true,
    });
    tx.execute(
        "INSERT INTO users (team_id, id, user_name, email, active, resource, source)
         VALUES ($1, $2, $3, $3, true, $4, 'admin')",
        &[&team_id.as_uuid(), &admin_user_id, &admin_email, &resource],
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
    let n = tx
        .execute(
            "INSERT INTO okta_domain_allowances (team_id, domain, allowed_by)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&team, &domain, &actor],
        )
        .await?;
    if n == 0 {
        return Ok(AllowanceChange::Unchanged);
    }
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action: AuditAction::WorkspaceOktaDomainAllowed,
            target: Some(&team_id.to_string()),
            detail: json!({ "domain": domain }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(AllowanceChange::Changed)
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
    let n = tx
        .execute(
            "DELETE FROM okta_domain_allowances WHERE team_id = $1 AND domain = $2",
            &[&team, &domain],
        )
        .await?;
    if n == 0 {
        return Ok(AllowanceChange::Unchanged);
    }
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action: AuditAction::WorkspaceOktaDomainDisallowed,
            target: Some(&team_id.to_string()),
            detail: json!({ "domain": domain }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(AllowanceChange::Changed)
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
