//! Groups and their membership. Membership is a set of rows: adding or removing a
//! member is a statement on those rows alone, never a read-modify-write of a member
//! list, so concurrent PATCHes never lose a member and a 50,000-member group costs no
//! more to change than a small one.

use std::collections::HashMap;

use serde_json::Value;
use shared::ids::TeamId;
use shared::scim::filter_sql::SqlFilter;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::StoreError;
use super::users::bind;

/// A stored group (without its members).
#[derive(Debug, Clone)]
pub struct GroupRecord {
    /// Its id.
    pub id: Uuid,
    /// Canonical SCIM JSON without `id`, `meta` and `members`.
    pub resource: Value,
    /// Incremented on every change, membership included; the ETag.
    pub version: i64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
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
        let display_name = resource
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())?
            .to_owned();
        let external_id = resource
            .get("externalId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Some(Self {
            display_name,
            external_id,
        })
    }
}

const COLUMNS: &str = "r.id, r.resource, r.version, r.created_at, r.updated_at";

fn record(row: &tokio_postgres::Row) -> GroupRecord {
    GroupRecord {
        id: row.get(0),
        resource: row.get(1),
        version: row.get(2),
        created_at: row.get(3),
        updated_at: row.get(4),
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
            &format!(
                "INSERT INTO groups AS r (team_id, id, display_name, external_id, resource)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
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
            &format!(
                "UPDATE groups AS r SET display_name = $3, external_id = $4, resource = $5,
                        version = version + 1, updated_at = now()
                  WHERE team_id = $1 AND id = $2 RETURNING {COLUMNS}"
            ),
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
        if lock { " FOR UPDATE" } else { "" }
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
            "DELETE FROM groups WHERE team_id = $1 AND id = $2",
            &[&team_id.as_uuid(), &id],
        )
        .await?;
    Ok(n > 0)
}

/// A page of groups matching `filter`, in creation order, and the total count.
pub async fn list(
    client: &impl GenericClient,
    team_id: TeamId,
    filter: Option<&SqlFilter>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<GroupRecord>), StoreError> {
    let team = team_id.as_uuid();
    let bound = filter.map(|f| bind(&f.params)).unwrap_or_default();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&team];
    params.extend(bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)));
    let condition = filter
        .map(|f| format!(" AND {}", f.sql))
        .unwrap_or_default();
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM groups r WHERE r.team_id = $1{condition}"),
            &params,
        )
        .await?
        .get(0);
    if limit == 0 || offset >= total {
        return Ok((total, Vec::new()));
    }
    let n = params.len();
    let sql = format!(
        "SELECT {COLUMNS} FROM groups r WHERE r.team_id = $1{condition} ORDER BY r.seq LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    params.push(&limit);
    params.push(&offset);
    let rows = client.query(&sql, &params).await?;
    Ok((total, rows.iter().map(record).collect()))
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
            "SELECT m.group_id, u.id, coalesce(u.display_name, u.user_name) FROM group_members m
               JOIN users u ON u.team_id = m.team_id AND u.id = m.user_id
              WHERE m.team_id = $1 AND m.group_id = ANY($2) ORDER BY m.added_at, u.seq",
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
            "SELECT x.id FROM unnest($2::uuid[]) AS x(id)
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.team_id = $1 AND u.id = x.id)",
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
            "INSERT INTO group_members (team_id, group_id, user_id)
             SELECT $1, $2, u.id FROM users u WHERE u.team_id = $1 AND u.id = ANY($3)
             ON CONFLICT DO NOTHING",
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
            "DELETE FROM group_members WHERE team_id = $1 AND group_id = $2 AND user_id = ANY($3)",
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
            "DELETE FROM group_members WHERE team_id = $1 AND group_id = $2 AND NOT (user_id = ANY($3))",
            &[&team_id.as_uuid(), &group_id, &user_ids],
        )
        .await?;
    add_members(client, team_id, group_id, user_ids).await?;
    Ok(())
}

/// Bumps the group's version after a membership-only change.
pub async fn touch(
    client: &impl GenericClient,
    team_id: TeamId,
    group_id: Uuid,
) -> Result<GroupRecord, StoreError> {
    let row = client
        .query_one(
            &format!(
                "UPDATE groups AS r SET version = version + 1, updated_at = now()
                  WHERE team_id = $1 AND id = $2 RETURNING {COLUMNS}"
            ),
            &[&team_id.as_uuid(), &group_id],
        )
        .await?;
    Ok(record(&row))
}
