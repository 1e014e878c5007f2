//! Workspace roles: Admin, Member and Viewer, each with a per-workspace id. They are
//! Okta's entitlements (`/Roles`) and decide what a user may do.

use uuid::Uuid;

use super::StoreError;
use crate::store::pg::GenericClient;
use shared::ids::TeamId;

/// The roles of each workspace seen by this process. Roles are created with their
/// workspace and never change, so an entry never goes stale; a workspace that is
/// deleted takes its id with it (ids are never reused).
#[derive(Debug, Default)]
pub struct RoleCache(
    std::sync::RwLock<std::collections::HashMap<TeamId, std::sync::Arc<Vec<Role>>>>,
);

impl RoleCache {
    /// Whether the workspace's roles were read before, so that it exists (its roles are
    /// made with it and never change), without a pool connection.
    pub fn known(&self, team_id: TeamId) -> bool {
        self.0.read().is_ok_and(|m| m.contains_key(&team_id))
    }

    /// The workspace's roles, read from `client` on first use.
    pub async fn get(
        &self,
        client: &impl GenericClient,
        team_id: TeamId,
    ) -> Result<std::sync::Arc<Vec<Role>>, StoreError> {
        if let Some(roles) = self.0.read().ok().and_then(|m| m.get(&team_id).cloned()) {
            return Ok(roles);
        }
        let roles = std::sync::Arc::new(list(client, team_id).await?);
        // An empty list means the workspace does not exist (yet): do not remember it.
        if !roles.is_empty()
            && let Ok(mut m) = self.0.write()
        {
            m.insert(team_id, roles.clone());
        }
        Ok(roles)
    }
}

/// A workspace role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Its id (the SCIM `id` and a user's `roles[].value`).
    pub id: Uuid,
    /// `admin`, `member` or `viewer`.
    pub key: String,
    /// `Admin`, `Member`, `Viewer`.
    pub display_name: String,
    /// What the role allows, in words.
    pub description: String,
    /// Whether new users get it.
    pub is_default: bool,
}

/// The roles of a workspace, in a stable order (Admin, Member, Viewer).
pub async fn list(client: &impl GenericClient, team_id: TeamId) -> Result<Vec<Role>, StoreError> {
    let rows = client
        .query(
            &client.prepare_cached("SELECT id, key, display_name, description, is_default FROM roles WHERE team_id = $1 ORDER BY seq").await?,
            &[&team_id.as_uuid()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Role {
            id: r.get(0),
            key: r.get(1),
            display_name: r.get(2),
            description: r.get(3),
            is_default: r.get(4),
        })
        .collect())
}

/// Whether the user holds the role with `key` in the workspace.
pub async fn user_has(
    client: &impl GenericClient,
    team_id: TeamId,
    user_id: Uuid,
    key: &str,
) -> Result<bool, StoreError> {
    let row = client
        .query_opt(
            &client.prepare_cached("SELECT 1 FROM user_roles ur JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
              WHERE ur.team_id = $1 AND ur.user_id = $2 AND r.key = $3").await?,
            &[&team_id.as_uuid(), &user_id, &key],
        )
        .await?;
    Ok(row.is_some())
}
