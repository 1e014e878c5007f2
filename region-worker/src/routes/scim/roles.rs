//! `/Roles` and `/Roles/{id}`: the workspace roles as Okta entitlements (OKTA.md §5).

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use shared::scim::definitions::{ROLE, ROLE_URN};
use shared::scim::error::ScimError;
use shared::scim::filter_eval;
use shared::scope::Scope;

use super::ScimCaller;
use super::io::{ScimFailure, reply};
use super::listing::ListRequest;
use super::users::base_url;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::roles::Role;

type Result<T> = std::result::Result<T, ScimFailure>;

fn render(role: &Role, base: &str) -> Value {
    json!({
        "schemas": [ROLE_URN],
        "id": role.id,
        "displayName": role.display_name,
        "description": role.description,
        "meta": { "resourceType": "Role", "location": format!("{base}/Roles/{}", role.id) },
    })
}

/// `GET /Roles`: every role (the set is small: filtered in memory, paged).
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    caller.require(Scope::EntitlementsRead)?;
    let request = ListRequest::parse(query.as_deref(), &ROLE, state.config.scim_max_results)?;
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let base = base_url(&state, caller.team_id);
    let all: Vec<Value> = state
        .roles
        .get(&client, caller.team_id)
        .await?
        .iter()
        .map(|r| render(r, &base))
        .filter(|v| {
            request
                .filter
                .as_ref()
                .is_none_or(|f| filter_eval::matches(f, v))
        })
        .collect();
    let page = request
        .paging
        .slice(&all)
        .iter()
        .map(|v| request.project(v.clone()))
        .collect();
    Ok(request.respond(all.len() as i64, page))
}

/// `GET /Roles/{id}`.
pub async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    caller.require(Scope::EntitlementsRead)?;
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let base = base_url(&state, caller.team_id);
    let roles = state.roles.get(&client, caller.team_id).await?;
    let role = roles
        .iter()
        .find(|r| r.id.to_string().eq_ignore_ascii_case(id.trim()))
        .ok_or_else(|| ScimError::not_found("No role with this id in this workspace."))?;
    let location = format!("{base}/Roles/{}", role.id);
    Ok(reply(
        StatusCode::OK,
        &render(role, &base),
        None,
        Some(&location),
    ))
}
