//! The reads of the People and Groups pages: a workspace's users and groups as its
//! admins browse them. Every query is bound to one workspace (`team_id = $1`), so an
//! id of another workspace finds nothing; nothing here writes.
//!
//! Pages are newest first and read by keyset (`seq < cursor`), never by `OFFSET`, so
//! page 2,000 costs what page 1 costs. Measured at 100,000 users in one workspace (and
//! 200,000 in twenty others) on PostgreSQL 15, each page's query, with its
//! per-row roles and groups, takes about a millisecond unfiltered, by status, by
//! source or by role; a search 1 to 10 ms. How each stays fast:
//! - unfiltered and keyset: `users_paging (team_id, seq)`, read backwards;
//! - status: the deactivated users from `deactivated_users (team_id, seq)` (V16), the
//!   active ones along the page order (`active` is in no index, so that a change of
//!   status is an in-place update);
//! - source: `users_source_paging` (V12), the same order under the filter;
//! - role: the role's id is bound as a value, not a join on its key, so the planner
//!   sees how many hold it: a rare role (Admin) is read from `user_roles_role` (V12),
//!   a common one by walking the page order;
//! - search (a substring of the email or the full name): the GIN trigram indexes
//!   `users_search_email`, `users_search_name` (V12), which lead with `team_id`. A
//!   search is read in two steps (see [`people`]) because no single plan suits both a
//!   term most users match and one almost none match.
//!
//! Filtered statements are prepared afresh (not from the statement cache): each is
//! then planned for its own values, never with a generic plan that would have to guess
//! how many users a term or a role matches.

use shared::ids::TeamId;
use shared::token::TokenKind;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::StoreError;
use super::users::UserSource;
use crate::store::pg::GenericClient;

/// Rows on a page of people, of groups and of a group's members.
pub const PAGE_SIZE: usize = 50;

/// How many of the newest users a search first looks through (see [`people`]).
const SEARCH_WINDOW: i64 = 2_000;

/// A group's member count on the Groups list is exact up to this many; above it the
/// list says "more than" (the group's own page counts them all). Counting every member
/// of fifty groups of 100,000 would cost seconds; this bounds a page at fifty short
/// index reads.
pub const MEMBER_COUNT_CAP: i64 = 1_000;

/// How many of a user's groups their page lists by name.
pub const GROUPS_SHOWN: i64 = 200;

/// How many of a user's latest audit events their page shows.
pub const ACTIVITY_SHOWN: i64 = 20;

/// Whether a user may use the workspace (`users.active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Active.
    Active,
    /// Deactivated (by Okta, over SCIM).
    Deactivated,
}

/// What the People page lists: every filter is optional, and all given ones apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeopleFilter<'a> {
    /// A term (validated by the page) that the email or the full name contains,
    /// compared case-insensitively.
    pub search: Option<&'a str>,
    /// Active or deactivated users only.
    pub status: Option<Status>,
    /// Users that came to exist this way only.
    pub source: Option<UserSource>,
    /// Holders of this role (its id in the workspace) only.
    pub role: Option<Uuid>,
}

impl PeopleFilter<'_> {
    fn is_empty(&self) -> bool {
        self.search.is_none()
            && self.status.is_none()
            && self.source.is_none()
            && self.role.is_none()
    }
}

/// One page of a list, and where the next one starts when there is one.
#[derive(Debug)]
pub struct Page<T, C> {
    /// The rows, in the list's order.
    pub rows: Vec<T>,
    /// The cursor of the next page: `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page from up to `PAGE_SIZE + 1` rows read: the extra row only tells that
    /// another page follows, and the cursor is the last row shown.
    fn of(mut rows: Vec<T>, cursor: impl Fn(&T) -> C) -> Self {
        let next = if rows.len() > PAGE_SIZE {
            rows.truncate(PAGE_SIZE);
            rows.last().map(cursor)
        } else {
            None
        };
        Self { rows, next }
    }
}

/// A user as a row of the People page.
#[derive(Debug, Clone)]
pub struct PersonRow {
    /// The user's id.
    pub id: Uuid,
    /// Position in creation order: the page's keyset.
    pub seq: i64,
    /// `userName`.
    pub user_name: String,
    /// The primary email, when known.
    pub email: Option<String>,
    /// The full name, when known.
    pub display_name: Option<String>,
    /// Whether the user may use the workspace.
    pub active: bool,
    /// How the user came to exist.
    pub source: UserSource,
    /// Okta's id for the user (`externalId`), once provisioned.
    pub external_id: Option<String>,
    /// When the user was created here.
    pub created_at: OffsetDateTime,
    /// When a browser session last started for the user.
    pub last_sign_in_at: Option<OffsetDateTime>,
    /// The display names of the user's roles (Admin, Member, Viewer).
    pub roles: Vec<String>,
    /// How many groups the user is a direct member of.
    pub group_count: i64,
    /// The first few of those groups' names, alphabetically.
    pub first_groups: Vec<String>,
}

/// The selected columns of [`PersonRow`], over a row source aliased `u` that has the
/// user's `team_id`, `id` and the plain columns. Roles and groups are computed only for
/// the rows of the page.
const PERSON_COLUMNS: &str = "u.id, u.seq, u.user_name, u.email, u.display_name, u.active,
       u.source, u.external_id, u.created_at, u.last_sign_in_at,
       ARRAY(SELECT r.display_name FROM user_roles ur
               JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
              WHERE ur.team_id = u.team_id AND ur.user_id = u.id ORDER BY r.seq),
       (SELECT count(*) FROM group_members gm
         WHERE gm.team_id = u.team_id AND gm.user_id = u.id),
       ARRAY(SELECT g.display_name FROM group_members gm
               JOIN groups g ON g.team_id = gm.team_id AND g.id = gm.group_id
              WHERE gm.team_id = u.team_id AND gm.user_id = u.id
              ORDER BY lower(g.display_name), g.id LIMIT 3)";

/// The plain columns a row source must carry for [`PERSON_COLUMNS`] and the filters.
const USER_FIELDS: &str = "u.team_id, u.id, u.seq, u.user_name, u.email, u.display_name,
       u.active, u.source, u.external_id, u.created_at, u.last_sign_in_at";

fn person_row(row: &Row) -> PersonRow {
    PersonRow {
        id: row.get(0),
        seq: row.get(1),
        user_name: row.get(2),
        email: row.get(3),
        display_name: row.get(4),
        active: row.get(5),
        source: row.get(6),
        external_id: row.get(7),
        created_at: row.get(8),
        last_sign_in_at: row.get(9),
        roles: row.get(10),
        group_count: row.get(11),
        first_groups: row.get(12),
    }
}

/// The `LIKE` pattern of "contains `term`": its own `%`, `_` and `\` match literally.
pub fn contains_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A statement's conditions on `u` and their parameters, `$1` being the workspace.
struct Conditions {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Conditions {
    fn new(team_id: TeamId) -> Self {
        Self {
            sql: String::new(),
            params: vec![Box::new(team_id.as_uuid())],
        }
    }

    /// Adds `condition`, in which `$?` stands for `value`'s placeholder.
    fn and(&mut self, condition: &str, value: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(value));
        let placeholder = format!("${}", self.params.len());
        self.sql.push_str(" AND ");
        self.sql.push_str(&condition.replace("$?", &placeholder));
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The filter's conditions on `u` (the cursor's too, when `with_cursor`).
fn conditions(
    team_id: TeamId,
    filter: &PeopleFilter<'_>,
    before: Option<i64>,
    with_cursor: bool,
) -> Conditions {
    let mut c = Conditions::new(team_id);
    if with_cursor && let Some(seq) = before {
        c.and("u.seq < $?", seq);
    }
    match filter.status {
        // Most users are active: the page order, with the few others left out.
        Some(Status::Active) => c.and("u.active = $?", true),
        // The deactivated are read from their own table (V16), newest first along its
        // primary key: `active` is in no index of `users`, so that a change of status
        // rewrites the row in place.
        Some(Status::Deactivated) => c.and(
            "u.active = $? AND EXISTS (SELECT 1 FROM deactivated_users d
                                        WHERE d.team_id = u.team_id AND d.seq = u.seq)",
            false,
        ),
        None => {}
    }
    if let Some(source) = filter.source {
        c.and("u.source = $?", source.as_str().to_owned());
    }
    if let Some(role) = filter.role {
        c.and(
            "EXISTS (SELECT 1 FROM user_roles ur
                      WHERE ur.team_id = u.team_id AND ur.user_id = u.id AND ur.role_id = $?)",
            role,
        );
    }
    if let Some(term) = filter.search {
        // `lower()` of the bound pattern is folded at planning: the trigram indexes
        // see a constant, and the term is lowered exactly as the indexed columns are.
        c.and(
            "(lower(u.email) LIKE lower($?::text) OR lower(u.display_name) LIKE lower($?::text))",
            contains_pattern(term),
        );
    }
    c
}

/// One page of the workspace's users matching `filter`, newest first, from the users
/// created before the one at `before` (a [`PersonRow::seq`]) when given.
///
/// A search is read in two steps. First the newest [`SEARCH_WINDOW`] users (from the
/// cursor) are looked through: a term many users match (`smith`, the company's
/// domain) fills a page there, in a few milliseconds. Only when it does not is every
/// match found through the trigram indexes, then the newest of them read: a term few
/// match finds them at once, and one that many match but few of the newest (an old
/// domain) costs the reading of its matches, not of the workspace. One plan for both
/// would, for some term, walk all 100,000 users, or fetch and sort them all.
pub async fn people(
    client: &impl GenericClient,
    team_id: TeamId,
    filter: &PeopleFilter<'_>,
    before: Option<i64>,
) -> Result<Page<PersonRow, i64>, StoreError> {
    let limit = PAGE_SIZE as i64 + 1;
    if filter.is_empty() {
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {PERSON_COLUMNS} FROM (
                    SELECT {USER_FIELDS} FROM users u
                     WHERE u.team_id = $1 AND u.seq < coalesce($2, 9223372036854775807)
                     ORDER BY u.seq DESC LIMIT $3) u
                  ORDER BY u.seq DESC"
            ))
            .await?;
        let rows = client
            .query(&stmt, &[&team_id.as_uuid(), &before, &limit])
            .await?;
        return Ok(Page::of(rows.iter().map(person_row).collect(), |r| r.seq));
    }
    if filter.search.is_none() {
        let c = conditions(team_id, filter, before, true);
        let sql = format!(
            "SELECT {PERSON_COLUMNS} FROM (
                SELECT {USER_FIELDS} FROM users u WHERE u.team_id = $1{}
                 ORDER BY u.seq DESC LIMIT {limit}) u
              ORDER BY u.seq DESC",
            c.sql
        );
        let rows = client.query(&sql, &c.refs()).await?;
        return Ok(Page::of(rows.iter().map(person_row).collect(), |r| r.seq));
    }
    // Step one: the newest users. The cursor bounds the window, the filter its rows.
    let window = conditions(team_id, filter, None, false);
    let mut window_params = window.refs();
    window_params.push(&before);
    let n = window_params.len();
    let sql = format!(
        "SELECT {PERSON_COLUMNS} FROM (
            SELECT u.* FROM (
                SELECT {USER_FIELDS} FROM users u
                 WHERE u.team_id = $1 AND u.seq < coalesce(${n}::bigint, 9223372036854775807)
                 ORDER BY u.seq DESC LIMIT {SEARCH_WINDOW}) u
             WHERE true{} ORDER BY u.seq DESC LIMIT {limit}) u
          ORDER BY u.seq DESC",
        window.sql
    );
    let rows = client.query(&sql, &window_params).await?;
    if rows.len() as i64 == limit {
        return Ok(Page::of(rows.iter().map(person_row).collect(), |r| r.seq));
    }
    // Step two: every match, through the indexes; then the newest of them.
    let c = conditions(team_id, filter, before, true);
    let sql = format!(
        "WITH hits AS MATERIALIZED (SELECT u.seq FROM users u WHERE u.team_id = $1{})
         SELECT {PERSON_COLUMNS} FROM users u
          WHERE u.team_id = $1
            AND u.seq IN (SELECT seq FROM hits ORDER BY seq DESC LIMIT {limit})
          ORDER BY u.seq DESC",
        c.sql
    );
    let rows = client.query(&sql, &c.refs()).await?;
    Ok(Page::of(rows.iter().map(person_row).collect(), |r| r.seq))
}

/// How many users (`users`) or groups (`groups`) the workspace has, from the sharded
/// counters (V4): no rows are counted.
pub async fn total(
    client: &impl GenericClient,
    team_id: TeamId,
    kind: &str,
) -> Result<i64, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT coalesce(sum(n), 0)::bigint FROM resource_counts
              WHERE team_id = $1 AND kind = $2",
        )
        .await?;
    Ok(client
        .query_one(&stmt, &[&team_id.as_uuid(), &kind])
        .await?
        .get(0))
}

/// The id of the workspace's role `key` (`admin`, `member`, `viewer`).
pub async fn role_id(
    client: &impl GenericClient,
    team_id: TeamId,
    key: &str,
) -> Result<Option<Uuid>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT id FROM roles WHERE team_id = $1 AND key = $2")
        .await?;
    Ok(client
        .query_opt(&stmt, &[&team_id.as_uuid(), &key])
        .await?
        .map(|r| r.get(0)))
}

/// Everything a user's page shows besides their row.
#[derive(Debug, Clone)]
pub struct Person {
    /// The row the People page shows.
    pub row: PersonRow,
    /// `name.givenName`, as provisioned.
    pub given_name: Option<String>,
    /// `name.familyName`, as provisioned.
    pub family_name: Option<String>,
    /// When the user last changed.
    pub updated_at: OffsetDateTime,
    /// Whether the user's Okta subject is bound (after their first Okta sign-in).
    pub okta_bound: bool,
    /// `(id, name)` of up to [`GROUPS_SHOWN`] of the user's groups, alphabetically.
    pub groups: Vec<(Uuid, String)>,
    /// Browser sessions that are still live.
    pub live_sessions: i64,
    /// Live personal API tokens.
    pub api_tokens: i64,
    /// Live personal MCP tokens.
    pub mcp_tokens: i64,
    /// The latest [`ACTIVITY_SHOWN`] audit events about the user, newest first.
    pub activity: Vec<Activity>,
}

/// An audit event about a user.
#[derive(Debug, Clone)]
pub struct Activity {
    /// When.
    pub at: OffsetDateTime,
    /// Who acted (`scim:<token id>`, `user:<id>`, `operator`, `okta`).
    pub actor: String,
    /// The action's code (`scim.user.created`).
    pub action: String,
}

/// The workspace's user `id` as their page shows them, or `None` when the workspace
/// has no such user. A session counts as live until its absolute expiry, while used
/// within `idle` (the recorded last use lags by up to a minute: see
/// [`crate::session`]), and under the user's current revocation epoch; a token while
/// neither revoked, expired nor issued under an older epoch.
pub async fn person(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
    now: OffsetDateTime,
    idle: time::Duration,
) -> Result<Option<Person>, StoreError> {
    let team = team_id.as_uuid();
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {PERSON_COLUMNS}, u.given_name, u.family_name, u.updated_at,
                    u.okta_sub IS NOT NULL,
                    (SELECT count(*) FROM browser_sessions s
                       JOIN tokens t ON t.hash = s.token_hash
                      WHERE s.team_id = u.team_id AND s.user_id = u.id
                        AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $3)
                        AND t.user_epoch >= u.token_epoch AND s.last_seen_at > $4),
                    (SELECT count(*) FROM tokens t
                      WHERE t.team_id = u.team_id AND t.user_id = u.id AND t.id IS NOT NULL
                        AND t.kind = $5 AND t.revoked_at IS NULL
                        AND (t.expires_at IS NULL OR t.expires_at > $3)
                        AND t.user_epoch >= u.token_epoch),
                    (SELECT count(*) FROM tokens t
                      WHERE t.team_id = u.team_id AND t.user_id = u.id AND t.id IS NOT NULL
                        AND t.kind = $6 AND t.revoked_at IS NULL
                        AND (t.expires_at IS NULL OR t.expires_at > $3)
                        AND t.user_epoch >= u.token_epoch)
               FROM users u WHERE u.team_id = $1 AND u.id = $2"
        ))
        .await?;
    // The recorded last use is written at most once a minute.
    let seen_since = now - idle - time::Duration::minutes(1);
    let Some(row) = client
        .query_opt(
            &stmt,
            &[
                &team,
                &id,
                &now,
                &seen_since,
                &TokenKind::Api.code(),
                &TokenKind::Mcp.code(),
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let groups = client
        .query(
            &client
                .prepare_cached(
                    "SELECT g.id, g.display_name FROM group_members gm
                       JOIN groups g ON g.team_id = gm.team_id AND g.id = gm.group_id
                      WHERE gm.team_id = $1 AND gm.user_id = $2
                      ORDER BY lower(g.display_name), g.id LIMIT $3",
                )
                .await?,
            &[&team, &id, &GROUPS_SHOWN],
        )
        .await?;
    // Served by `audit_events_team_target (team_id, target, id DESC)` (V13).
    let activity = client
        .query(
            &client
                .prepare_cached(
                    "SELECT at, actor, action FROM audit_events
                      WHERE team_id = $1 AND target = $2
                      ORDER BY id DESC LIMIT $3",
                )
                .await?,
            &[&team, &id.to_string(), &ACTIVITY_SHOWN],
        )
        .await?;
    Ok(Some(Person {
        row: person_row(&row),
        given_name: row.get(13),
        family_name: row.get(14),
        updated_at: row.get(15),
        okta_bound: row.get(16),
        live_sessions: row.get(17),
        api_tokens: row.get(18),
        mcp_tokens: row.get(19),
        groups: groups.iter().map(|r| (r.get(0), r.get(1))).collect(),
        activity: activity
            .iter()
            .map(|r| Activity {
                at: r.get(0),
                actor: r.get(1),
                action: r.get(2),
            })
            .collect(),
    }))
}

/// A group as a row of the Groups page.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// The group's id.
    pub id: Uuid,
    /// Position in creation order: the page's keyset.
    pub seq: i64,
    /// Its name.
    pub display_name: String,
    /// Okta's id for the group (`externalId`).
    pub external_id: Option<String>,
    /// Its direct members, counted up to [`MEMBER_COUNT_CAP`] + 1 on the list and
    /// exactly on the group's page.
    pub members: i64,
    /// When it was created here.
    pub created_at: OffsetDateTime,
}

/// One page of the workspace's groups, newest first, from the groups created before
/// the one at `before` when given. Member counts stop at [`MEMBER_COUNT_CAP`] + 1.
///
/// The count's `ORDER BY` is the primary key's order: without it, a workspace whose
/// memberships are mostly one big group makes the planner expect a sequential scan to
/// find the capped rows soonest, and it reads every membership once per group (150 ms
/// for 50 groups beside one of 50,000 members; 0.3 ms through the index).
pub async fn groups(
    client: &impl GenericClient,
    team_id: TeamId,
    before: Option<i64>,
) -> Result<Page<GroupRow, i64>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT g.id, g.seq, g.display_name, g.external_id,
                    (SELECT count(*) FROM (
                        SELECT 1 FROM group_members gm
                         WHERE gm.team_id = g.team_id AND gm.group_id = g.id
                         ORDER BY gm.team_id, gm.group_id, gm.user_id LIMIT $3) m),
                    g.created_at
               FROM groups g
              WHERE g.team_id = $1 AND g.seq < coalesce($2, 9223372036854775807)
              ORDER BY g.seq DESC LIMIT $4",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &team_id.as_uuid(),
                &before,
                &(MEMBER_COUNT_CAP + 1),
                &(PAGE_SIZE as i64 + 1),
            ],
        )
        .await?;
    Ok(Page::of(rows.iter().map(group_row).collect(), |g| g.seq))
}

fn group_row(row: &Row) -> GroupRow {
    GroupRow {
        id: row.get(0),
        seq: row.get(1),
        display_name: row.get(2),
        external_id: row.get(3),
        members: row.get(4),
        created_at: row.get(5),
    }
}

/// The workspace's group `id` with its exact member count, or `None` when the
/// workspace has no such group.
pub async fn group(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
) -> Result<Option<GroupRow>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT g.id, g.seq, g.display_name, g.external_id,
                    (SELECT count(*) FROM group_members gm
                      WHERE gm.team_id = g.team_id AND gm.group_id = g.id),
                    g.created_at
               FROM groups g WHERE g.team_id = $1 AND g.id = $2",
        )
        .await?;
    Ok(client
        .query_opt(&stmt, &[&team_id.as_uuid(), &id])
        .await?
        .as_ref()
        .map(group_row))
}

/// A member as a row of a group's page.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// The user's id: the page's keyset.
    pub id: Uuid,
    /// `userName`.
    pub user_name: String,
    /// The primary email, when known.
    pub email: Option<String>,
    /// The full name, when known.
    pub display_name: Option<String>,
    /// Whether the user may use the workspace.
    pub active: bool,
}

/// One page of the group's members in the order of their ids (the membership's
/// primary key, so that a page of a 100,000-member group is an index range), from the
/// member after `after` when given. The caller has checked that the group is the
/// workspace's.
pub async fn members(
    client: &impl GenericClient,
    team_id: TeamId,
    group_id: Uuid,
    after: Option<Uuid>,
) -> Result<Page<MemberRow, Uuid>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT u.id, u.user_name, u.email, u.display_name, u.active
               FROM group_members gm
               JOIN users u ON u.team_id = gm.team_id AND u.id = gm.user_id
              WHERE gm.team_id = $1 AND gm.group_id = $2
                AND gm.user_id > coalesce($3, '00000000-0000-0000-0000-000000000000'::uuid)
              ORDER BY gm.user_id LIMIT $4",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &team_id.as_uuid(),
                &group_id,
                &after,
                &(PAGE_SIZE as i64 + 1),
            ],
        )
        .await?;
    let rows = rows
        .iter()
        .map(|r| MemberRow {
            id: r.get(0),
            user_name: r.get(1),
            email: r.get(2),
            display_name: r.get(3),
            active: r.get(4),
        })
        .collect();
    Ok(Page::of(rows, |m| m.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_matches_literally() {
        assert_eq!(contains_pattern("ann"), "%ann%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn a_page_keeps_its_size_and_points_past_its_last_row() {
        let full: Page<usize, usize> = Page::of((0..=PAGE_SIZE).collect(), |r| *r);
        assert_eq!(full.rows.len(), PAGE_SIZE);
        assert_eq!(full.next, Some(PAGE_SIZE - 1));
        let last: Page<usize, usize> = Page::of((0..PAGE_SIZE).collect(), |r| *r);
        assert_eq!(last.rows.len(), PAGE_SIZE);
        assert_eq!(last.next, None);
    }

    #[test]
    fn conditions_number_their_placeholders_after_the_workspace() {
        let filter = PeopleFilter {
            search: Some("ann"),
            status: Some(Status::Deactivated),
            source: None,
            role: Some(Uuid::nil()),
        };
        let c = conditions(TeamId::generate(), &filter, Some(7), true);
        assert_eq!(c.params.len(), 5);
        assert!(
            c.sql
                .starts_with(" AND u.seq < $2 AND u.active = $3 AND EXISTS")
        );
        assert!(c.sql.contains("ur.role_id = $4"));
        assert!(
            c.sql
                .ends_with("LIKE lower($5::text) OR lower(u.display_name) LIKE lower($5::text))")
        );
    }
}
