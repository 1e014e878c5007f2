//! Groups and their membership. Membership is a set of rows: adding or removing a
//! member is a statement on those rows alone, never a read-modify-write of a member
//! list, so concurrent PATCHes never lose a member and a 50,000-member group costs no
//! more to change than a small one.

use std::collections::HashMap;

use serde_json::Value;
use shared::ids::TeamId;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::listing::Listed;
use crate::store::pg::GenericClient;

/// A stored group (without its members).
#[derive(Debug, Clone)]
pub struct GroupRecord {
    /// Its id.
    pub id: Uuid,
    /// Canonical SCIM JSON without `id`, `meta` and `members`.
    pub resource: Value,
    /// Grows on every change, membership included; the ETag.
    pub version: i64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Position in creation order (the paging order).
    pub seq: i64,
    /// Id of the newest membership change (0 when none), part of `version`.
    pub member_change: i64,
}

impl GroupRecord {
    /// Accounts for a membership change just recorded.
    pub fn with_member_change(mut self, change: i64) -> Self {
        self.version += change - self.member_change;
        self.member_change = change;
        self
    }
}

/// The columns extracted from a group's canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupColumns {
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
}

impl GroupColumns {
    /// Extracts the columns; `None` without a `displayName`.
    pub fn of(resource: &Value) -> Option<Self> {
        // Both kept exactly as in the JSON: filters run against these columns.
        let display_name = resource
            .get("displayName")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())?
            .to_owned();
        let external_id = resource
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Self {
            display_name,
            external_id,
        })
    }
}

/// The columns of a [`GroupRecord`]; `version` includes the newest membership change.
const COLUMNS: &str = "r.id, r.resource, r.version, r.created_at, r.updated_at, r.seq,
        coalesce((SELECT c.id FROM group_member_changes c
                   WHERE c.team_id = r.team_id AND c.group_id = r.id ORDER BY c.id DESC LIMIT 1), 0)";

fn record(row: &tokio_postgres::Row) -> GroupRecord {
    GroupRecord {
        id: row.get(0),
        resource: row.get(1),
        created_at: row.get(3),
        updated_at: row.get(4),
        seq: row.get(5),
        member_change: row.get::<_, i64>(6),
        // The version clients see: attribute changes plus membership changes.
        version: row.get::<_, i64>(2) + row.get::<_, i64>(6),
    }
}

impl Listed for GroupRecord {
    const TABLE: &'static str = "groups";
    const COLUMNS: &'static str = COLUMNS;

    fn from_row(row: &tokio_postgres::Row) -> Self {
        record(row)
    }

    fn seq(&self) -> i64 {
        self.seq
    }
}

/// Inserts a group.
pub async fn insert(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    cols: &GroupColumns,
    resource: &Value,
) -> Result<GroupRecord, StoreError> {
    let row = client
        .query_one(
            &client
                .prepare_cached(&format!(
                    "INSERT INTO groups AS r (team_id, id, display_name, external_id, resource)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
                ))
                .await?,
            &[
                &team_id.as_uuid(),
                &id,
                &cols.display_name,
                &cols.external_id,
                resource,
            ],
        )
        .await?;
    Ok(record(&row))
}

/// Replaces a group's attributes (not its members) and bumps its version.
pub async fn update(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    cols: &GroupColumns,
    resource: &Value,
) -> Result<GroupRecord, StoreError> {
    let row = client
        .query_one(
            &client
                .prepare_cached(&format!(
                    "UPDATE groups AS r SET display_name = $3, external_id = $4, resource = $5,
                        version = version + 1, updated_at = now()
                  WHERE team_id = $1 AND id = $2 RETURNING {COLUMNS}"
                ))
                .await?,
            &[
                &team_id.as_uuid(),
                &id,
                &cols.display_name,
                &cols.external_id,
                resource,
            ],
        )
        .await?;
    Ok(record(&row))
}

/// One group; `lock` takes a row lock (serialising writers of the same group).
pub async fn get(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    lock: bool,
) -> Result<Option<GroupRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM groups r WHERE r.team_id = $1 AND r.id = $2{}",
        if lock { " FOR UPDATE OF r" } else { "" }
    );
    let row = client.query_opt(&sql, &[&team_id.as_uuid(), &id]).await?;
    Ok(row.as_ref().map(record))
}

/// Deletes a group (its memberships go with it).
pub async fn delete(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
) -> Result<bool, StoreError> {
    let n = client
        .execute(
            &client
                .prepare_cached("DELETE FROM groups WHERE team_id = $1 AND id = $2")
                .await?,
            &[&team_id.as_uuid(), &id],
        )
        .await?;
    Ok(n > 0)
}

/// A member as rendered: user id and display text.
pub type Member = (Uuid, String);

/// The members of these groups, in the order they were added.
pub async fn members_of(
    client: &impl GenericClient,
    team_id: TeamId,
    group_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Member>>, StoreError> {
    let rows = client
        .query(
            &client.prepare_cached("SELECT m.group_id, u.id, coalesce(u.display_name, u.user_name) FROM group_members m
               JOIN users u ON u.team_id = m.team_id AND u.id = m.user_id
              WHERE m.team_id = $1 AND m.group_id = ANY($2) ORDER BY m.added_at, u.seq").await?,
            &[&team_id.as_uuid(), &group_ids],
        )
        .await?;
    let mut out: HashMap<Uuid, Vec<Member>> = HashMap::new();
    for row in &rows {
        out.entry(row.get(0))
            .or_default()
            .push((row.get(1), row.get(2)));
    }
    Ok(out)
}

/// The ids among `ids` that are not users of the workspace.
pub async fn unknown_users(
    client: &impl GenericClient,
    team_id: TeamId,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT x.id FROM unnest($2::uuid[]) AS x(id)
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.team_id = $1 AND u.id = x.id)",
                )
                .await?,
            &[&team_id.as_uuid(), &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Adds members (already a member: no change).
pub async fn add_members(
    client: &impl GenericClient,
    team_id: TeamId,
    group_id: Uuid,
    user_ids: &[Uuid],
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            &client
                .prepare_cached(
                    "INSERT INTO group_members (team_id, group_id, user_id)
             SELECT $1, $2, u.id FROM users u WHERE u.team_id = $1 AND u.id = ANY($3)
             ON CONFLICT DO NOTHING",
                )
                .await?,
            &[&team_id.as_uuid(), &group_id, &user_ids],
        )
        .await?)
}

/// Removes these members (not a member: no change).
pub async fn remove_members(
    client: &impl GenericClient,
    team_id: TeamId,
    group_id: Uuid,
    user_ids: &[Uuid],
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            &client.prepare_cached("DELETE FROM group_members WHERE team_id = $1 AND group_id = $2 AND user_id = ANY($3)").await?,
            &[&team_id.as_uuid(), &group_id, &user_ids],
        )
        .await?)
}

/// Makes the membership exactly `user_ids`.
pub async fn replace_members(
    client: &impl GenericClient,
    team_id: TeamId,
    group_id: Uuid,
    user_ids: &[Uuid],
) -> Result<(), StoreError> {
    client
        .execute(
            &client.prepare_cached("DELETE FROM group_members WHERE team_id = $1 AND group_id = $2 AND NOT (user_id = ANY($3))").await?,
            &[&team_id.as_uuid(), &group_id, &user_ids],
        )
        .await?;
    add_members(client, team_id, group_id, user_ids).await?;
    Ok(())
}

/// Records a membership change (see migration V4): an insert that never waits for
/// concurrent changes of the same group. Returns the change's id.
pub async fn record_member_change(
    client: &impl GenericClient,
    team_id: TeamId,
    group_id: Uuid,
) -> Result<i64, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO group_member_changes (team_id, group_id) VALUES ($1, $2) RETURNING id",
        )
        .await?;
    Ok(client
        .query_one(&stmt, &[&team_id.as_uuid(), &group_id])
        .await?
        .get(0))
}

/// The group, holding a key-share lock: it cannot be deleted until the caller's
/// transaction ends, yet concurrent membership changes do not wait for each other.
pub async fn get_for_membership(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
) -> Result<Option<GroupRecord>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM groups r WHERE r.team_id = $1 AND r.id = $2 FOR KEY SHARE OF r"
        ))
        .await?;
    let row = client.query_opt(&stmt, &[&team_id.as_uuid(), &id]).await?;
    Ok(row.as_ref().map(record))
}
