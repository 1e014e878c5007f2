//! The PATCH engine (RFC 7644 §3.5.2): a request body parsed into operations, applied
//! to a resource's JSON atomically (on a copy, committed only if every operation
//! succeeds), plus the plan that keeps a Group's membership out of memory.
//!
//! Behaviour, including what IdPs send beyond the RFC:
//! - `op` in any case (`Replace`, Entra); `remove` without `path` is `400 noTarget`.
//! - Without `path`, `value` is an object whose keys are attribute paths (also
//!   URN-qualified, dotted, or a whole extension object). Unknown keys are ignored, as
//!   on POST/PUT; an `id` equal to the resource's own id is ignored (Okta sends it on
//!   every group push, OKTA.md §2), any other read-only attribute is `400 mutability`.
//! - `add` appends to multi-valued attributes without duplicating identical values;
//!   `replace` replaces them. On complex single-valued attributes both merge the given
//!   sub-attributes (RFC 7644 §3.5.2.1, §3.5.2.3). A null value unassigns.
//! - `attr[filter]` selects values: `replace` with no match is `400 noTarget`;
//!   `add` with no match creates a value from the filter's `eq` terms (Entra adds
//!   `emails[type eq "work"].value` that way); `remove` with no match does nothing.
//! - `remove` on a multi-valued attribute with a `value` removes those values
//!   (matched by their `value` sub-attribute), as Entra writes it.
//! - Values are type-checked and canonicalised ([`value`](super::value)):
//!   `"True"`/`"False"` become booleans; wrong types are `400 invalidValue`.
//! - Setting `primary: true` on one value clears it on the others.
//! - `password` (write-only) is accepted and dropped; it is never stored.
//! - Leaving a required attribute (`userName`) unassigned is `400 mutability`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::definitions::GROUP;
use super::error::{ScimError, ScimType};
use super::filter::{CompValue, CompareOp, Filter, FilterAttr, ValueFilterText};
use super::filter_eval::matches_value;
use super::path::PatchPath;
use super::schema::{AttrRef, AttributeDef, Mutability, ResourceType};
use super::value::{
    canonical_single, canonical_value, check_required, enforce_single_primary, get_ci, normalize,
    object_entry,
};

/// URN of the PATCH request message schema.
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PATCH operation's `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchOpKind {
    /// Add values (append to multi-valued attributes).
    Add,
    /// Remove an attribute or values.
    Remove,
    /// Replace an attribute or values.
    Replace,
}

impl PatchOpKind {
    /// The operation spelled `s`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Add, Self::Remove, Self::Replace]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// The operation as the RFC writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Replace => "replace",
        }
    }
}

/// One operation of a PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// What to do.
    pub op: PatchOpKind,
    /// Where; `None` means the resource itself (then `value` is an object).
    pub path: Option<PatchPath>,
    /// The value, as sent (canonicalised when applied).
    pub value: Option<Value>,
}

/// A parsed PATCH request for one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The type of the resource the request targets; paths were resolved against it.
    pub resource_type: &'static ResourceType,
    /// The operations, applied in order.
    pub operations: Vec<PatchOperation>,
}

/// A change of a Group's membership, applied by the caller in SQL, in order, so a
/// 50 000-member group is never loaded to be patched. Ids are member `value`s as
/// sent (deduplicated); the caller decides what an unknown id means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOp {
    /// Add these members (`add` with `path: members`, or `members` in a path-less add).
    Add(Vec<String>),
    /// Remove these members (`members[value eq "…"]`, `… or value eq "…"`, or Entra's
    /// `remove` with `path: members` and a value list).
    Remove(Vec<String>),
    /// Remove every member (`remove` with `path: members` and no value).
    RemoveAll,
    /// Make these the only members (`replace` of `members`, with or without path).
    Replace(Vec<String>),
}

/// A Group PATCH split in two: operations on the group's JSON (which carries no
/// `members`), and the membership changes.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPatchPlan {
    /// Apply with [`PatchRequest::apply`] to the group JSON without `members`. May
    /// have no operations.
    pub resource_ops: PatchRequest,
    /// Apply in order to the membership table.
    pub member_ops: Vec<MemberOp>,
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidSyntax, detail)
}

fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::NoTarget, detail)
}

fn mutability(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::Mutability, detail)
}

impl PatchRequest {
    /// Parses a PATCH body for a resource of type `rt`: `schemas` must list
    /// [`PATCH_OP_URN`] and `Operations` must be a non-empty array (both keys in any
    /// case), else `400 invalidSyntax`; paths are parsed here, so a bad path fails
    /// before anything is applied.
    pub fn parse(body: &Value, rt: &'static ResourceType) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| syntax("the PATCH body must be a JSON object"))?;
        let has_urn = get_ci(obj, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter().any(|s| {
                    s.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_URN))
                })
            });
        if !has_urn {
            return Err(syntax(format!("'schemas' must contain {PATCH_OP_URN}")));
        }
        let ops = get_ci(obj, "Operations")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| syntax("'Operations' must be a non-empty array"))?;
        let mut operations = Vec::with_capacity(ops.len());
        for (i, raw) in ops.iter().enumerate() {
            let o = raw
                .as_object()
                .ok_or_else(|| syntax(format!("Operations[{i}] must be an object")))?;
            let op = get_ci(o, "op")
                .and_then(Value::as_str)
                .and_then(PatchOpKind::parse)
                .ok_or_else(|| {
                    syntax(format!("Operations[{i}].op must be add, remove or replace"))
                })?;
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(PatchPath::parse(s, rt)?),
                Some(_) => return Err(syntax(format!("Operations[{i}].path must be a string"))),
            };
            let value = get_ci(o, "value").cloned();
            match (op, &path, &value) {
                (PatchOpKind::Remove, None, _) => {
                    return Err(no_target(format!("Operations[{i}]: remove needs a path")));
                }
                (PatchOpKind::Add | PatchOpKind::Replace, _, None) => {
                    return Err(syntax(format!(
                        "Operations[{i}]: {} needs a value",
                        op.as_str()
                    )));
                }
                _ => {}
            }
            operations.push(PatchOperation { op, path, value });
        }
        Ok(Self {
            resource_type: rt,
            operations,
        })
    }

    /// Applies every operation to `resource` (the resource's JSON object; extra keys
    /// such as `id` and `meta` may be present and are protected as read-only).
    /// `resource_id` is the resource's id, for Okta's echo of it. Either every
    /// operation applies and `resource` is replaced, or `resource` is untouched and
    /// the first failure is returned. Returns whether anything changed.
    pub fn apply(&self, resource: &mut Value, resource_id: &str) -> Result<bool, ScimError> {
        let Some(original) = resource.as_object() else {
            return Err(ScimError::internal());
        };
        let rt = self.resource_type;
        let mut work = original.clone();
        for op in &self.operations {
            apply_operation(&mut work, op, rt, resource_id)?;
        }
        normalize(&mut work, rt);
        check_required(&work, rt, ScimType::Mutability)?;
        let patched = Value::Object(work);
        let changed = patched != *resource;
        *resource = patched;
        Ok(changed)
    }

    /// Splits a Group request into operations on the group JSON and membership
    /// changes (see [`GroupPatchPlan`]). Only for requests parsed against `GROUP`.
    pub fn into_group_plan(self) -> Result<GroupPatchPlan, ScimError> {
        if self.resource_type.id != GROUP.id {
            return Err(ScimError::internal());
        }
        let mut resource_ops = Vec::new();
        let mut member_ops = Vec::new();
        for op in self.operations {
            match &op.path {
                Some(PatchPath::Attribute { attr, filter }) if attr.is("members") => {
                    member_ops.push(member_op(op.op, attr, filter.as_ref(), op.value.as_ref())?);
                }
                None => {
                    let Some(Value::Object(fields)) = &op.value else {
                        resource_ops.push(op);
                        continue;
                    };
                    let mut rest = Map::new();
                    for (k, v) in fields {
                        match PatchPath::parse(k, &GROUP) {
                            Ok(PatchPath::Attribute { attr, filter: None })
                                if attr.is("members") =>
                            {
                                member_ops.push(member_op(op.op, &attr, None, Some(v))?);
                            }
                            _ => {
                                rest.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    if !rest.is_empty() {
                        resource_ops.push(PatchOperation {
                            op: op.op,
                            path: None,
                            value: Some(Value::Object(rest)),
                        });
                    }
                }
                Some(_) => resource_ops.push(op),
            }
        }
        Ok(GroupPatchPlan {
            resource_ops: PatchRequest {
                resource_type: &GROUP,
                operations: resource_ops,
            },
            member_ops,
        })
    }
}

fn member_op(
    kind: PatchOpKind,
    attr: &AttrRef,
    filter: Option<&Filter>,
    value: Option<&Value>,
) -> Result<MemberOp, ScimError> {
    if attr.sub.is_some() {
        return Err(ScimError::bad_request(
            ScimType::InvalidPath,
            "members can only be added, removed or replaced whole",
        ));
    }
    match (kind, filter, value) {
        (PatchOpKind::Remove, Some(f), _) => {
            let mut ids = Vec::new();
            filter_ids(f, &mut ids)?;
            Ok(MemberOp::Remove(dedup(ids)))
        }
        (_, Some(_), _) => Err(ScimError::bad_request(
            ScimType::InvalidPath,
            "a filtered members path can only be removed",
        )),
        (PatchOpKind::Add, None, Some(v)) => Ok(MemberOp::Add(member_ids(v)?)),
        (PatchOpKind::Replace, None, Some(v)) => Ok(MemberOp::Replace(member_ids(v)?)),
        (PatchOpKind::Remove, None, Some(v)) if !v.is_null() => {
            Ok(MemberOp::Remove(member_ids(v)?))
        }
        (PatchOpKind::Remove, None, _) => Ok(MemberOp::RemoveAll),
        (_, None, None) => Err(syntax("a members operation needs a value")),
    }
}

/// The ids of `members[value eq "a" or value eq "b"]`.
fn filter_ids(f: &Filter, out: &mut Vec<String>) -> Result<(), ScimError> {
    match f {
        Filter::Compare(FilterAttr::Known(a), CompareOp::Eq, CompValue::String(id))
            if a.sub.is_some_and(|s| s.name == "value") =>
        {
            out.push(id.clone());
            Ok(())
        }
        Filter::Or(terms) => terms.iter().try_for_each(|t| filter_ids(t, out)),
        _ => Err(ScimError::bad_request(
            ScimType::InvalidFilter,
            "a members filter must be value eq \"<id>\", optionally joined with or",
        )),
    }
}

/// The `value`s of a members value: an array (or one) of `{"value": id, …}`, or of ids.
fn member_ids(v: &Value) -> Result<Vec<String>, ScimError> {
    let items: &[Value] = match v {
        Value::Array(a) => a,
        Value::Null => &[],
        single => std::slice::from_ref(single),
    };
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::String(s) => s,
            Value::Object(o) => get_ci(o, "value").and_then(Value::as_str).ok_or_else(|| {
                ScimError::bad_request(ScimType::InvalidValue, "each member needs a string 'value'")
            })?,
            _ => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    "members must be objects with a 'value'",
                ));
            }
        };
        ids.push(id.to_owned());
    }
    Ok(dedup(ids))
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

fn apply_operation(
    work: &mut Map<String, Value>,
    op: &PatchOperation,
    rt: &'static ResourceType,
    resource_id: &str,
) -> Result<(), ScimError> {
    if let Some(path) = &op.path {
        return apply_path(work, op.op, path, op.value.as_ref(), rt);
    }
    let Some(Value::Object(fields)) = &op.value else {
        return Err(ScimError::bad_request(
            ScimType::InvalidValue,
            "without a path, the value must be an object of attributes",
        ));
    };
    for (key, v) in fields {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let path = match PatchPath::parse(key, rt) {
            Ok(p) => p,
            // Unknown attributes in a path-less value are ignored, as on POST/PUT.
            Err(e) if e.scim_type == Some(ScimType::InvalidPath) => continue,
            Err(e) => return Err(e),
        };
        if let PatchPath::Attribute { attr, filter: None } = &path
            && attr.is("id")
            && attr.sub.is_none()
            && v.as_str() == Some(resource_id)
        {
            continue;
        }
        apply_path(work, op.op, &path, Some(v), rt)?;
    }
    Ok(())
}

fn apply_path(
    work: &mut Map<String, Value>,
    kind: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
    rt: &ResourceType,
) -> Result<(), ScimError> {
    match path {
        PatchPath::Attribute { attr, filter } => {
            apply_attr(work, kind, attr, filter.as_ref(), value)
        }
        PatchPath::Extension(ext) => {
            if kind == PatchOpKind::Remove || value.is_none_or(Value::is_null) {
                if rt
                    .extensions
                    .iter()
                    .any(|e| e.schema.id == ext.id && e.required)
                {
                    return Err(mutability(format!("the extension {} is required", ext.id)));
                }
                if kind != PatchOpKind::Add {
                    work.remove(ext.id);
                }
                return Ok(());
            }
            let Some(Value::Object(fields)) = value else {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("'{}' must be an object", ext.id),
                ));
            };
            for (k, v) in fields {
                if let Some(attr) = ext.attribute(k) {
                    let a = AttrRef {
                        extension: Some(ext),
                        attr,
                        sub: None,
                    };
                    apply_attr(work, kind, &a, None, Some(v))?;
                }
            }
            Ok(())
        }
        PatchPath::Foreign { urn, name, sub } => {
            apply_foreign(work, kind, urn, name, sub.as_deref(), value)
        }
    }
}

/// An attribute of an extension we do not define: stored as sent, without checks.
fn apply_foreign(
    work: &mut Map<String, Value>,
    kind: PatchOpKind,
    urn: &str,
    name: &str,
    sub: Option<&str>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let key = work
        .keys()
        .find(|k| k.eq_ignore_ascii_case(urn))
        .cloned()
        .unwrap_or_else(|| urn.to_owned());
    let value = value.filter(|v| !v.is_null());
    match (kind, value) {
        (PatchOpKind::Remove, _) | (PatchOpKind::Replace, None) => {
            if let Some(ext) = work.get_mut(&key).and_then(Value::as_object_mut) {
                match sub {
                    None => {
                        ext.remove(name);
                    }
                    Some(s) => {
                        if let Some(o) = ext.get_mut(name).and_then(Value::as_object_mut) {
                            o.remove(s);
                        }
                    }
                }
            }
        }
        (PatchOpKind::Add, None) => {}
        (_, Some(v)) => {
            let ext = object_entry(work, &key)?;
            match sub {
                None => match (ext.get_mut(name), v) {
                    (Some(Value::Array(items)), Value::Array(new)) if kind == PatchOpKind::Add => {
                        for item in new {
                            if !items.contains(item) {
                                items.push(item.clone());
                            }
                        }
                    }
                    _ => {
                        ext.insert(name.to_owned(), v.clone());
                    }
                },
                Some(s) => {
                    object_entry(ext, name)?.insert(s.to_owned(), v.clone());
                }
            }
        }
    }
    Ok(())
}

fn apply_attr(
    work: &mut Map<String, Value>,
    kind: PatchOpKind,
    a: &AttrRef,
    filter: Option<&Filter>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let (attr, leaf) = (a.attr, a.leaf());
    if attr.mutability == Mutability::ReadOnly || leaf.mutability == Mutability::ReadOnly {
        return Err(mutability(format!("'{a}' is read-only")));
    }
    if attr.mutability == Mutability::WriteOnly || leaf.mutability == Mutability::WriteOnly {
        // Accepted and dropped: write-only values (password) are never stored.
        return Ok(());
    }
    let container = match a.extension {
        None => work,
        Some(ext) if kind == PatchOpKind::Remove && !work.contains_key(ext.id) => return Ok(()),
        Some(ext) => object_entry(work, ext.id)?,
    };
    let before = match attr.mutability {
        Mutability::Immutable => container.get(attr.name).filter(|v| !v.is_null()).cloned(),
        _ => None,
    };
    match (filter, a.sub) {
        (Some(f), sub) => apply_filtered(container, kind, a, f, sub, value)?,
        (None, None) => apply_whole(container, kind, a, value)?,
        (None, Some(sub)) if attr.multi_valued => apply_sub_of_all(container, kind, a, sub, value)?,
        (None, Some(sub)) => apply_sub(container, kind, a, sub, value)?,
    }
    if let Some(before) = before
        && container.get(attr.name) != Some(&before)
    {
        return Err(mutability(format!("'{a}' is immutable")));
    }
    Ok(())
}

/// The value to write for add/replace; `None` means "unassign" (a null or absent value).
fn given(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

/// The array at `obj[key]`, created (or replacing a non-array) if needed.
fn array_entry<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Vec<Value>, ScimError> {
    if !obj.get(key).is_some_and(Value::is_array) {
        obj.insert(key.to_owned(), Value::Array(Vec::new()));
    }
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .ok_or_else(ScimError::internal)
}

fn remove_if_empty(container: &mut Map<String, Value>, name: &str) {
    let empty = match container.get(name) {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    if empty {
        container.remove(name);
    }
}

fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

/// `path: attr` (no sub-attribute, no filter).
fn apply_whole(
    container: &mut Map<String, Value>,
    kind: PatchOpKind,
    a: &AttrRef,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = a.attr.name;
    match (kind, given(value)) {
        (PatchOpKind::Remove, Some(v)) if a.attr.multi_valued => remove_values(container, a, v)?,
        (PatchOpKind::Remove, _) | (PatchOpKind::Replace, None) => {
            container.remove(name);
        }
        (PatchOpKind::Add, None) => {}
        (_, Some(v)) => {
            let new = canonical_value(a.attr, a, v)?;
            match new {
                Value::Array(new) if kind == PatchOpKind::Add => {
                    let items = array_entry(container, name)?;
                    let mut preferred = None;
                    for item in new {
                        let at = match items.iter().position(|e| *e == item) {
                            Some(at) => at,
                            None => {
                                items.push(item);
                                items.len() - 1
                            }
                        };
                        if items.get(at).is_some_and(is_primary) {
                            preferred = Some(at);
                        }
                    }
                    enforce_single_primary(items, preferred);
                }
                Value::Object(new) => object_entry(container, name)?.extend(new),
                other => {
                    container.insert(name.to_owned(), other);
                }
            }
            remove_if_empty(container, name);
        }
    }
    Ok(())
}

/// Entra's `remove` of values from a multi-valued attribute: each given value removes
/// the values equal to it, or with the same `value` sub-attribute.
fn remove_values(
    container: &mut Map<String, Value>,
    a: &AttrRef,
    v: &Value,
) -> Result<(), ScimError> {
    let Value::Array(targets) = canonical_value(a.attr, a, v)? else {
        return Err(ScimError::internal());
    };
    let value_sub = a.attr.value_sub_attribute();
    if let Some(Value::Array(items)) = container.get_mut(a.attr.name) {
        items.retain(|e| !targets.iter().any(|t| same_value(e, t, value_sub)));
    }
    remove_if_empty(container, a.attr.name);
    Ok(())
}

fn same_value(e: &Value, t: &Value, value_sub: Option<&AttributeDef>) -> bool {
    match (value_sub, e.get("value"), t.get("value")) {
        (Some(sub), Some(Value::String(x)), Some(Value::String(y))) => {
            if sub.case_exact {
                x == y
            } else {
                x.to_lowercase() == y.to_lowercase()
            }
        }
        _ => e == t,
    }
}

/// `path: attr.sub` on a single-valued complex attribute.
fn apply_sub(
    container: &mut Map<String, Value>,
    kind: PatchOpKind,
    a: &AttrRef,
    sub: &AttributeDef,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = a.attr.name;
    match (kind, given(value)) {
        (PatchOpKind::Remove, _) | (PatchOpKind::Replace, None) => {
            if let Some(obj) = container.get_mut(name).and_then(Value::as_object_mut) {
                obj.remove(sub.name);
            }
        }
        (PatchOpKind::Add, None) => {}
        (_, Some(v)) => {
            let c = canonical_single(sub, a, v)?;
            object_entry(container, name)?.insert(sub.name.to_owned(), c);
        }
    }
    remove_if_empty(container, name);
    Ok(())
}

/// `path: attr.sub` on a multi-valued attribute: every value's sub-attribute (a new
/// value if there is none yet).
fn apply_sub_of_all(
    container: &mut Map<String, Value>,
    kind: PatchOpKind,
    a: &AttrRef,
    sub: &AttributeDef,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = a.attr.name;
    match (kind, given(value)) {
        (PatchOpKind::Remove, _) | (PatchOpKind::Replace, None) => {
            if let Some(Value::Array(items)) = container.get_mut(name) {
                for o in items.iter_mut().filter_map(Value::as_object_mut) {
                    o.remove(sub.name);
                }
            }
        }
        (PatchOpKind::Add, None) => {}
        (_, Some(v)) => {
            let c = canonical_single(sub, a, v)?;
            let items = array_entry(container, name)?;
            if items.is_empty() {
                let mut o = Map::new();
                o.insert(sub.name.to_owned(), c);
                items.push(Value::Object(o));
            } else {
                for o in items.iter_mut().filter_map(Value::as_object_mut) {
                    o.insert(sub.name.to_owned(), c.clone());
                }
            }
            enforce_single_primary(items, None);
        }
    }
    remove_if_empty(container, name);
    Ok(())
}

/// `path: attr[filter]` or `attr[filter].sub`.
fn apply_filtered(
    container: &mut Map<String, Value>,
    kind: PatchOpKind,
    a: &AttrRef,
    filter: &Filter,
    sub: Option<&'static AttributeDef>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = a.attr.name;
    let matched: Vec<usize> = match container.get(name) {
        Some(Value::Array(items)) => (0..items.len())
            .filter(|&i| items.get(i).is_some_and(|e| matches_value(filter, e)))
            .collect(),
        _ => Vec::new(),
    };
    if kind == PatchOpKind::Remove {
        if let Some(Value::Array(items)) = container.get_mut(name) {
            match sub {
                None => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !matched.contains(&i);
                        i += 1;
                        keep
                    });
                }
                Some(s) => {
                    for &i in &matched {
                        if let Some(o) = items.get_mut(i).and_then(Value::as_object_mut) {
                            o.remove(s.name);
                        }
                    }
                }
            }
        }
        remove_if_empty(container, name);
        return Ok(());
    }
    // Add or replace: the canonical value to write at each selected value.
    let new = match (given(value), sub) {
        (None, _) => None,
        (Some(v), Some(s)) => Some(canonical_single(s, a, v)?),
        (Some(v), None) => Some(canonical_single(a.attr, a, v)?),
    };
    if matched.is_empty() {
        if kind == PatchOpKind::Replace {
            return Err(no_target(format!(
                "no value of '{name}' matches [{}]",
                ValueFilterText(filter)
            )));
        }
        return match new {
            Some(new) => add_described_value(container, name, filter, sub, new),
            None => Ok(()),
        };
    }
    let items = array_entry(container, name)?;
    match new {
        // Replace with null: unassign the selected values (or their sub-attribute).
        None if kind == PatchOpKind::Replace => match sub {
            None => {
                let mut i = 0;
                items.retain(|_| {
                    let keep = !matched.contains(&i);
                    i += 1;
                    keep
                });
            }
            Some(s) => {
                for &i in &matched {
                    if let Some(o) = items.get_mut(i).and_then(Value::as_object_mut) {
                        o.remove(s.name);
                    }
                }
            }
        },
        None => {}
        Some(new) => {
            for &i in &matched {
                let Some(o) = items.get_mut(i).and_then(Value::as_object_mut) else {
                    continue;
                };
                match (sub, &new) {
                    (Some(s), c) => {
                        o.insert(s.name.to_owned(), c.clone());
                    }
                    (None, Value::Object(fields)) => {
                        o.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    (None, _) => {}
                }
            }
            let preferred = matched
                .iter()
                .rev()
                .copied()
                .find(|&i| items.get(i).is_some_and(is_primary));
            enforce_single_primary(items, preferred);
        }
    }
    remove_if_empty(container, name);
    Ok(())
}

/// `add` to `attr[filter]` when nothing matches: append the value the filter
/// describes, with `new` written at `sub` (or merged, without `sub`).
fn add_described_value(
    container: &mut Map<String, Value>,
    name: &str,
    filter: &Filter,
    sub: Option<&'static AttributeDef>,
    new: Value,
) -> Result<(), ScimError> {
    let Some(mut created) = equalities(filter) else {
        return Err(no_target(format!(
            "no value of '{name}' matches the filter, and one cannot be created from it"
        )));
    };
    match (sub, new) {
        (Some(s), c) => {
            created.insert(s.name.to_owned(), c);
        }
        (None, Value::Object(o)) => created.extend(o),
        (None, _) => return Err(ScimError::internal()),
    }
    let items = array_entry(container, name)?;
    items.push(Value::Object(created));
    let last = items.len() - 1;
    enforce_single_primary(items, Some(last));
    Ok(())
}

/// The value a filter of `eq` terms joined by `and` describes
/// (`type eq "work"` → `{"type": "work"}`); `None` for any other filter.
fn equalities(f: &Filter) -> Option<Map<String, Value>> {
    let terms: &[Filter] = match f {
        Filter::And(terms) => terms,
        other => std::slice::from_ref(other),
    };
    let mut out = Map::new();
    for t in terms {
        let Filter::Compare(FilterAttr::Known(a), CompareOp::Eq, v) = t else {
            return None;
        };
        let sub = a.sub?;
        let json = match v {
            CompValue::String(s) => Value::String(s.clone()),
            CompValue::Boolean(b) => Value::Bool(*b),
            CompValue::Number(n) => Value::Number(n.clone()),
            CompValue::DateTime(_) => return None,
        };
        out.insert(sub.name.to_owned(), json);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
