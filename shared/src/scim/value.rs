//! Client values checked against the schema and brought into the canonical form the
//! store keeps and both filter back ends read: canonical attribute names (whatever
//! case the client wrote), extension attributes under their schema URN key, booleans
//! as JSON booleans (Entra writes `"True"`), read-only and write-only attributes
//! dropped, `schemas` recomputed. Used by POST/PUT ([`canonicalize_resource`]) and
//! by the PATCH engine.

use std::fmt::Display;

use serde_json::{Map, Value};

use super::error::{ScimError, ScimType};
use super::filter::parse_date_time;
use super::filter_eval::is_present;
use super::schema::{
    AttrRef, AttrType, AttributeDef, Mutability, RawPath, ResourceType, has_urn_prefix,
};

fn invalid(what: impl Display) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, what.to_string())
}

/// The value of `key` in `obj`, matching the key case-insensitively (JSON keys of
/// SCIM messages, like `Operations`, are attribute names and so case-insensitive).
pub(crate) fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The canonical form of `v` for the attribute `def` at `path` (used in errors):
/// an array for a multi-valued attribute (a single value is wrapped; nulls and exact
/// duplicates are dropped), else one value. Wrong types are `400 invalidValue`.
pub fn canonical_value(
    def: &AttributeDef,
    path: &dyn Display,
    v: &Value,
) -> Result<Value, ScimError> {
    if !def.multi_valued {
        return canonical_single(def, path, v);
    }
    let items: &[Value] = match v {
        Value::Array(items) => items,
        single => std::slice::from_ref(single),
    };
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for item in items.iter().filter(|i| !i.is_null()) {
        let c = canonical_single(def, path, item)?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    enforce_single_primary(&mut out, None);
    Ok(Value::Array(out))
}

/// The canonical form of one value (one element, for a multi-valued attribute).
pub fn canonical_single(
    def: &AttributeDef,
    path: &dyn Display,
    v: &Value,
) -> Result<Value, ScimError> {
    match (def.ty, v) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => {
            Ok(v.clone())
        }
        (AttrType::String | AttrType::Reference | AttrType::Binary, _) => {
            Err(invalid(format_args!("'{path}' must be a string")))
        }
        (AttrType::Boolean, Value::Bool(_)) => Ok(v.clone()),
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
            Ok(Value::Bool(true))
        }
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
            Ok(Value::Bool(false))
        }
        (AttrType::Boolean, _) => Err(invalid(format_args!("'{path}' must be true or false"))),
        (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(v.clone()),
        (AttrType::Integer, _) => Err(invalid(format_args!("'{path}' must be an integer"))),
        (AttrType::Decimal, Value::Number(_)) => Ok(v.clone()),
        (AttrType::Decimal, _) => Err(invalid(format_args!("'{path}' must be a number"))),
        (AttrType::DateTime, Value::String(s)) if parse_date_time(s).is_some() => Ok(v.clone()),
        (AttrType::DateTime, _) => Err(invalid(format_args!(
            "'{path}' must be an RFC 3339 timestamp"
        ))),
        (AttrType::Complex, Value::Object(obj)) => {
            let mut out = Map::new();
            for (k, sv) in obj {
                match def.sub_attribute(k) {
                    // Clients echo read-only sub-attributes (manager.displayName): ignore.
                    Some(sub) if sub.mutability == Mutability::ReadOnly => {}
                    Some(_) if sv.is_null() => {}
                    Some(sub) => {
                        let c = canonical_single(sub, &format_args!("{path}.{}", sub.name), sv)?;
                        out.insert(sub.name.to_owned(), c);
                    }
                    // Sub-attributes we do not define are kept as sent.
                    None => {
                        out.insert(k.clone(), sv.clone());
                    }
                }
            }
            Ok(Value::Object(out))
        }
        // Entra sends `manager` as the bare id: it means `{"value": id}`.
        (AttrType::Complex, Value::String(_)) if def.value_sub_attribute().is_some() => {
            let mut out = Map::new();
            out.insert("value".into(), v.clone());
            Ok(Value::Object(out))
        }
        (AttrType::Complex, _) => Err(invalid(format_args!("'{path}' must be an object"))),
    }
}

/// Keeps at most one `primary: true` among `items` (RFC 7643 §2.4): the one at
/// `preferred` if it is primary, else the last primary; the others become `false`.
pub(crate) fn enforce_single_primary(items: &mut [Value], preferred: Option<usize>) {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    let keep = preferred
        .filter(|&i| items.get(i).is_some_and(is_primary))
        .or_else(|| items.iter().rposition(is_primary));
    for (i, item) in items.iter_mut().enumerate() {
        if Some(i) != keep
            && is_primary(item)
            && let Some(obj) = item.as_object_mut()
        {
            obj.insert("primary".into(), Value::Bool(false));
        }
    }
}

/// Whether `key` names a schema extension object: a URN-looking key with an object.
pub(crate) fn is_extension_key(key: &str, v: &Value) -> bool {
    key.len() > 4 && has_urn_prefix(key) && v.is_object()
}

/// Drops empty extension objects and recomputes `schemas`: the core URN, then the
/// known extensions present, then other extension URNs present (sorted).
pub(crate) fn normalize(obj: &mut Map<String, Value>, rt: &ResourceType) {
    obj.retain(|k, v| !(is_extension_key(k, v) && v.as_object().is_some_and(Map::is_empty)));
    let mut schemas = vec![Value::from(rt.schema.id)];
    for ext in rt.extensions {
        if obj.contains_key(ext.schema.id) {
            schemas.push(ext.schema.id.into());
        }
    }
    let mut foreign: Vec<&String> = obj
        .iter()
        .filter(|(k, v)| is_extension_key(k, v) && rt.extension(k).is_none())
        .map(|(k, _)| k)
        .collect();
    foreign.sort();
    schemas.extend(foreign.into_iter().map(|k| Value::from(k.as_str())));
    obj.insert("schemas".into(), Value::Array(schemas));
}

/// Fails when a required attribute is missing or empty.
pub(crate) fn check_required(
    obj: &Map<String, Value>,
    rt: &ResourceType,
    scim_type: ScimType,
) -> Result<(), ScimError> {
    for a in rt.schema.attributes.iter().filter(|a| a.required) {
        if !obj.get(a.name).is_some_and(|v| is_present(v, a.ty)) {
            return Err(ScimError::bad_request(
                scim_type,
                format!("'{}' is required", a.name),
            ));
        }
    }
    Ok(())
}

/// The canonical stored form of a resource a client sent with POST or PUT:
/// known attributes in canonical form, unknown core attributes dropped, attributes
/// of unknown extensions (URN keys with objects) kept as sent, read-only (`id`,
/// `meta`, `groups`) and write-only (`password`) attributes dropped as RFC 7644
/// §3.3 allows, `schemas` recomputed, required attributes checked
/// (`400 invalidValue`). Keys may be URN-qualified (`urn:…:User:department`) or
/// dotted (`name.givenName`).
pub fn canonicalize_resource(input: &Value, rt: &ResourceType) -> Result<Value, ScimError> {
    let Some(input) = input.as_object() else {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "the request body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    for (key, v) in input {
        if key.eq_ignore_ascii_case("schemas") || v.is_null() {
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            let Some(fields) = v.as_object() else {
                return Err(invalid(format_args!("'{}' must be an object", ext.id)));
            };
            for (k, sv) in fields {
                if let Some(attr) = ext.attribute(k) {
                    let a = AttrRef {
                        extension: Some(ext),
                        attr,
                        sub: None,
                    };
                    set_canonical(&mut out, &a, sv)?;
                }
            }
            continue;
        }
        match RawPath::parse(key).and_then(|p| rt.resolve(&p)) {
            Some(a) => set_canonical(&mut out, &a, v)?,
            None if is_extension_key(key, v) => {
                out.insert(key.clone(), v.clone());
            }
            None => {}
        }
    }
    normalize(&mut out, rt);
    check_required(&out, rt, ScimType::InvalidValue)?;
    Ok(Value::Object(out))
}

/// Writes the canonical form of `v` at `a` into a resource, merging into an
/// existing complex value (for `name.givenName` after `name`).
fn set_canonical(out: &mut Map<String, Value>, a: &AttrRef, v: &Value) -> Result<(), ScimError> {
    let leaf = a.leaf();
    if v.is_null()
        || matches!(
            a.attr.mutability,
            Mutability::ReadOnly | Mutability::WriteOnly
        )
        || matches!(
            leaf.mutability,
            Mutability::ReadOnly | Mutability::WriteOnly
        )
    {
        return Ok(());
    }
    let container = match a.extension {
        None => out,
        Some(ext) => object_entry(out, ext.id)?,
    };
    match a.sub {
        None => {
            let c = canonical_value(a.attr, a, v)?;
            match (container.get_mut(a.attr.name), c) {
                (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
                (_, c) => {
                    container.insert(a.attr.name.to_owned(), c);
                }
            }
        }
        Some(sub) if !a.attr.multi_valued => {
            let c = canonical_single(sub, a, v)?;
            object_entry(container, a.attr.name)?.insert(sub.name.to_owned(), c);
        }
        Some(_) => {
            return Err(invalid(format_args!(
                "'{a}' names a sub-attribute of a multi-valued attribute; send '{}' as an array",
                a.attr.name
            )));
        }
    }
    Ok(())
}

/// The object at `obj[key]`, created (or replacing a non-object) if needed. The
/// error is unreachable in practice; it keeps the function total without a panic.
pub(crate) fn object_entry<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, ScimError> {
    if !obj.get(key).is_some_and(Value::is_object) {
        obj.insert(key.to_owned(), Value::Object(Map::new()));
    }
    obj.get_mut(key)
        .and_then(Value::as_object_mut)
        .ok_or_else(ScimError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{ENTERPRISE_USER_URN, GROUP, USER, USER_SCHEMA};
    use serde_json::json;

    /// Okta's create request (OKTA.md §1).
    fn okta_create() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "test.user@okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": true
        })
    }

    #[test]
    fn okta_create_is_canonicalised() {
        let c = canonicalize_resource(&okta_create(), &USER).unwrap();
        assert_eq!(
            c,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "test.user@okta.local",
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "active": true
            })
        );
    }

    #[test]
    fn names_types_and_extensions_are_canonicalised() {
        let input = json!({
            "USERNAME": "a@b",
            "Name": {"GivenName": "A", "nickname": "kept as sent"},
            "active": "False",
            "id": "client-chosen",
            "meta": {"created": "2020-01-01T00:00:00Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "Department": "R&D",
                "manager": "boss-id",
                "unknownField": 1
            },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": "CC1",
            "urn:example:custom:1.0:User": {"shoeSize": 42},
            "notAnAttribute": "dropped",
            "emails": {"value": "single@x", "primary": "TRUE"}
        });
        let c = canonicalize_resource(&input, &USER).unwrap();
        assert_eq!(
            c,
            json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    "urn:example:custom:1.0:User"
                ],
                "userName": "a@b",
                "name": {"givenName": "A", "nickname": "kept as sent"},
                "active": false,
                ENTERPRISE_USER_URN: {"department": "R&D", "manager": {"value": "boss-id"}, "costCenter": "CC1"},
                "urn:example:custom:1.0:User": {"shoeSize": 42},
                "emails": [{"value": "single@x", "primary": true}]
            })
        );
    }

    #[test]
    fn wrong_types_and_missing_required_are_invalid_value() {
        let bad = |v: Value| {
            let e = canonicalize_resource(&v, &USER).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidValue)),
                "{v}"
            );
            e.detail
        };
        assert!(bad(json!({"userName": "a", "active": "yes"})).contains("active"));
        assert!(bad(json!({"userName": 5})).contains("userName"));
        assert!(bad(json!({"userName": "a", "name": "x"})).contains("name"));
        assert!(bad(json!({"userName": "a", "emails": [{"value": 1}]})).contains("emails.value"));
        assert!(bad(json!({"displayName": "no user name"})).contains("userName"));
        assert!(bad(json!({"userName": ""})).contains("required"));
        assert!(bad(json!({"userName": "a", "emails.value": "x"})).contains("array"));
        let e = canonicalize_resource(&json!([1]), &USER).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        assert!(canonicalize_resource(&json!({"members": []}), &GROUP).is_err());
    }

    #[test]
    fn multi_valued_dedupes_and_keeps_one_primary() {
        let emails = USER_SCHEMA.attribute("emails").unwrap();
        let v = canonical_value(
            emails,
            &"emails",
            &json!([
                {"value": "a", "primary": true},
                {"value": "a", "primary": true},
                null,
                {"value": "b", "primary": true}
            ]),
        )
        .unwrap();
        assert_eq!(
            v,
            json!([{"value": "a", "primary": false}, {"value": "b", "primary": true}])
        );
    }

    #[test]
    fn non_ascii_keys_do_not_panic() {
        let input = json!({"userName": "a", "aéé": {"x": 1}, "uré:x": 1, "é": {}, "ü:ü.ü": 2});
        let c = canonicalize_resource(&input, &USER).unwrap();
        assert_eq!(
            c,
            json!({"schemas": [crate::scim::definitions::USER_URN], "userName": "a"})
        );
    }

    #[test]
    fn get_ci_prefers_exact_keys() {
        let m = json!({"operations": 1, "Operations": 2});
        assert_eq!(
            get_ci(m.as_object().unwrap(), "Operations"),
            Some(&json!(2))
        );
        assert!(get_ci(m.as_object().unwrap(), "OPERATIONS").is_some());
    }
}
