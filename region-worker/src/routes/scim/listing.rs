//! A page of a SCIM list: filter, paging and the known positions that spare an
//! unfiltered list its `OFFSET` walk (see `store::cursors`), shared by `/Users` and
//! `/Groups`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use shared::ids::TeamId;
use shared::scim::filter::Filter;
use shared::scim::filter_sql::{self, SqlFilter, TableMapping};
use shared::scim::list::{ListResponse, Paging};
use shared::scim::projection::Projection;
use shared::scim::schema::ResourceType;

use super::io::{ListParams, ScimFailure, reply};
use crate::state::AppState;
use crate::store::cursors;
use crate::store::listing::{self, Listed, Page};

/// A list request's query, parsed once: paging, projection and filter.
#[derive(Debug)]
pub struct ListRequest {
    /// The raw parameters.
    pub params: ListParams,
    /// `startIndex` and `count`, normalised and capped.
    pub paging: Paging,
    /// `attributes` / `excludedAttributes`.
    pub projection: Projection,
    /// The parsed `filter`, if any.
    pub filter: Option<Filter>,
}

impl ListRequest {
    /// Parses the query of a list of `rt` resources; `max` is `filter.maxResults`.
    pub fn parse(
        query: Option<&str>,
        rt: &'static ResourceType,
        max: u32,
    ) -> Result<Self, ScimFailure> {
        let params = ListParams::parse(query);
        let paging = Paging::parse(
            params.start_index.as_deref(),
            params.count.as_deref(),
            max,
            100,
        )?;
        let projection = Projection::parse(
            params.attributes.as_deref(),
            params.excluded_attributes.as_deref(),
            rt,
        )?;
        let filter = match params
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(f) => Some(Filter::parse(f, rt)?),
            None => None,
        };
        Ok(Self {
            params,
            paging,
            projection,
            filter,
        })
    }

    /// Applies the projection to a rendered resource (nothing to do without one).
    pub fn project(&self, resource: Value) -> Value {
        if self.params.projects() {
            self.projection.apply(&resource)
        } else {
            resource
        }
    }

    /// The ListResponse for this request's page.
    pub fn respond(&self, total: i64, resources: Vec<Value>) -> Response {
        let body = ListResponse::new(u64::try_from(total).unwrap_or(0), &self.paging, resources)
            .into_json();
        reply(StatusCode::OK, &body, None, None)
    }
}

/// Runs a parsed list request: its filter translated for `mapping`, then the page.
pub async fn run<R: Listed>(
    state: &AppState,
    client: &crate::store::pg::Client,
    team_id: TeamId,
    request: &ListRequest,
    mapping: &TableMapping,
) -> Result<(i64, Vec<R>), ScimFailure> {
    let sql = request
        .filter
        .as_ref()
        .map(|f| filter_sql::to_sql(f, mapping, "r", 2))
        .transpose()?;
    page::<R>(state, client, team_id, sql.as_ref(), &request.paging).await
}

/// Reads the requested page and its total. An unfiltered list starts from the nearest
/// position an earlier page left, and leaves one where this page ends.
pub async fn page<R: Listed>(
    state: &AppState,
    client: &crate::store::pg::Client,
    team_id: TeamId,
    filter: Option<&SqlFilter>,
    paging: &Paging,
) -> Result<(i64, Vec<R>), ScimFailure> {
    let start = match filter {
        None if paging.count > 0 => {
            Some(cursors::find(&state.redis, R::TABLE, team_id, paging.start_index).await?)
        }
        _ => None,
    };
    let known = start.and_then(|s| s.known);
    let page = Page {
        offset: match known {
            Some(k) => i64::try_from(paging.start_index - k.index).unwrap_or(i64::MAX),
            None => paging.offset(),
        },
        limit: paging.limit(),
        after_seq: known.map(|k| k.after_seq),
    };
    let (total, rows) = listing::list::<R>(client, team_id, filter, page).await?;
    if let (Some(start), Some(last)) = (start, rows.last()) {
        let next = paging.start_index + rows.len() as u64;
        if (next as i64) <= total {
            cursors::remember(
                &state.redis,
                R::TABLE,
                team_id,
                start.generation,
                next,
                last.seq(),
            )
            .await?;
        }
    }
    Ok((total, rows))
}
