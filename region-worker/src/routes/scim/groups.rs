//! `/Groups` and `/Groups/{id}`: Okta's Group Push (OKTA.md §2). Membership changes
//! are set operations in SQL inside one transaction; a group's members are loaded only
//! when the response includes them.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::ids::TeamId;
use shared::scim::definitions::{GROUP, GROUP_URN};
use shared::scim::error::{ScimError, ScimType};
use shared::scim::filter_sql::GROUPS;
use shared::scim::patch::{MemberOp, PatchRequest};
use shared::scim::value::canonicalize_resource;
use shared::scope::Scope;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::ScimCaller;
use super::io::{
    ListParams, ScimFailure, ScimJson, check_if_match, etag, not_modified, reply, require_schema,
};
use super::listing::{self, ListRequest};
use super::users::base_url;
use crate::state::AppState;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::groups::{self, GroupColumns, GroupRecord, Member};
use crate::store::pg::GenericClient;
use crate::store::{StoreError, cursors};

type Result<T> = std::result::Result<T, ScimFailure>;

fn not_found() -> ScimFailure {
    ScimError::not_found("No group with this id in this workspace.").into()
}

fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

/// The SCIM representation of a group; `members` only when loaded.
fn render(rec: &GroupRecord, members: Option<&[Member]>, base: &str) -> Value {
    let mut v = match &rec.resource {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    v.insert("id".into(), json!(rec.id));
    if !v.contains_key("schemas") {
        v.insert("schemas".into(), json!([GROUP_URN]));
    }
    if let Some(members) = members {
        let list: Vec<Value> = members
            .iter()
            .map(|(id, display)| json!({ "value": id, "display": display, "$ref": format!("{base}/Users/{id}"), "type": "User" }))
            .collect();
        v.insert("members".into(), Value::Array(list));
    }
    v.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": rec.created_at.format(&Rfc3339).unwrap_or_default(),
            "lastModified": rec.updated_at.format(&Rfc3339).unwrap_or_default(),
            "location": format!("{base}/Groups/{}", rec.id),
            "version": etag(rec.version),
        }),
    );
    Value::Object(v)
}

async fn render_all(
    client: &impl GenericClient,
    team_id: TeamId,
    records: &[GroupRecord],
    base: &str,
    request: &ListRequest,
) -> Result<Vec<Value>> {
    // `excludedAttributes=members` never touches the membership table.
    let members = if request.projection.returns("members") {
        let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
        Some(groups::members_of(client, team_id, &ids).await?)
    } else {
        None
    };
    Ok(records
        .iter()
        .map(|r| {
            let m = members
                .as_ref()
                .map(|all| all.get(&r.id).map(Vec::as_slice).unwrap_or_default());
            request.project(render(r, m, base))
        })
        .collect())
}

/// `GET /Groups`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    caller.require(Scope::ScimRead)?;
    let request = ListRequest::parse(query.as_deref(), &GROUP, state.config.scim_max_results)?;
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let (total, records) =
        listing::run::<GroupRecord>(&state, &client, caller.team_id, &request, &GROUPS).await?;
    let base = base_url(&state, caller.team_id);
    let resources = render_all(&client, caller.team_id, &records, &base, &request).await?;
    Ok(request.respond(total, resources))
}

/// `GET /Groups/{id}`.
pub async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    caller.require(Scope::ScimRead)?;
    let id = parse_id(&id)?;
    let request = ListRequest::parse(query.as_deref(), &GROUP, state.config.scim_max_results)?;
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let rec = groups::get(&client, caller.team_id, id, false)
        .await?
        .ok_or_else(not_found)?;
    if let Some(r) = not_modified(&headers, rec.version) {
        return Ok(r);
    }
    let base = base_url(&state, caller.team_id);
    let mut out = render_all(
        &client,
        caller.team_id,
        std::slice::from_ref(&rec),
        &base,
        &request,
    )
    .await?;
    let body = out.pop().unwrap_or(Value::Null);
    Ok(reply(
        StatusCode::OK,
        &body,
        Some(rec.version),
        Some(&format!("{base}/Groups/{id}")),
    ))
}

/// Member ids as sent, parsed. For additions an unparsable id is `400 invalidValue`;
/// for removals it simply names no member.
fn member_ids(values: &[String], strict: bool) -> Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(values.len());
    for v in values {
        match Uuid::parse_str(v.trim()) {
            Ok(id) => ids.push(id),
            Err(_) if strict => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("member {v:?} is not a user of this workspace"),
                )
                .into());
            }
            Err(_) => {}
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Refuses members that are not users of the workspace.
async fn require_users(client: &impl GenericClient, team_id: TeamId, ids: &[Uuid]) -> Result<()> {
    let unknown = groups::unknown_users(client, team_id, ids).await?;
    if let Some(first) = unknown.first() {
        return Err(ScimError::bad_request(
            ScimType::InvalidValue,
            format!(
                "{} member(s) are not users of this workspace, e.g. {first}",
                unknown.len()
            ),
        )
        .into());
    }
    Ok(())
}

/// Takes `members` out of a canonical group as value strings.
fn take_members(resource: &mut Value) -> Option<Vec<String>> {
    let list = resource.as_object_mut()?.remove("members")?;
    Some(
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
            .collect(),
    )
}

fn columns(resource: &Value) -> Result<GroupColumns> {
    GroupColumns::of(resource).ok_or_else(|| {
        ScimError::bad_request(
            ScimType::InvalidValue,
            "displayName is required and must not be blank",
        )
        .into()
    })
}

fn summary(ids: &[Uuid]) -> Value {
    const SHOWN: usize = 100;
    json!({ "count": ids.len(), "ids": ids.iter().take(SHOWN).collect::<Vec<_>>() })
}

/// `POST /Groups`.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    ScimJson(body): ScimJson,
) -> Result<Response> {
    caller.require(Scope::ScimWrite)?;
    require_schema(&body, GROUP_URN)?;
    let mut resource = canonicalize_resource(&body, &GROUP)?;
    let members = member_ids(&take_members(&mut resource).unwrap_or_default(), true)?;
    let cols = columns(&resource)?;
    let team = caller.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    require_users(&tx, team, &members).await?;
    let rec = groups::insert(&tx, team, Uuid::new_v4(), &cols, &resource).await?;
    groups::add_members(&tx, team, rec.id, &members).await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team),
            actor: &caller.actor,
            action: AuditAction::ScimGroupCreated,
            target: Some(&rec.id.to_string()),
            detail: json!({ "displayName": cols.display_name, "externalId": cols.external_id, "members": summary(&members) }),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let base = base_url(&state, team);
    let loaded = groups::members_of(&client, team, &[rec.id]).await?;
    let body = render(
        &rec,
        Some(loaded.get(&rec.id).map(Vec::as_slice).unwrap_or_default()),
        &base,
    );
    let location = format!("{base}/Groups/{}", rec.id);
    Ok(reply(
        StatusCode::CREATED,
        &body,
        Some(rec.version),
        Some(&location),
    ))
}

/// `PUT /Groups/{id}`: replaces the group's attributes; `members`, when present,
/// replaces the membership (when absent, members are kept: a client that never sends
/// members must not empty a group by renaming it).
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response> {
    caller.require(Scope::ScimWrite)?;
    let id = parse_id(&id)?;
    require_schema(&body, GROUP_URN)?;
    let mut resource = canonicalize_resource(&body, &GROUP)?;
    let members = take_members(&mut resource)
        .map(|m| member_ids(&m, true))
        .transpose()?;
    let cols = columns(&resource)?;
    let team = caller.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let existing = groups::get(&tx, team, id, true)
        .await?
        .ok_or_else(not_found)?;
    check_if_match(&headers, existing.version)?;
    if let Some(m) = &members {
        require_users(&tx, team, m).await?;
        groups::replace_members(&tx, team, id, m).await?;
    }
    let rec = groups::update(&tx, team, id, &cols, &resource).await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team),
            actor: &caller.actor,
            action: AuditAction::ScimGroupReplaced,
            target: Some(&id.to_string()),
            detail: json!({
                "before": existing.resource,
                "after": rec.resource,
                "members": members.as_deref().map(summary),
            }),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let base = base_url(&state, team);
    let loaded = groups::members_of(&client, team, &[id]).await?;
    let body = render(
        &rec,
        Some(loaded.get(&id).map(Vec::as_slice).unwrap_or_default()),
        &base,
    );
    Ok(reply(
        StatusCode::OK,
        &body,
        Some(rec.version),
        Some(&format!("{base}/Groups/{id}")),
    ))
}

/// `PATCH /Groups/{id}`: attribute operations on the group's JSON and membership
/// operations as SQL set operations, all in one transaction. Answers `204`, or `200`
/// with the group when the request asks for attributes.
pub async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response> {
    caller.require(Scope::ScimWrite)?;
    let id = parse_id(&id)?;
    let plan = PatchRequest::parse(&body, &GROUP)?.into_group_plan()?;
    let params = ListParams::parse(query.as_deref());
    let team = caller.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    // Adding and removing members are row operations that never lose a concurrent
    // change, so they run in parallel under a key-share lock (the group cannot be
    // deleted meanwhile). Attribute changes, full replacement of the members and
    // If-Match need the group to themselves.
    let exclusive = !plan.resource_ops.operations.is_empty()
        || headers.contains_key(axum::http::header::IF_MATCH)
        || plan
            .member_ops
            .iter()
            .any(|op| matches!(op, MemberOp::Replace(_) | MemberOp::RemoveAll));
    let existing = if exclusive {
        groups::get(&tx, team, id, true).await?
    } else {
        groups::get_for_membership(&tx, team, id).await?
    }
    .ok_or_else(not_found)?;
    check_if_match(&headers, existing.version)?;
    let mut detail = Map::new();
    let mut rec = existing.clone();
    if !plan.resource_ops.operations.is_empty() {
        let mut doc = existing.resource.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("id".into(), json!(id));
        }
        plan.resource_ops.apply(&mut doc, &id.to_string())?;
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("id");
            obj.remove("meta");
            obj.remove("members");
        }
        let cols = columns(&doc)?;
        rec = groups::update(&tx, team, id, &cols, &doc).await?;
        detail.insert("before".into(), existing.resource.clone());
        detail.insert("after".into(), rec.resource.clone());
    }
    let mut member_changes = Vec::new();
    for op in &plan.member_ops {
        match op {
            MemberOp::Add(values) => {
                let ids = member_ids(values, true)?;
                require_users(&tx, team, &ids).await?;
                groups::add_members(&tx, team, id, &ids).await?;
                member_changes.push(json!({ "add": summary(&ids) }));
            }
            MemberOp::Remove(values) => {
                let ids = member_ids(values, false)?;
                groups::remove_members(&tx, team, id, &ids).await?;
                member_changes.push(json!({ "remove": summary(&ids) }));
            }
            MemberOp::RemoveAll => {
                groups::replace_members(&tx, team, id, &[]).await?;
                member_changes.push(json!({ "removeAll": true }));
            }
            MemberOp::Replace(values) => {
                let ids = member_ids(values, true)?;
                require_users(&tx, team, &ids).await?;
                groups::replace_members(&tx, team, id, &ids).await?;
                member_changes.push(json!({ "replace": summary(&ids) }));
            }
        }
    }
    if !member_changes.is_empty() {
        let change = groups::record_member_change(&tx, team, id).await?;
        rec = rec.with_member_change(change);
        detail.insert("members".into(), Value::Array(member_changes));
    }
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team),
            actor: &caller.actor,
            action: AuditAction::ScimGroupPatched,
            target: Some(&id.to_string()),
            detail: Value::Object(detail),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    if params.attributes.is_none() && params.excluded_attributes.is_none() {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&etag(rec.version)) {
            r.headers_mut().insert(axum::http::header::ETAG, v);
        }
        return Ok(r);
    }
    let request = ListRequest::parse(query.as_deref(), &GROUP, state.config.scim_max_results)?;
    let base = base_url(&state, team);
    let mut out = render_all(&client, team, std::slice::from_ref(&rec), &base, &request).await?;
    let body = out.pop().unwrap_or(Value::Null);
    Ok(reply(
        StatusCode::OK,
        &body,
        Some(rec.version),
        Some(&format!("{base}/Groups/{id}")),
    ))
}

/// `DELETE /Groups/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    caller.require(Scope::ScimWrite)?;
    let id = parse_id(&id)?;
    let team = caller.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let existing = groups::get(&tx, team, id, true)
        .await?
        .ok_or_else(not_found)?;
    check_if_match(&headers, existing.version)?;
    groups::delete(&tx, team, id).await?;
    cursors::invalidate(&state.redis, "groups", team).await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team),
            actor: &caller.actor,
            action: AuditAction::ScimGroupDeleted,
            target: Some(&id.to_string()),
            detail: json!({ "displayName": existing.resource.get("displayName") }),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
