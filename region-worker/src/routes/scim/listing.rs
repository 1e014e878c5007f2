//! A page of a SCIM list: filter, paging and the keyset cursor for sequential paging,
//! shared by `/Users` and `/Groups`.

use shared::ids::TeamId;
use shared::scim::filter_sql::SqlFilter;
use shared::scim::list::Paging;

use super::io::ScimFailure;
use crate::state::AppState;
use crate::store::cursors;
use crate::store::listing::{self, Listed, Page};

/// Reads the requested page and its total. An unfiltered list read in order uses the
/// cursor the previous page left, and leaves one for the next.
pub async fn page<R: Listed>(
    state: &AppState,
    client: &deadpool_postgres::Client,
    team_id: TeamId,
    filter: Option<&SqlFilter>,
    paging: &Paging,
) -> Result<(i64, Vec<R>), ScimFailure> {
    let position = match filter {
        None if paging.count > 0 => {
            Some(cursors::find(&state.redis, R::TABLE, team_id, paging.start_index).await?)
        }
        _ => None,
    };
    let page = Page {
        offset: paging.offset(),
        limit: paging.limit(),
        after_seq: position.and_then(|p| p.after_seq),
    };
    let (total, rows) = listing::list::<R>(client, team_id, filter, page).await?;
    if let (Some(position), Some(last)) = (position, rows.last())
        && rows.len() as i64 == page.limit
    {
        let next = paging.start_index + rows.len() as u64;
        if (next as i64) <= total {
            cursors::leave(&state.redis, R::TABLE, team_id, next, position, last.seq()).await?;
        }
    }
    Ok((total, rows))
}
