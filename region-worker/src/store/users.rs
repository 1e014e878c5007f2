//! Users: the canonical SCIM JSON beside the extracted, indexed columns, their role
//! assignments and their group memberships (read side), and how each user came to
//! exist ([`UserSource`], parsed here at the store edge).

use std::error::Error;

use bytes::BytesMut;
use serde_json::Value;
use shared::ids::TeamId;
use shared::scim::filter_sql::SqlParam;
use time::OffsetDateTime;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use uuid::Uuid;

use super::StoreError;
use super::listing::Listed;
use crate::store::pg::GenericClient;

/// How a user came to exist: the `users.source` column, whose CHECK constraint (V1)
/// allows exactly these codes. SCIM may take over a user it did not create only by
/// `userName` when the user is not already Okta's (see `routes/scim/users.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserSource {
    /// Provisioned by Okta over SCIM (`scim`).
    Scim,
    /// Created at the user's first Okta sign-in, just in time (`jit`).
    Jit,
    /// A workspace's first admin, made by the operator's `workspace create` (`admin`).
    Admin,
}

/// A `users.source` value that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown user source {0:?}: expected scim, jit or admin")]
pub struct UnknownUserSource(pub String);

impl UserSource {
    /// Every source, in the order of the column's CHECK constraint.
    pub const ALL: [UserSource; 3] = [UserSource::Scim, UserSource::Jit, UserSource::Admin];

    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Scim => "scim",
            UserSource::Jit => "jit",
            UserSource::Admin => "admin",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Result<Self, UnknownUserSource> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == code)
            .ok_or_else(|| UnknownUserSource(code.to_owned()))
    }
}

impl std::fmt::Display for UserSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read straight from the `text` column: the CHECK constraint means an unknown code
/// cannot be stored, and one would surface as a conversion error, never a default.
impl<'a> FromSql<'a> for UserSource {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Self::parse(<&str as FromSql>::from_sql(ty, raw)?)?)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// Written as its code into the `text` column.
impl ToSql for UserSource {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.as_str().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

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
    /// How the user came to exist.
    pub source: UserSource,
    /// Okta's id for the user, once provisioned.
    pub external_id: Option<String>,
    /// The user's revocation epoch.
    pub token_epoch: i64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Position in creation order (the paging order).
    pub seq: i64,
    /// `(role id, display name)`, when read with relations.
    pub roles: Vec<(Uuid, String)>,
    /// `(group id, display name)` of direct memberships, when read with relations.
    pub groups: Vec<(Uuid, String)>,
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
    /// The full name: given and family names, else `name.formatted`, else
    /// `displayName` (the seed's "Full name fallback"), else the one name part given.
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
        // Kept exactly as in the JSON (filters run against this column); blank is refused.
        let user_name = resource.get("userName").and_then(Value::as_str)?.to_owned();
        if user_name.trim().is_empty() {
            return None;
        }
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
        // The seed maps first and last name from `name` and names `displayName` the
        // fallback; a lone name part is a partial name, so a full `displayName` wins
        // over it.
        let display_name = match (&given_name, &family_name) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            _ => None,
        }
        .or_else(|| text(name.and_then(|n| n.get("formatted"))))
        .or_else(|| text(resource.get("displayName")))
        .or_else(|| given_name.clone().or_else(|| family_name.clone()));
        Some(Self {
            // Kept exactly as in the JSON: filters on it run against this column.
            external_id: resource
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_owned),
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

/// The columns of a [`UserRecord`], with the user's roles and groups as JSON arrays
/// of `[id, display, seq]` triples, so that one round trip renders a whole page.
///
/// Each membership row finds its role or group by primary key in a scalar subquery,
/// and the triples are put in order here ([`refs`]), not by the query: a join with an
/// `ORDER BY` inside the aggregate made Postgres plan a merge join over the whole
/// workspace's groups and a sort for every user. Measured with pgbench on 100,000
/// users (BENCHMARKS.md, "What each change bought"): a `userName eq` lookup's
/// statement 5,060 → 6,690/s, a page of 100 users 448 → 694/s.
macro_rules! user_columns {
    () => {
        "r.id, r.resource, r.active, r.version, r.source, r.external_id, r.token_epoch,
        r.created_at, r.updated_at, r.seq,
        (SELECT json_agg((SELECT json_build_array(ro.id, ro.display_name, ro.seq) FROM roles ro
                           WHERE ro.team_id = ur.team_id AND ro.id = ur.role_id))
           FROM user_roles ur WHERE ur.team_id = r.team_id AND ur.user_id = r.id),
        (SELECT json_agg((SELECT json_build_array(g.id, g.display_name, g.seq) FROM groups g
                           WHERE g.team_id = m.team_id AND g.id = m.group_id))
           FROM group_members m WHERE m.team_id = r.team_id AND m.user_id = r.id)"
    };
}

const COLUMNS: &str = user_columns!();

/// A user with its relations.
const SELECT: &str = concat!("SELECT ", user_columns!(), " FROM users r");

/// What `INSERT … RETURNING` and `UPDATE … RETURNING` give back (no relations).
const RETURNING: &str =
    "r.id, r.resource, r.active, r.version, r.source, r.external_id, r.token_epoch,
        r.created_at, r.updated_at, r.seq";

/// A user's roles or groups from their `[id, display, seq]` triples (none: `NULL`),
/// in creation order.
fn refs(v: Option<Value>) -> Vec<(Uuid, String)> {
    let mut triples: Vec<(i64, Uuid, String)> = v
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|triple| {
            let id = Uuid::parse_str(triple.get(0)?.as_str()?).ok()?;
            let name = triple.get(1)?.as_str()?.to_owned();
            Some((triple.get(2)?.as_i64()?, id, name))
        })
        .collect();
    triples.sort_unstable_by_key(|(seq, _, _)| *seq);
    triples
        .into_iter()
        .map(|(_, id, name)| (id, name))
        .collect()
}

fn record(row: &tokio_postgres::Row) -> UserRecord {
    let with_relations = row.len() > 11;
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
        seq: row.get(9),
        roles: if with_relations {
            refs(row.get(10))
        } else {
            Vec::new()
        },
        groups: if with_relations {
            refs(row.get(11))
        } else {
            Vec::new()
        },
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

/// The user names of the workspace's active admins (users holding the Admin role),
/// in alphabetical order.
pub async fn admin_user_names(
    client: &impl GenericClient,
    team_id: TeamId,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT u.user_name FROM users u
               JOIN user_roles ur ON ur.team_id = u.team_id AND ur.user_id = u.id
               JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
              WHERE u.team_id = $1 AND r.key = 'admin' AND u.active
              ORDER BY lower(u.user_name)",
            &[&team_id.as_uuid()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Inserts a user. `None` when the `userName` is taken in the workspace (compared
/// case-insensitively), without aborting the caller's transaction.
pub async fn insert(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    cols: &UserColumns,
    resource: &Value,
    source: UserSource,
) -> Result<Option<UserRecord>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO users AS r (team_id, id, user_name, external_id, active, email, display_name,
                                     given_name, family_name, resource, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (team_id, lower(user_name)) DO NOTHING
             RETURNING {RETURNING}"
        ))
        .await?;
    let row = client
        .query_opt(
            &stmt,
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
/// user (deactivation). Fails with a unique violation when `userName` is taken. The
/// returned record carries no roles or groups.
pub async fn update(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    cols: &UserColumns,
    resource: &Value,
    source: UserSource,
    bump_epoch: bool,
) -> Result<UserRecord, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE users AS r SET user_name = $3, external_id = $4, active = $5, email = $6,
                    display_name = $7, given_name = $8, family_name = $9, resource = $10,
                    source = $11, version = version + 1, updated_at = now(),
                    token_epoch = token_epoch + CASE WHEN $12 THEN 1 ELSE 0 END
              WHERE team_id = $1 AND id = $2
          RETURNING {RETURNING}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
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

/// One user with its roles and groups; `lock` takes a row lock for a
/// read-modify-write.
pub async fn get(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    lock: bool,
) -> Result<Option<UserRecord>, StoreError> {
    let sql = if lock {
        const LOCKED: &str = "WHERE r.team_id = $1 AND r.id = $2 FOR UPDATE OF r";
        format!("{SELECT} {LOCKED}")
    } else {
        format!("{SELECT} WHERE r.team_id = $1 AND r.id = $2")
    };
    let stmt = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&stmt, &[&team_id.as_uuid(), &id]).await?;
    Ok(row.as_ref().map(record))
}

/// The user with this `userName` (case-insensitive), locked, for linking.
pub async fn get_by_user_name(
    client: &impl GenericClient,
    team_id: TeamId,
    user_name: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "{SELECT} WHERE r.team_id = $1 AND lower(r.user_name) = lower($2) FOR UPDATE OF r"
        ))
        .await?;
    let row = client
        .query_opt(&stmt, &[&team_id.as_uuid(), &user_name])
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
    let stmt = client
        .prepare_cached(
            "DELETE FROM users WHERE team_id = $1 AND id = $2 RETURNING token_epoch + 1",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&team_id.as_uuid(), &id]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// What sign-in needs to know about a user it may sign in as: who they are bound to
/// at Okta (`externalId` from SCIM, and the `(issuer, sub)` of their first sign-in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInUser {
    /// The user.
    pub id: Uuid,
    /// Whether they may use the workspace.
    pub active: bool,
    /// Their revocation epoch.
    pub token_epoch: i64,
    /// Whether their user name is the email looked up (prefers them among several).
    pub exact: bool,
    /// Okta's user id from SCIM: sign-in must carry it as `sub`.
    pub external_id: Option<String>,
    /// The `(issuer, sub)` recorded at their first sign-in.
    pub okta_subject: Option<(String, String)>,
}

const SIGN_IN_COLUMNS: &str = "id, active, token_epoch, external_id, okta_issuer, okta_sub";

fn sign_in_user(row: &tokio_postgres::Row, exact: bool) -> SignInUser {
    let issuer: Option<String> = row.get(4);
    let sub: Option<String> = row.get(5);
    SignInUser {
        id: row.get(0),
        active: row.get(1),
        token_epoch: row.get(2),
        exact,
        external_id: row.get(3),
        okta_subject: issuer.zip(sub),
    }
}

/// The users of `team_id` that Okta's subject `sub` at `issuer` names: bound to that
/// pair at an earlier sign-in, or provisioned with it as `externalId` (Okta's user id
/// is the org's `sub`). More than one means the records disagree; the caller refuses.
pub async fn by_okta_subject(
    client: &impl GenericClient,
    team_id: TeamId,
    issuer: &str,
    sub: &str,
) -> Result<Vec<SignInUser>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {SIGN_IN_COLUMNS} FROM users
              WHERE team_id = $1
                AND ((okta_issuer = $2 AND okta_sub = $3) OR external_id = $3)
              ORDER BY seq LIMIT 3"
        ))
        .await?;
    let rows = client
        .query(&stmt, &[&team_id.as_uuid(), &issuer, &sub])
        .await?;
    Ok(rows.iter().map(|r| sign_in_user(r, true)).collect())
}

/// The users of `team_id` whose email or user name is `email` (case-insensitively),
/// the one whose user name it is first.
pub async fn by_email_for_sign_in(
    client: &impl GenericClient,
    team_id: TeamId,
    email: &str,
) -> Result<Vec<SignInUser>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {SIGN_IN_COLUMNS}, lower(user_name) = lower($2) AS exact FROM users
              WHERE team_id = $1 AND (lower(email) = lower($2) OR lower(user_name) = lower($2))
              ORDER BY exact DESC, seq
              LIMIT 3"
        ))
        .await?;
    let rows = client.query(&stmt, &[&team_id.as_uuid(), &email]).await?;
    Ok(rows.iter().map(|r| sign_in_user(r, r.get(6))).collect())
}

/// The ids of the users of `team_id` bound to Okta's `(issuer, sub)` or provisioned
/// with `sub` as `externalId`: whom Universal Logout's `iss_sub` subject names.
pub async fn ids_by_okta_subject(
    client: &impl GenericClient,
    team_id: TeamId,
    issuer: &str,
    sub: &str,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(by_okta_subject(client, team_id, issuer, sub)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect())
}

/// Gives a user without a name the `given`/`family` name Okta's ID token released
/// (`given_name`/`family_name`) at sign-in, so that a first admin made without
/// `--admin-name` gets one. Never overwrites: only a user whose SCIM resource has no
/// `name` at all, and never a user Okta provisions over SCIM (`source = 'scim'`, or an
/// `externalId`), whose name Okta manages there. The columns follow the resource as
/// [`UserColumns::of`] extracts them (an existing `displayName` keeps precedence).
/// Whether the name was filled.
pub async fn fill_empty_name(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    given: Option<&str>,
    family: Option<&str>,
) -> Result<bool, StoreError> {
    let given = given.map(str::trim).filter(|s| !s.is_empty());
    let family = family.map(str::trim).filter(|s| !s.is_empty());
    let mut name = serde_json::Map::new();
    if let Some(g) = given {
        name.insert("givenName".into(), Value::from(g));
    }
    if let Some(f) = family {
        name.insert("familyName".into(), Value::from(f));
    }
    let display = match (given, family) {
        (Some(g), Some(f)) => format!("{g} {f}"),
        (Some(x), None) | (None, Some(x)) => x.to_owned(),
        (None, None) => return Ok(false),
    };
    let stmt = client
        .prepare_cached(
            "UPDATE users SET resource = resource || jsonb_build_object('name', $3::jsonb),
                    given_name = $4, family_name = $5,
                    display_name = coalesce(display_name, $6),
                    version = version + 1, updated_at = now()
              WHERE team_id = $1 AND id = $2
                AND source <> 'scim' AND external_id IS NULL
                AND NOT (resource ? 'name')
                AND given_name IS NULL AND family_name IS NULL",
        )
        .await?;
    let n = client
        .execute(
            &stmt,
            &[
                &team_id.as_uuid(),
                &id,
                &Value::Object(name),
                &given,
                &family,
                &display,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// How recording a user's Okta subject went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Recorded now (their first Okta sign-in).
    Now,
    /// They were already bound to this very subject.
    Already,
    /// They are bound to another subject, or another user holds this one (a
    /// concurrent sign-in won): nothing was changed.
    Conflict,
}

/// Records `(issuer, sub)` on the user unless they are bound already; never replaces
/// a binding. A subject another user holds is a [`Bound::Conflict`] without an error;
/// only a true race (two users bound to one subject at the same instant) meets the
/// unique index, which aborts a surrounding transaction.
pub async fn bind_okta_subject(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    issuer: &str,
    sub: &str,
) -> Result<Bound, StoreError> {
    // `target` reads the row as it was before the update (one snapshot per statement).
    let stmt = client
        .prepare_cached(
            "WITH target AS (
                 SELECT okta_issuer, okta_sub FROM users WHERE team_id = $1 AND id = $2
             ), bound AS (
                 UPDATE users SET okta_issuer = $3, okta_sub = $4, okta_bound_at = now()
                  WHERE team_id = $1 AND id = $2 AND okta_sub IS NULL
                    AND NOT EXISTS (SELECT 1 FROM users
                                     WHERE team_id = $1 AND okta_issuer = $3 AND okta_sub = $4)
              RETURNING id
             )
             SELECT (SELECT count(*) FROM bound),
                    (SELECT okta_issuer = $3 AND okta_sub = $4 FROM target)",
        )
        .await?;
    let row = client
        .query_one(&stmt, &[&team_id.as_uuid(), &id, &issuer, &sub])
        .await;
    let row = match row {
        Ok(row) => row,
        Err(e) => {
            let e = StoreError::from(e);
            return if e.is_unique_violation() {
                Ok(Bound::Conflict)
            } else {
                Err(e)
            };
        }
    };
    let updated: i64 = row.get(0);
    let same: Option<bool> = row.get(1);
    Ok(if updated == 1 {
        Bound::Now
    } else if same == Some(true) {
        Bound::Already
    } else {
        Bound::Conflict
    })
}

impl Listed for UserRecord {
    const TABLE: &'static str = "users";
    const COLUMNS: &'static str = COLUMNS;

    fn from_row(row: &tokio_postgres::Row) -> Self {
        record(row)
    }

    fn seq(&self) -> i64 {
        self.seq
    }
}

/// Replaces the user's roles. `fresh` says the user was just created and holds no
/// role yet, which spares the removal.
pub async fn set_roles(
    client: &impl GenericClient,
    team_id: TeamId,
    user_id: Uuid,
    role_ids: &[Uuid],
    fresh: bool,
) -> Result<(), StoreError> {
    let team = team_id.as_uuid();
    let ids = role_ids.to_vec();
    if !fresh {
        let remove = client
            .prepare_cached("DELETE FROM user_roles WHERE team_id = $1 AND user_id = $2 AND NOT (role_id = ANY($3))")
            .await?;
        client.execute(&remove, &[&team, &user_id, &ids]).await?;
    }
    let add = client
        .prepare_cached(
            "INSERT INTO user_roles (team_id, user_id, role_id) SELECT $1, $2, unnest($3::uuid[])
             ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&add, &[&team, &user_id, &ids]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relations_come_in_creation_order_whatever_order_postgres_gave() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let c = Uuid::from_u128(3);
        let v = json!([[b, "Second", 20], [c, "Third", 31], [a, "First", 7]]);
        assert_eq!(
            refs(Some(v)),
            vec![
                (a, "First".to_owned()),
                (b, "Second".to_owned()),
                (c, "Third".to_owned())
            ]
        );
        // No membership: the aggregate is NULL.
        assert!(refs(None).is_empty());
        assert!(refs(Some(Value::Null)).is_empty());
    }

    #[test]
    fn sources_round_trip_and_match_the_columns_check() {
        for source in UserSource::ALL {
            assert_eq!(UserSource::parse(source.as_str()), Ok(source));
        }
        assert_eq!(
            UserSource::parse("operator"),
            Err(UnknownUserSource("operator".into()))
        );
        assert!(UserSource::parse("SCIM").is_err());
        // The codes are exactly those the migration's CHECK constraint allows.
        let migration = include_str!("../../migrations/V1__foundation.sql");
        let check = migration
            .lines()
            .find(|l| l.trim_start().starts_with("source "))
            .expect("the users.source column");
        let quoted: Vec<String> = UserSource::ALL
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert!(
            check.contains(&format!("IN ({})", quoted.join(", "))),
            "{check}"
        );
    }

    #[test]
    fn sources_convert_to_and_from_text_columns() {
        let mut buf = BytesMut::new();
        for source in UserSource::ALL {
            buf.clear();
            assert!(<UserSource as ToSql>::accepts(&Type::TEXT));
            source.to_sql(&Type::TEXT, &mut buf).unwrap();
            assert_eq!(UserSource::from_sql(&Type::TEXT, &buf).unwrap(), source);
        }
        assert!(UserSource::from_sql(&Type::TEXT, b"ldap").is_err());
        assert!(!<UserSource as FromSql>::accepts(&Type::INT4));
    }

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

        // The full name prefers given + family, then `name.formatted`; `displayName`
        // is the fallback (seed-okta-integration.md's attribute table).
        let full = |resource: Value| UserColumns::of(&resource).unwrap().display_name;
        assert_eq!(
            full(json!({ "userName": "j", "displayName": "JD",
                         "name": { "givenName": "Jane", "familyName": "Doe", "formatted": "Ms Jane Doe" } })),
            Some("Jane Doe".into())
        );
        assert_eq!(
            full(json!({ "userName": "j", "displayName": "JD",
                         "name": { "givenName": "Jane", "formatted": "Ms Jane Doe" } })),
            Some("Ms Jane Doe".into())
        );
        assert_eq!(
            full(json!({ "userName": "j", "displayName": "JD", "name": { "givenName": "Jane" } })),
            Some("JD".into())
        );
        assert_eq!(
            full(json!({ "userName": "j", "name": { "familyName": "Doe" } })),
            Some("Doe".into())
        );
        assert_eq!(full(json!({ "userName": "j" })), None);
        assert!(UserColumns::of(&json!({ "userName": "  " })).is_none());
    }
}
