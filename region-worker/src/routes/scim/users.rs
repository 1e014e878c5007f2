//! `/Users` and `/Users/{id}`: Okta's provisioning of people (OKTA.md §1, §5). A user's
//! roles are read and written through `roles`; deactivating or deleting a user ends
//! every session and token of theirs on the next request.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::ids::TeamId;
use shared::scim::definitions::{USER, USER_URN};
use shared::scim::error::{ScimError, ScimType};
use shared::scim::filter_sql::USERS;
use shared::scim::patch::PatchRequest;
use shared::scim::value::canonicalize_resource;
use shared::scope::Scope;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::ScimCaller;
use super::io::{ScimFailure, ScimJson, check_if_match, etag, not_modified, reply, require_schema};
use super::listing::{self, ListRequest};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::roles::Role;
use crate::store::users::{self, UserColumns, UserRecord, UserSource};
use crate::store::{cursors, tokens};

type Result<T> = std::result::Result<T, ScimFailure>;

/// Longest `userName` accepted (an email is at most 254 characters).
const MAX_USER_NAME: usize = 256;

/// The SCIM base URL of the caller's workspace.
pub fn base_url(state: &AppState, team_id: TeamId) -> String {
    format!(
        "{}{}",
        state.config.region.api_base(),
        crate::paths::api::scim_base(team_id)
    )
}

fn not_found() -> ScimFailure {
    ScimError::not_found("No user with this id in this workspace.").into()
}

/// Unknown or unparsable ids are `404`, never `400` (OKTA.md §1).
fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

fn timestamp(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The full SCIM representation of a stored user (with the roles and groups it was
/// read with).
pub fn render(rec: UserRecord, base: &str) -> Value {
    let mut v = match rec.resource {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    v.insert("id".into(), json!(rec.id));
    v.insert("active".into(), json!(rec.active));
    if !v.contains_key("schemas") {
        v.insert("schemas".into(), json!([USER_URN]));
    }
    if !rec.roles.is_empty() {
        let list: Vec<Value> = rec
            .roles
            .iter()
            .map(|(id, name)| json!({ "value": id, "display": name }))
            .collect();
        v.insert("roles".into(), Value::Array(list));
    }
    if !rec.groups.is_empty() {
        let list: Vec<Value> = rec
            .groups
            .iter()
            .map(|(id, name)| json!({ "value": id, "display": name, "$ref": format!("{base}/Groups/{id}"), "type": "direct" }))
            .collect();
        v.insert("groups".into(), Value::Array(list));
    }
    v.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": timestamp(rec.created_at),
            "lastModified": timestamp(rec.updated_at),
            "location": format!("{base}/Users/{}", rec.id),
            "version": etag(rec.version),
        }),
    );
    Value::Object(v)
}

/// `GET /Users`: filter, paging, projection. An unmatched filter is an empty list.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    caller.require(Scope::ScimRead)?;
    let request = ListRequest::parse(query.as_deref(), &USER, state.config.scim_max_results)?;
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let (total, records) =
        listing::run::<UserRecord>(&state, &client, caller.team_id, &request, &USERS).await?;
    let base = base_url(&state, caller.team_id);
    let resources = records
        .into_iter()
        .map(|r| request.project(render(r, &base)))
        .collect();
    Ok(request.respond(total, resources))
}

/// `GET /Users/{id}`.
pub async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    caller.require(Scope::ScimRead)?;
    let id = parse_id(&id)?;
    let request = ListRequest::parse(query.as_deref(), &USER, state.config.scim_max_results)?;
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let rec = users::get(&client, caller.team_id, id, false)
        .await?
        .ok_or_else(not_found)?;
    if let Some(r) = not_modified(&headers, rec.version) {
        return Ok(r);
    }
    let base = base_url(&state, caller.team_id);
    let version = rec.version;
    let body = request.project(render(rec, &base));
    let location = format!("{base}/Users/{id}");
    Ok(reply(StatusCode::OK, &body, Some(version), Some(&location)))
}

/// Removes `roles` from a canonical user and resolves it to role ids of the workspace.
/// `None` when the body had no `roles`. An entry names a role by id, key or display
/// name; an unknown role is `400 invalidValue`. An empty set means the default role.
fn take_roles(resource: &mut Value, roles: &[Role]) -> Result<Option<Vec<Uuid>>> {
    let Some(list) = resource.as_object_mut().and_then(|m| m.remove("roles")) else {
        return Ok(None);
    };
    let mut ids = Vec::new();
    for entry in list.as_array().into_iter().flatten() {
        let named = entry
            .get("value")
            .and_then(Value::as_str)
            .or_else(|| entry.get("display").and_then(Value::as_str))
            .or_else(|| entry.as_str())
            .unwrap_or_default()
            .trim();
        let role = roles.iter().find(|r| {
            r.id.to_string().eq_ignore_ascii_case(named)
                || r.key.eq_ignore_ascii_case(named)
                || r.display_name.eq_ignore_ascii_case(named)
        });
        match role {
            Some(r) if !ids.contains(&r.id) => ids.push(r.id),
            Some(_) => {}
            None => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("unknown role {named:?}: see /Roles for this workspace's roles"),
                )
                .into());
            }
        }
    }
    if ids.is_empty() {
        ids.extend(roles.iter().filter(|r| r.is_default).map(|r| r.id));
    }
    Ok(Some(ids))
}

/// `(id, display name)` of the roles with these ids, in the roles' order.
fn role_refs(ids: &[Uuid], roles: &[Role]) -> Vec<(Uuid, String)> {
    roles
        .iter()
        .filter(|r| ids.contains(&r.id))
        .map(|r| (r.id, r.display_name.clone()))
        .collect()
}

fn columns(resource: &Value) -> Result<UserColumns> {
    let cols = UserColumns::of(resource).ok_or_else(|| {
        ScimError::bad_request(
            ScimType::InvalidValue,
            "userName is required and must not be blank",
        )
    })?;
    if cols.user_name.chars().count() > MAX_USER_NAME {
        return Err(ScimError::bad_request(
            ScimType::InvalidValue,
            format!("userName is longer than {MAX_USER_NAME} characters"),
        )
        .into());
    }
    Ok(cols)
}

/// The top-level attributes that differ, with their values before and after.
fn changes(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for key in b.keys().chain(a.keys()) {
        if key == "password" || out.contains_key(key) || b.get(key) == a.get(key) {
            continue;
        }
        out.insert(
            key.clone(),
            json!({ "before": b.get(key).cloned().unwrap_or(Value::Null), "after": a.get(key).cloned().unwrap_or(Value::Null) }),
        );
    }
    Value::Object(out)
}

fn conflict(cols: &UserColumns) -> ScimFailure {
    ScimError::conflict_uniqueness(format!(
        "userName {:?} is already taken in this workspace",
        cols.user_name
    ))
    .into()
}

/// `POST /Users`. A user that exists from just-in-time sign-in or as the first admin,
/// and was never provisioned, is linked (adopted) instead of conflicting: the same
/// person, one account. Without `roles` in the body a new user gets the default role
/// and a linked one keeps theirs, as `PUT` does: linking must not demote the first
/// admin to the default role.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    ScimJson(body): ScimJson,
) -> Result<Response> {
    caller.require(Scope::ScimWrite)?;
    require_schema(&body, USER_URN)?;
    let mut resource = canonicalize_resource(&body, &USER)?;
    let team = caller.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let roles = state.roles.get(&tx, team).await?;
    let requested = take_roles(&mut resource, &roles)?;
    let cols = columns(&resource)?;
    let (mut rec, role_ids, action, deactivated) = match users::insert(
        &tx,
        team,
        Uuid::new_v4(),
        &cols,
        &resource,
        UserSource::Scim,
    )
    .await?
    {
        Some(rec) => {
            let role_ids = requested.unwrap_or_else(|| {
                roles
                    .iter()
                    .filter(|r| r.is_default)
                    .map(|r| r.id)
                    .collect()
            });
            (rec, role_ids, AuditAction::ScimUserCreated, false)
        }
        None => {
            let existing = users::get_by_user_name(&tx, team, &cols.user_name)
                .await?
                .ok_or_else(|| conflict(&cols))?;
            if existing.source == UserSource::Scim || existing.external_id.is_some() {
                return Err(conflict(&cols));
            }
            let bump = existing.active && !cols.active;
            let mut rec = users::update(
                &tx,
                team,
                existing.id,
                &cols,
                &resource,
                UserSource::Scim,
                bump,
            )
            .await?;
            rec.groups = existing.groups;
            let role_ids =
                requested.unwrap_or_else(|| existing.roles.iter().map(|(rid, _)| *rid).collect());
            (rec, role_ids, AuditAction::ScimUserLinked, bump)
        }
    };
    rec.roles = role_refs(&role_ids, &roles);
    let user_id = rec.id.to_string();
    let event = AuditEvent {
        team_id: Some(team),
        actor: &caller.actor,
        action,
        target: Some(&user_id),
        detail: json!({ "userName": cols.user_name, "externalId": cols.external_id, "active": cols.active, "roles": role_ids }),
    };
    // Both statements go out on the connection together (tokio-postgres pipelines
    // concurrent queries): one round trip instead of two.
    tokio::try_join!(
        users::set_roles(
            &tx,
            team,
            rec.id,
            &role_ids,
            action == AuditAction::ScimUserCreated
        ),
        audit::record(&tx, &event),
    )?;
    if deactivated {
        tokens::publish_user_epoch(&state.redis, team, rec.id, rec.token_epoch).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    let base = base_url(&state, team);
    let location = format!("{base}/Users/{}", rec.id);
    let version = rec.version;
    Ok(reply(
        StatusCode::CREATED,
        &render(rec, &base),
        Some(version),
        Some(&location),
    ))
}

/// Computes a user's new state from the locked current one (PUT and PATCH differ only
/// here): the canonical resource and, when the request set them, the role ids.
type Change<'a> =
    Box<dyn FnOnce(&UserRecord, &[Role]) -> Result<(Value, Option<Vec<Uuid>>)> + Send + 'a>;

/// Writes a new state of an existing user: columns, roles, revocation on
/// deactivation, audit; then renders the result.
async fn save(
    state: &AppState,
    caller: &ScimCaller,
    id: Uuid,
    headers: &HeaderMap,
    action: AuditAction,
    change: Change<'_>,
) -> Result<Response> {
    let team = caller.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let existing = users::get(&tx, team, id, true)
        .await?
        .ok_or_else(not_found)?;
    check_if_match(headers, existing.version)?;
    let roles = state.roles.get(&tx, team).await?;
    let (resource, role_ids) = change(&existing, &roles)?;
    let cols = columns(&resource)?;
    let deactivated = existing.active && !cols.active;
    let mut rec = match users::update(
        &tx,
        team,
        id,
        &cols,
        &resource,
        existing.source,
        deactivated,
    )
    .await
    {
        Ok(rec) => rec,
        Err(e) if e.is_unique_violation() => return Err(conflict(&cols)),
        Err(e) => return Err(e.into()),
    };
    let current_ids: Vec<Uuid> = existing.roles.iter().map(|(rid, _)| *rid).collect();
    let mut detail = changes(&existing.resource, &rec.resource);
    match role_ids {
        Some(ids) if ids != current_ids => {
            users::set_roles(&tx, team, id, &ids, false).await?;
            if let Some(obj) = detail.as_object_mut() {
                obj.insert(
                    "roles".into(),
                    json!({ "before": current_ids, "after": ids }),
                );
            }
            rec.roles = role_refs(&ids, &roles);
        }
        _ => rec.roles = existing.roles.clone(),
    }
    rec.groups = existing.groups.clone();
    let action = if deactivated {
        AuditAction::ScimUserDeactivated
    } else if !existing.active && cols.active {
        AuditAction::ScimUserReactivated
    } else {
        action
    };
    let target = id.to_string();
    let event = AuditEvent {
        team_id: Some(team),
        actor: &caller.actor,
        action,
        target: Some(&target),
        detail,
    };
    // The revocation epoch is published before the commit: if the commit then fails,
    // tokens are refused needlessly until re-read, never accepted wrongly. It goes to
    // Redis while the audit row goes to Postgres.
    let publish = async {
        if deactivated {
            tokens::publish_user_epoch(&state.redis, team, id, rec.token_epoch).await
        } else {
            Ok(())
        }
    };
    tokio::try_join!(audit::record(&tx, &event), publish)?;
    tx.commit().await.map_err(StoreError::from)?;
    let base = base_url(state, team);
    let location = format!("{base}/Users/{id}");
    let version = rec.version;
    Ok(reply(
        StatusCode::OK,
        &render(rec, &base),
        Some(version),
        Some(&location),
    ))
}

/// `PUT /Users/{id}`: replaces the user's attributes. `roles`, when present, replaces
/// the role set; when absent, roles are kept (a client that never manages roles must
/// not strip an Admin of theirs by updating a name).
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response> {
    caller.require(Scope::ScimWrite)?;
    let id = parse_id(&id)?;
    require_schema(&body, USER_URN)?;
    if let Some(sent) = body.get("id").and_then(Value::as_str)
        && sent != id.to_string()
    {
        return Err(ScimError::bad_request(ScimType::Mutability, "id cannot be changed").into());
    }
    let mut resource = canonicalize_resource(&body, &USER)?;
    let change: Change = Box::new(move |_, roles| {
        let ids = take_roles(&mut resource, roles)?;
        Ok((resource, ids))
    });
    save(
        &state,
        &caller,
        id,
        &headers,
        AuditAction::ScimUserReplaced,
        change,
    )
    .await
}

/// `PATCH /Users/{id}`: every operation applies, or none (OKTA.md §1, RFC 7644 §3.5.2).
pub async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<ScimCaller>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response> {
    caller.require(Scope::ScimWrite)?;
    let id = parse_id(&id)?;
    let request = PatchRequest::parse(&body, &USER)?;
    let change: Change = Box::new(move |existing, roles| {
        let mut doc = existing.resource.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("id".into(), json!(id));
            obj.insert("active".into(), json!(existing.active));
            if !existing.roles.is_empty() {
                let values: Vec<Value> = existing
                    .roles
                    .iter()
                    .map(|(rid, name)| json!({ "value": rid, "display": name }))
                    .collect();
                obj.insert("roles".into(), Value::Array(values));
            }
        }
        request.apply(&mut doc, &id.to_string())?;
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("id");
            obj.remove("meta");
            obj.remove("groups");
        }
        // A PATCH that removes every role leaves the default one.
        let ids = take_roles(&mut doc, roles)?.or_else(|| {
            Some(
                roles
                    .iter()
                    .filter(|r| r.is_default)
                    .map(|r| r.id)
                    .collect(),
            )
        });
        Ok((doc, ids))
    });
    save(
        &state,
        &caller,
        id,
        &headers,
        AuditAction::ScimUserPatched,
        change,
    )
    .await
}

/// `DELETE /Users/{id}`: `204`, then `404`. Ends the user's sessions and tokens.
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
    let existing = users::get(&tx, team, id, true)
        .await?
        .ok_or_else(not_found)?;
    check_if_match(&headers, existing.version)?;
    let epoch = users::delete(&tx, team, id).await?.ok_or_else(not_found)?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team),
            actor: &caller.actor,
            action: AuditAction::ScimUserDeleted,
            target: Some(&id.to_string()),
            detail: json!({ "userName": existing.resource.get("userName") }),
        },
    )
    .await?;
    tokens::publish_user_epoch(&state.redis, team, id, epoch).await?;
    cursors::invalidate(&state.redis, "users", team).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
