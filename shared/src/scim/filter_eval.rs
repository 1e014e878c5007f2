//! A parsed [`Filter`] evaluated against one resource's JSON in memory: for `/Roles`,
//! for PATCH value filters (`emails[type eq "work"]`), and as the reference the SQL
//! translation ([`filter_sql`](super::filter_sql)) must agree with.
//!
//! Semantics (shared, exactly, with the SQL back end):
//! - Every term is two-valued. An attribute's *values* are read at its canonical
//!   JSON location (extension attributes under their schema URN key); a
//!   multi-valued attribute contributes each array element (a non-array contributes
//!   nothing), a single-valued one its value. Only values of the attribute's JSON type
//!   count (a string for string attributes, and so on).
//! - `attr op v` is true when *some* value compares true, so a missing attribute makes
//!   every comparison false — `ne` included: `title ne "x"` requires a title. `not`
//!   then negates that definite result: `not (title eq "x")` matches users without a
//!   title. (In SQL, `NOT` is written `IS NOT TRUE` so a NULL never stays unknown.)
//! - `pr`: some value is a non-empty string, any boolean or number, a valid dateTime,
//!   or a non-empty object (for complex attributes).
//! - Strings compare lower-cased unless the attribute is `caseExact`; ordering is by
//!   code point (Postgres `COLLATE "C"`). Booleans support `eq`/`ne` only (ordering
//!   them is refused by the parser). dateTimes compare as instants, numbers as `f64`.
//! - `attr[f]` is true when some value of `attr` (an array element, or the single
//!   complex value when its key exists) satisfies `f`.
//! - Unknown attributes have no values.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::filter::{CompValue, CompareOp, Filter, FilterAttr, parse_date_time};
use super::schema::{AttrRef, AttrType, AttributeDef};

/// Whether `resource` (a full SCIM resource JSON, as returned to clients) satisfies
/// `filter`. The filter carries its own resolved schema definitions, so no schema
/// argument is needed. Never panics, whatever the JSON.
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    eval(filter, resource, None)
}

/// Whether one value of a multi-valued complex attribute (e.g. one element of
/// `emails`) satisfies the inner filter of a value path such as `emails[type eq "work"]`.
pub fn matches_value(filter: &Filter, value: &Value) -> bool {
    eval(filter, &Value::Null, Some(value))
}

fn eval(f: &Filter, root: &Value, element: Option<&Value>) -> bool {
    match f {
        Filter::And(terms) => terms.iter().all(|t| eval(t, root, element)),
        Filter::Or(terms) => terms.iter().any(|t| eval(t, root, element)),
        Filter::Not(inner) => !eval(inner, root, element),
        Filter::Present(FilterAttr::Known(a)) => {
            let leaf = a.leaf();
            values(a, root, element)
                .into_iter()
                .any(|v| is_present(v, leaf.ty))
        }
        Filter::Compare(FilterAttr::Known(a), op, cv) => {
            let leaf = a.leaf();
            values(a, root, element)
                .into_iter()
                .any(|v| compare(v, leaf, *op, cv))
        }
        Filter::ValuePath(FilterAttr::Known(a), inner) => {
            let Some(v) = container(a, root).and_then(|c| c.get(a.attr.name)) else {
                return false;
            };
            if a.attr.multi_valued {
                v.as_array()
                    .is_some_and(|items| items.iter().any(|e| eval(inner, root, Some(e))))
            } else {
                eval(inner, root, Some(v))
            }
        }
        Filter::Present(FilterAttr::Unknown(_))
        | Filter::Compare(FilterAttr::Unknown(_), _, _)
        | Filter::ValuePath(FilterAttr::Unknown(_), _) => false,
    }
}

/// The JSON object holding `a`: the resource, or its extension object.
fn container<'v>(a: &AttrRef, root: &'v Value) -> Option<&'v Value> {
    match a.extension {
        Some(ext) => root.get(ext.id),
        None => Some(root),
    }
}

/// The candidate values of `a` (see the module docs), untyped.
fn values<'v>(a: &AttrRef, root: &'v Value, element: Option<&'v Value>) -> Vec<&'v Value> {
    if let Some(e) = element {
        // Inside a value path: `a.sub` is read from the current value.
        return a.sub.and_then(|s| e.get(s.name)).into_iter().collect();
    }
    let Some(v) = container(a, root).and_then(|c| c.get(a.attr.name)) else {
        return Vec::new();
    };
    match (a.attr.multi_valued, a.sub) {
        (true, sub) => v
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| match sub {
                        Some(s) => e.get(s.name),
                        None => Some(e),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        (false, Some(s)) => v.get(s.name).into_iter().collect(),
        (false, None) => vec![v],
    }
}

/// `pr` for one value of an attribute of type `ty`.
pub(crate) fn is_present(v: &Value, ty: AttrType) -> bool {
    match ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            v.as_str().is_some_and(|s| !s.is_empty())
        }
        AttrType::Boolean => v.is_boolean(),
        AttrType::Integer | AttrType::Decimal => v.is_number(),
        AttrType::DateTime => v.as_str().and_then(parse_date_time).is_some(),
        AttrType::Complex => v.as_object().is_some_and(|o| !o.is_empty()),
    }
}

fn compare(v: &Value, leaf: &AttributeDef, op: CompareOp, cv: &CompValue) -> bool {
    match (cv, v) {
        (CompValue::String(lit), Value::String(s)) if leaf.ty.is_textual() => {
            compare_text(s, lit, leaf.case_exact, op)
        }
        (CompValue::Boolean(lit), Value::Bool(b)) => match op {
            CompareOp::Eq => b == lit,
            CompareOp::Ne => b != lit,
            _ => false,
        },
        (CompValue::Number(lit), Value::Number(n)) => match (n.as_f64(), lit.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordered(o, op)),
            _ => false,
        },
        (CompValue::DateTime(lit), Value::String(s)) => {
            parse_date_time(s).is_some_and(|t| ordered(t.cmp(lit), op))
        }
        _ => false,
    }
}

/// String comparison per RFC 7644 §3.4.2.2, lower-casing both sides unless case-exact.
pub(crate) fn compare_text(s: &str, lit: &str, case_exact: bool, op: CompareOp) -> bool {
    let (a, b): (Cow<'_, str>, Cow<'_, str>) = if case_exact {
        (s.into(), lit.into())
    } else {
        (s.to_lowercase().into(), lit.to_lowercase().into())
    };
    match op {
        CompareOp::Co => a.contains(b.as_ref()),
        CompareOp::Sw => a.starts_with(b.as_ref()),
        CompareOp::Ew => a.ends_with(b.as_ref()),
        _ => ordered(a.as_ref().cmp(b.as_ref()), op),
    }
}

/// Whether `ordering` (of value against literal) satisfies a non-substring operator.
fn ordered(ordering: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{GROUP, USER};
    use proptest::prelude::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "00u1abcd",
            "userName": "Barbara.Jensen@Example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs Jensen",
            "title": "",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"},
                "not-an-object",
                null
            ],
            "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            },
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34.5Z",
                "version": "W/\"3694e05e9dff590\""
            }
        })
    }

    fn m(filter: &str) -> bool {
        let f = Filter::parse(filter, &USER).unwrap_or_else(|e| panic!("{filter}: {e}"));
        matches(&f, &user())
    }

    #[test]
    fn strings_honour_case_exact() {
        assert!(m(r#"userName eq "barbara.jensen@example.com""#));
        assert!(m(r#"USERNAME EQ "BARBARA.JENSEN@EXAMPLE.COM""#));
        assert!(!m(r#"userName ne "BARBARA.jensen@example.com""#));
        assert!(m(r#"externalId eq "00u1abcd""#));
        assert!(!m(r#"externalId eq "00U1ABCD""#));
        assert!(!m(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        assert!(m(r#"meta.version eq "W/\"3694e05e9dff590\"""#));
    }

    #[test]
    fn substring_and_ordering() {
        assert!(m(r#"userName co "JENSEN""#));
        assert!(m(r#"userName sw "barb""#));
        assert!(m(r#"userName ew ".COM""#));
        assert!(!m(r#"userName sw "jensen""#));
        assert!(m(r#"name.familyName gt "j""#));
        assert!(m(r#"name.familyName ge "jensen""#));
        assert!(m(r#"name.familyName le "JENSEN""#));
        assert!(!m(r#"name.familyName lt "jensen""#));
        assert!(m(r#"displayName co """#));
    }

    #[test]
    fn presence() {
        assert!(m("userName pr"));
        assert!(!m("title pr"), "empty string is not present");
        assert!(!m("nickName pr"));
        assert!(m("emails pr"));
        assert!(m("name pr"));
        assert!(!m("phoneNumbers pr"));
        assert!(m("meta.created pr"));
        assert!(m(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr"
        ));
        assert!(!m(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter pr"
        ));
    }

    #[test]
    fn missing_attributes_and_not() {
        assert!(!m(r#"nickName eq "x""#));
        assert!(!m(r#"nickName ne "x""#), "ne needs a value");
        assert!(m(r#"not (nickName eq "x")"#));
        assert!(m("nickName eq null"));
        assert!(!m("userName eq null"));
        assert!(m("userName ne null"));
        assert!(!m(r#"nope eq "x""#));
        assert!(m(r#"not (nope eq "x")"#));
        assert!(!m("nope pr"));
        assert!(!m(r#"nope[x eq 1]"#));
    }

    #[test]
    fn multi_valued_any_semantics() {
        assert!(m(r#"emails.value eq "BABS@jensen.org""#));
        assert!(m(r#"emails eq "bjensen@example.com""#));
        assert!(
            m(r#"emails.value ne "bjensen@example.com""#),
            "some email differs"
        );
        assert!(m(r#"emails.type eq "home""#));
        assert!(m(r#"emails[type eq "work" and primary eq true]"#));
        assert!(!m(r#"emails[type eq "home" and primary eq true]"#));
        assert!(m(r#"emails[type eq "home" or primary eq true]"#));
        // Elements that are not objects have no sub-attributes, so `not` holds there.
        assert!(m(r#"emails[not (type pr)]"#));
        assert!(m(
            r#"groups.value eq "E9E30DBA-F08F-4109-8486-D5C6A331660A""#
        ));
        assert!(!m(r#"roles.value eq "x""#));
    }

    #[test]
    fn booleans_extensions_and_dates() {
        assert!(m("active eq true"));
        assert!(!m("active eq false"));
        assert!(m(r#"active ne "FALSE""#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "tour""#
        ));
        assert!(m(r#"department eq "tour operations""#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        ));
        assert!(m(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#));
        assert!(m(r#"meta.lastModified eq "2011-05-13T06:42:34.500+02:00""#));
        assert!(m(
            r#"meta.created lt "2011-01-01T00:00:00Z" and meta.created ge "2010-01-23T04:56:22Z""#
        ));
        assert!(!m(r#"meta.created gt "2011-01-01T00:00:00Z""#));
    }

    #[test]
    fn wrongly_typed_json_matches_nothing() {
        let odd = json!({
            "userName": 5, "active": "true", "emails": {"value": "a@b"}, "name": "x",
            "meta": {"created": "yesterday"}
        });
        for f in [
            "userName pr",
            r#"userName eq "5""#,
            "active eq true",
            "active pr",
            r#"emails.value eq "a@b""#,
            "emails pr",
            "name.givenName pr",
            "name pr",
            "meta.created pr",
            r#"meta.created lt "2030-01-01T00:00:00Z""#,
        ] {
            assert!(!matches(&Filter::parse(f, &USER).unwrap(), &odd), "{f}");
        }
        assert!(!matches(
            &Filter::parse("userName pr", &USER).unwrap(),
            &json!([1, 2])
        ));
    }

    #[test]
    fn groups_members() {
        let g = json!({"displayName": "Eng", "members": [{"value": "u1"}, {"value": "u2"}]});
        let f = |s| Filter::parse(s, &GROUP).unwrap();
        assert!(matches(&f(r#"displayName eq "ENG""#), &g));
        assert!(matches(&f(r#"members[value eq "u2"]"#), &g));
        assert!(matches(&f(r#"members.value eq "U1""#), &g));
        assert!(!matches(&f(r#"members[value eq "u3"]"#), &g));
        let v = f(r#"value eq "u1""#);
        assert!(
            !matches(&v, &json!({"value": "u1"})),
            "value is not a Group attribute"
        );
    }

    #[test]
    fn value_filter_on_one_element() {
        let Filter::ValuePath(_, inner) =
            Filter::parse(r#"emails[type eq "work"]"#, &USER).unwrap()
        else {
            panic!()
        };
        assert!(matches_value(
            &inner,
            &json!({"type": "WORK", "value": "x"})
        ));
        assert!(!matches_value(&inner, &json!({"type": "home"})));
        assert!(!matches_value(&inner, &json!("work")));
    }

    proptest! {
        #[test]
        fn never_panics(
            f in crate::scim::testing::filter_text(),
            v in crate::scim::testing::any_json(),
            u in crate::scim::testing::user(),
        ) {
            let f = Filter::parse(&f, &USER).unwrap();
            let _ = matches(&f, &v);
            let _ = matches(&f, &u);
        }
    }
}
