//! The list query of SCIM resources: a page and its exact total, in one round trip
//! unless a filtered page is full. Unfiltered totals come from the sharded counters
//! (migration V4); filtered ones from the page itself when it is not full, else from
//! a count over the (indexed) matches. Pages are read by `OFFSET`, or by keyset
//! (`seq >`) when the caller has a cursor (see [`super::cursors`]).

use shared::ids::TeamId;
use shared::scim::filter_sql::SqlFilter;
use tokio_postgres::types::ToSql;

use super::StoreError;
use super::users::bind;

/// A resource kind that can be listed.
pub trait Listed: Sized {
    /// Its table (aliased `r` in the query).
    const TABLE: &'static str;
    /// The selected columns, `r.`-qualified; the total is appended after them.
    const COLUMNS: &'static str;
    /// Builds a record from a row of the query.
    fn from_row(row: &tokio_postgres::Row) -> Self;
    /// Its position in creation order.
    fn seq(&self) -> i64;
}

/// Which page of a list to read.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Rows to skip (counted from `after_seq` when it is given).
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
    /// Keyset position: count from the rows after this `seq` instead of from the
    /// start of the list.
    pub after_seq: Option<i64>,
}

/// Statements with a filter vary with the filter's shape, and a client could send
/// many shapes: the per-connection statement cache is emptied when it grows past this.
const MAX_CACHED_STATEMENTS: usize = 256;

/// A page of `R` matching `filter`, in creation order, and the exact total. Unfiltered
/// totals come from the sharded counters; filtered ones from the page when it is not
/// full, else from a count over the (indexed) matches.
pub async fn list<R: Listed>(
    client: &crate::store::pg::Client,
    team_id: TeamId,
    filter: Option<&SqlFilter>,
    page: Page,
) -> Result<(i64, Vec<R>), StoreError> {
    let table = R::TABLE;
    let columns = R::COLUMNS;
    let team = team_id.as_uuid();
    let bound = filter.map(|f| bind(&f.params)).unwrap_or_default();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&team];
    params.extend(bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)));
    let filter_params = params.len();
    let counted = format!(
        "(SELECT coalesce(sum(c.n), 0)::bigint FROM resource_counts c WHERE c.team_id = $1 AND c.kind = '{table}')"
    );
    // The relations in `columns` (a user's roles and groups) are computed only for the
    // rows of the page, never for the rows an OFFSET skips.
    let sql = match (filter, &page.after_seq) {
        (Some(f), _) => {
            let mut condition = format!(" AND {}", f.sql);
            if let Some(after) = &page.after_seq {
                params.push(after);
                condition.push_str(&format!(" AND r.seq > ${}", params.len()));
            }
            params.push(&page.limit);
            params.push(&page.offset);
            let n = params.len();
            format!(
                "SELECT {columns} FROM (
                     SELECT r.* FROM {table} r
                      WHERE r.team_id = $1{condition} ORDER BY r.seq LIMIT ${} OFFSET ${n}) r
                  ORDER BY r.seq",
                n - 1
            )
        }
        (None, Some(after)) => {
            params.push(after);
            params.push(&page.limit);
            params.push(&page.offset);
            let n = params.len();
            format!(
                "SELECT {columns}, {counted} FROM {table} r
                  WHERE r.team_id = $1 AND r.seq >= coalesce(
                        (SELECT s.seq FROM {table} s WHERE s.team_id = $1 AND s.seq > ${}
                          ORDER BY s.seq OFFSET ${n} LIMIT 1),
                        9223372036854775807)
                  ORDER BY r.seq LIMIT ${}",
                n - 2,
                n - 1
            )
        }
        // Skipping by OFFSET walks only the (team_id, seq) index (an index-only scan),
        // then the page is read from the first `seq` it found.
        (None, None) => {
            params.push(&page.limit);
            params.push(&page.offset);
            let n = params.len();
            format!(
                "SELECT {columns}, {counted} FROM {table} r
                  WHERE r.team_id = $1 AND r.seq >= coalesce(
                        (SELECT s.seq FROM {table} s WHERE s.team_id = $1 ORDER BY s.seq OFFSET ${n} LIMIT 1),
                        9223372036854775807)
                  ORDER BY r.seq LIMIT ${}",
                n - 1
            )
        }
    };
    if filter.is_some() && client.statement_cache().size() > MAX_CACHED_STATEMENTS {
        client.statement_cache().clear();
    }
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &params).await?;
    let shown = rows.len() as i64;
    // Where the page itself tells the total: an unfiltered row carries the counters'
    // sum; a filtered page that is not full, read from the first match, holds every
    // match after the `offset` it skipped (a lookup's case: `userName eq` finds one
    // user or none, which a window count over the matches made a fifth dearer).
    let from_page = match filter {
        None => rows.first().map(|row| row.get::<_, i64>(row.len() - 1)),
        Some(_)
            if page.after_seq.is_none()
                && shown < page.limit
                && (shown > 0 || page.offset == 0) =>
        {
            Some(page.offset + shown)
        }
        Some(_) => None,
    };
    let total = match from_page {
        Some(total) => total,
        // A full filtered page, or an empty page past the end: counted on its own.
        None => {
            let count_sql = match filter {
                Some(f) => format!(
                    "SELECT count(*) FROM {table} r WHERE r.team_id = $1 AND {}",
                    f.sql
                ),
                None => format!("SELECT {counted}"),
            };
            let stmt = client.prepare_cached(&count_sql).await?;
            let counted: i64 = client
                .query_one(&stmt, &params[..filter_params])
                .await?
                .get(0);
            // The rows of a full filtered page are matches after `offset` others: a
            // match deleted between the two statements never makes the total say
            // less than the page shows.
            if filter.is_some() && page.after_seq.is_none() && shown > 0 {
                counted.max(page.offset + shown)
            } else {
                counted
            }
        }
    };
    Ok((total, rows.iter().map(R::from_row).collect()))
}
