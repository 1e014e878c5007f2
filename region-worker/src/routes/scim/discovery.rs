//! Discovery: `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7644 §4),
//! describing exactly what this server implements. Okta's Entitlement Management reads
//! `/ResourceTypes` to find `/Roles`.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use shared::scim::discovery;
use shared::scim::error::ScimError;
use shared::scim::list::{ListResponse, Paging};
use shared::scope::Scope;

use super::ScimCaller;
use super::io::{ListParams, ScimFailure, reply};
use super::users::base_url;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ScimFailure>;

const DISCOVERY_SCOPES: [Scope; 3] = [Scope::ScimRead, Scope::ScimWrite, Scope::EntitlementsRead];

/// A `filter` on a discovery endpoint is `403` (RFC 7644 §4).
fn refuse_filter(query: Option<&str>) -> Result<ListParams> {
    let params = ListParams::parse(query);
    if params.filter.is_some() {
        return Err(
            ScimError::forbidden("filtering is not supported on discovery endpoints").into(),
        );
    }
    Ok(params)
}

fn listed(all: Vec<serde_json::Value>, params: &ListParams, max: u32) -> Result<Response> {
    let paging = Paging::parse(
        params.start_index.as_deref(),
        params.count.as_deref(),
        max,
        max,
    )?;
    let total = all.len() as u64;
    let page = paging.slice(&all).to_vec();
    Ok(reply(
        StatusCode::OK,
        &ListResponse::new(total, &paging, page).to_json(),
        None,
        None,
    ))
}

/// `GET /ServiceProviderConfig`.
pub async fn service_provider_config(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
) -> Result<Response> {
    caller.require_any(&DISCOVERY_SCOPES)?;
    let body = discovery::service_provider_config(
        &base_url(&state, caller.team_id),
        state.config.scim_max_results,
    );
    Ok(reply(StatusCode::OK, &body, None, None))
}

/// `GET /ResourceTypes`.
pub async fn resource_types(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    caller.require_any(&DISCOVERY_SCOPES)?;
    let params = refuse_filter(query.as_deref())?;
    listed(
        discovery::resource_types(&base_url(&state, caller.team_id)),
        &params,
        state.config.scim_max_results,
    )
}

/// `GET /ResourceTypes/{id}`.
pub async fn resource_type(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    caller.require_any(&DISCOVERY_SCOPES)?;
    let rt = discovery::find_resource_type(&id)
        .ok_or_else(|| ScimError::not_found("No such resource type."))?;
    let body = discovery::resource_type(rt, &base_url(&state, caller.team_id));
    Ok(reply(StatusCode::OK, &body, None, None))
}

/// `GET /Schemas`.
pub async fn schemas(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    caller.require_any(&DISCOVERY_SCOPES)?;
    let params = refuse_filter(query.as_deref())?;
    listed(
        discovery::schemas(&base_url(&state, caller.team_id)),
        &params,
        state.config.scim_max_results,
    )
}

/// `GET /Schemas/{id}`.
pub async fn schema(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    caller.require_any(&DISCOVERY_SCOPES)?;
    let s = discovery::find_schema(&id).ok_or_else(|| ScimError::not_found("No such schema."))?;
    let body = discovery::schema(s, &base_url(&state, caller.team_id));
    Ok(reply(StatusCode::OK, &body, None, None))
}

/// `/Bulk` and `/Me` are not offered (`501`, RFC 7644 §3.7, §3.11).
pub async fn not_implemented() -> ScimFailure {
    ScimError::not_implemented("This service provider does not support this endpoint.").into()
}
