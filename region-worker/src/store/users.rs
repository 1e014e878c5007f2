//! Users: the canonical SCIM JSON beside the extracted, indexed columns, their role
//! assignments and their group memberships (read side).

use std::collections::HashMap;

use serde_json::Value;
use shared::ids::TeamId;
use shared::scim::filter_sql::{SqlFilter, SqlParam};
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::StoreError;

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Its id.
    pub id: Uuid,
    /// The canonical SCIM JSON without `id`, `meta`, `groups` and `roles`.
    pub resource: Value,
    /// Whether the user may use the workspace.
    pub active: bool,
    /// Incremented on every change; the ETag.
    pub version: i64,
    /// `scim`, `jit` or `admin`.
    pub source: String,
    /// Okta's id for the user, once provisioned.
    pub external_id: Option<String>,
    /// The user's revocation epoch.
    pub token_epoch: i64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

/// The columns extracted from a user's canonical JSON (the seed's attribute mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserColumns {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active` (absent means active).
    pub active: bool,
    /// The primary email: `userName` when it is an email, else `emails[primary]`,
    /// else the first email.
    pub email: Option<String>,
    /// `displayName`, else `name.formatted`, else given and family names.
    pub display_name: Option<String>,
    /// `name.givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`.
    pub family_name: Option<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether `s` looks like an email address (for the `userName` → email mapping).
pub fn looks_like_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    })
}

impl UserColumns {
    /// Extracts the columns from canonical User JSON. `None` when `userName` is
    /// missing or blank (canonicalisation already refuses that; kept total).
    pub fn of(resource: &Value) -> Option<Self> {
        let user_name = text(resource.get("userName"))?;
        let emails = resource.get("emails").and_then(Value::as_array);
        let primary_email = emails.and_then(|list| {
            list.iter()
                .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
                .or_else(|| list.first())
                .and_then(|e| text(e.get("value")))
        });
        let email = if looks_like_email(&user_name) {
            Some(user_name.clone())
        } else {
            primary_email
        };
        let name = resource.get("name");
        let given_name = text(name.and_then(|n| n.get("givenName")));
        let family_name = text(name.and_then(|n| n.get("familyName")));
        let display_name = text(resource.get("displayName"))
            .or_else(|| text(name.and_then(|n| n.get("formatted"))))
            .or_else(|| match (&given_name, &family_name) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                (Some(x), None) | (None, Some(x)) => Some(x.clone()),
                (None, None) => None,
            });
        Some(Self {
            external_id: text(resource.get("externalId")),
            active: resource
                .get("active")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            user_name,
            email,
            display_name,
            given_name,
            family_name,
        })
    }
}

const COLUMNS: &str = "r.id, r.resource, r.active, r.version, r.source, r.external_id, r.token_epoch, r.created_at, r.updated_at";

fn record(row: &tokio_postgres::Row) -> UserRecord {
    UserRecord {
        id: row.get(0),
        resource: row.get(1),
        active: row.get(2),
        version: row.get(3),
        source: row.get(4),
        external_id: row.get(5),
        token_epoch: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
    }
}

/// Binds filter parameters for tokio-postgres.
pub fn bind(params: &[SqlParam]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                SqlParam::Text(s) => Box::new(s.clone()),
                SqlParam::Bool(b) => Box::new(*b),
                SqlParam::Float(f) => Box::new(*f),
                SqlParam::Timestamp(t) => Box::new(*t),
                SqlParam::Uuid(u) => Box::new(*u),
            }
        })
        .collect()
}

/// Inserts a user. `None` when the `userName` is taken in the workspace (compared
/// case-insensitively), without aborting the caller's transaction.
pub async fn insert(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    cols: &UserColumns,
    resource: &Value,
    source: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO users AS r (team_id, id, user_name, external_id, active, email, display_name,
                                         given_name, family_name, resource, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (team_id, lower(user_name)) DO NOTHING
                 RETURNING {COLUMNS}"
            ),
            &[
                &team_id.as_uuid(),
                &id,
                &cols.user_name,
                &cols.external_id,
                &cols.active,
                &cols.email,
                &cols.display_name,
                &cols.given_name,
                &cols.family_name,
                resource,
                &source,
            ],
        )
        .await?;
    Ok(row.as_ref().map(record))
}

/// Replaces a user's attributes. `bump_epoch` revokes every session and token of the
/// user (deactivation). Fails with a unique violation when `userName` is taken.
pub async fn update(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    cols: &UserColumns,
    resource: &Value,
    source: &str,
    bump_epoch: bool,
) -> Result<UserRecord, StoreError> {
    let row = client
        .query_one(
            &format!(
                "UPDATE users AS r SET user_name = $3, external_id = $4, active = $5, email = $6,
                        display_name = $7, given_name = $8, family_name = $9, resource = $10,
                        source = $11, version = version + 1, updated_at = now(),
                        token_epoch = token_epoch + CASE WHEN $12 THEN 1 ELSE 0 END
                  WHERE team_id = $1 AND id = $2
              RETURNING {COLUMNS}"
            ),
            &[
                &team_id.as_uuid(),
                &id,
                &cols.user_name,
                &cols.external_id,
                &cols.active,
                &cols.email,
                &cols.display_name,
                &cols.given_name,
                &cols.family_name,
                resource,
                &source,
                &bump_epoch,
            ],
        )
        .await?;
    Ok(record(&row))
}

/// One user; `lock` takes a row lock for a read-modify-write.
pub async fn get(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    lock: bool,
) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM users r WHERE r.team_id = $1 AND r.id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = client.query_opt(&sql, &[&team_id.as_uuid(), &id]).await?;
    Ok(row.as_ref().map(record))
}

/// The user with this `userName` (case-insensitive), locked, for linking.
pub async fn get_by_user_name(
    client: &impl GenericClient,
    team_id: TeamId,
    user_name: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM users r WHERE r.team_id = $1 AND lower(r.user_name) = lower($2) FOR UPDATE"
            ),
            &[&team_id.as_uuid(), &user_name],
        )
        .await?;
    Ok(row.as_ref().map(record))
}

/// Deletes a user; returns its revocation epoch after a final increment, so the
/// caller can publish it (tokens of a deleted user must stop at once).
pub async fn delete(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
) -> Result<Option<i64>, StoreError> {
    let row = client
        .query_opt(
            "DELETE FROM users WHERE team_id = $1 AND id = $2 RETURNING token_epoch + 1",
            &[&team_id.as_uuid(), &id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A page of users matching `filter`, in creation order, and the total count.
pub async fn list(
    client: &impl GenericClient,
    team_id: TeamId,
    filter: Option<&SqlFilter>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<UserRecord>), StoreError> {
    let team = team_id.as_uuid();
    let bound = filter.map(|f| bind(&f.params)).unwrap_or_default();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&team];
    params.extend(bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)));
    let condition = filter
        .map(|f| format!(" AND {}", f.sql))
        .unwrap_or_default();
    let count_sql = format!("SELECT count(*) FROM users r WHERE r.team_id = $1{condition}");
    let total: i64 = client.query_one(&count_sql, &params).await?.get(0);
    if limit == 0 || offset >= total {
        return Ok((total, Vec::new()));
    }
    let n = params.len();
    let page_sql = format!(
        "SELECT {COLUMNS} FROM users r WHERE r.team_id = $1{condition} ORDER BY r.seq LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    params.push(&limit);
    params.push(&offset);
    let rows = client.query(&page_sql, &params).await?;
    Ok((total, rows.iter().map(record).collect()))
}

/// `(id, display)` pairs keyed by user, for rendering `roles` and `groups`.
pub type Refs = HashMap<Uuid, Vec<(Uuid, String)>>;

/// The roles of these users.
pub async fn roles_of(
    client: &impl GenericClient,
    team_id: TeamId,
    ids: &[Uuid],
) -> Result<Refs, StoreError> {
    let rows = client
        .query(
            "SELECT ur.user_id, r.id, r.display_name FROM user_roles ur
               JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
              WHERE ur.team_id = $1 AND ur.user_id = ANY($2) ORDER BY r.seq",
            &[&team_id.as_uuid(), &ids],
        )
        .await?;
    Ok(group_refs(&rows))
}

/// The groups these users are direct members of.
pub async fn groups_of(
    client: &impl GenericClient,
    team_id: TeamId,
    ids: &[Uuid],
) -> Result<Refs, StoreError> {
    let rows = client
        .query(
            "SELECT m.user_id, g.id, g.display_name FROM group_members m
               JOIN groups g ON g.team_id = m.team_id AND g.id = m.group_id
              WHERE m.team_id = $1 AND m.user_id = ANY($2) ORDER BY g.seq",
            &[&team_id.as_uuid(), &ids],
        )
        .await?;
    Ok(group_refs(&rows))
}

fn group_refs(rows: &[tokio_postgres::Row]) -> Refs {
    let mut out: Refs = HashMap::new();
    for row in rows {
        out.entry(row.get(0))
            .or_default()
            .push((row.get(1), row.get(2)));
    }
    out
}

/// Replaces the user's roles.
pub async fn set_roles(
    client: &impl GenericClient,
    team_id: TeamId,
    user_id: Uuid,
    role_ids: &[Uuid],
) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM user_roles WHERE team_id = $1 AND user_id = $2 AND NOT (role_id = ANY($3))",
            &[&team_id.as_uuid(), &user_id, &role_ids],
        )
        .await?;
    client
        .execute(
            "INSERT INTO user_roles (team_id, user_id, role_id) SELECT $1, $2, unnest($3::uuid[])
             ON CONFLICT DO NOTHING",
            &[&team_id.as_uuid(), &user_id, &role_ids],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_seeds_attributes() {
        let c = UserColumns::of(&json!({
            "userName": "Jane@Example.com",
            "name": { "givenName": "Jane", "familyName": "Doe" },
            "emails": [{ "value": "other@example.com", "primary": true }],
            "externalId": "00u1",
            "active": false
        }))
        .unwrap();
        assert_eq!(c.email.as_deref(), Some("Jane@Example.com"));
        assert_eq!(c.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(c.external_id.as_deref(), Some("00u1"));
        assert!(!c.active);

        // userName that is not an email: the primary email is the fallback.
        let c = UserColumns::of(&json!({
            "userName": "jdoe",
            "displayName": "J. Doe",
            "emails": [{ "value": "a@x.io" }, { "value": "jdoe@x.io", "primary": true }]
        }))
        .unwrap();
        assert_eq!(c.email.as_deref(), Some("jdoe@x.io"));
        assert_eq!(c.display_name.as_deref(), Some("J. Doe"));
        assert!(c.active);
        assert!(UserColumns::of(&json!({ "userName": "  " })).is_none());
    }
}
