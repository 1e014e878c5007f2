//! Proptest strategies of SCIM Users and filters over a deliberately small alphabet, so
//! that random filters often hit random users: case variants, `%`/`_`/`\` (LIKE
//! escapes), empty strings, missing attributes, wrongly typed values, multi-valued
//! emails, extension attributes and memberships. Used by this crate's property tests
//! and, through the `testing` feature, by the worker's test that the in-memory
//! evaluator and the SQL translation agree on a real Postgres.
//!
//! Strings are ASCII on purpose: Rust's and Postgres's `lower()` agree on ASCII, while
//! for other scripts Postgres's depends on the database collation.

use proptest::prelude::*;
use proptest::strategy::Union;
use serde_json::{Map, Value, json};

use super::definitions::ENTERPRISE_USER_URN;

/// Words values are drawn from: case variants, LIKE metacharacters, the empty string.
pub const WORDS: [&str; 12] = [
    "a", "A", "ab", "aB", "AB", "b", "ba", "", "a%", "_b", "a\\b", "a.b",
];

/// A few UUIDs, so `id`, `groups.value` and `roles.value` filters sometimes match.
pub const UUIDS: [&str; 3] = [
    "6f9619ff-8b86-d011-b42d-00c04fc964ff",
    "0a1b2c3d-0000-4000-8000-000000000001",
    "0a1b2c3d-0000-4000-8000-000000000002",
];

/// A few instants, written with different offsets and precisions.
pub const TIMES: [&str; 4] = [
    "2024-01-01T00:00:00Z",
    "2024-01-01T02:00:00+02:00",
    "2024-06-30T12:30:00.250Z",
    "2025-03-01T08:00:00.000001Z",
];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(&WORDS[..]).prop_map(str::to_owned)
}

fn uuid() -> impl Strategy<Value = String> {
    prop::sample::select(&UUIDS[..]).prop_map(str::to_owned)
}

fn time() -> impl Strategy<Value = String> {
    prop::sample::select(&TIMES[..]).prop_map(str::to_owned)
}

/// Inserts `key: value` when the value is `Some`.
fn put(obj: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), v);
    }
}

fn email() -> impl Strategy<Value = Value> {
    (
        prop::option::of(word()),
        prop::option::of(prop::sample::select(&["work", "home", "WORK"][..])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(value, ty, primary)| {
            let mut e = Map::new();
            put(&mut e, "value", value.map(Value::from));
            put(&mut e, "type", ty.map(Value::from));
            put(&mut e, "primary", primary.map(Value::from));
            Value::Object(e)
        })
}

fn membership() -> impl Strategy<Value = Value> {
    prop::collection::vec(uuid(), 0..3).prop_map(|ids| {
        let mut ids = ids;
        ids.sort();
        ids.dedup();
        Value::Array(ids.into_iter().map(|id| json!({"value": id})).collect())
    })
}

/// A full User resource as returned to clients (with `id`, `meta`, `groups`, `roles`),
/// with optional attributes often missing. `userName`, `id` and `meta` are always
/// present (the database requires them); everything else may be absent.
pub fn user() -> impl Strategy<Value = Value> {
    (
        (
            uuid(),
            word(),
            prop::option::of(word()),
            prop::option::of(any::<bool>()),
        ),
        (
            prop::option::of((prop::option::of(word()), prop::option::of(word()))),
            prop::option::of(word()),
            prop::option::of(word()),
        ),
        prop::option::of(prop::collection::vec(email(), 0..4)),
        prop::option::of((prop::option::of(word()), prop::option::of(word()))),
        (time(), time()),
        (
            prop::option::of(membership()),
            prop::option::of(membership()),
        ),
    )
        .prop_map(
            |(
                (id, user_name, external_id, active),
                (name, display_name, title),
                emails,
                enterprise,
                (created, modified),
                (groups, roles),
            )| {
                let mut u = Map::new();
                u.insert("schemas".into(), json!([super::definitions::USER_URN]));
                u.insert("id".into(), id.into());
                u.insert("userName".into(), user_name.into());
                put(&mut u, "externalId", external_id.map(Value::from));
                put(&mut u, "active", active.map(Value::from));
                if let Some((given, family)) = name {
                    let mut n = Map::new();
                    put(&mut n, "givenName", given.map(Value::from));
                    put(&mut n, "familyName", family.map(Value::from));
                    u.insert("name".into(), Value::Object(n));
                }
                put(&mut u, "displayName", display_name.map(Value::from));
                put(&mut u, "title", title.map(Value::from));
                put(&mut u, "emails", emails.map(Value::from));
                if let Some((department, manager)) = enterprise {
                    let mut e = Map::new();
                    put(&mut e, "department", department.map(Value::from));
                    put(&mut e, "manager", manager.map(|m| json!({"value": m})));
                    u.insert(ENTERPRISE_USER_URN.into(), Value::Object(e));
                }
                u.insert(
                    "meta".into(),
                    json!({"resourceType": "User", "created": created, "lastModified": modified}),
                );
                put(&mut u, "groups", groups);
                put(&mut u, "roles", roles);
                Value::Object(u)
            },
        )
}

/// The columns and `resource` of a generated user, as the `users` table of
/// `filter_sql` stores them, plus its memberships (rows of `group_members` and
/// `user_roles`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    /// `users.id`.
    pub id: String,
    /// `users.user_name`.
    pub user_name: String,
    /// `users.external_id`.
    pub external_id: Option<String>,
    /// `users.active`.
    pub active: Option<bool>,
    /// `users.created_at`, as RFC 3339.
    pub created_at: String,
    /// `users.updated_at`, as RFC 3339.
    pub updated_at: String,
    /// `users.resource`: the user without `id`, `meta`, `groups`, `roles`, `password`.
    pub resource: Value,
    /// `group_members.group_id` of each membership.
    pub group_ids: Vec<String>,
    /// `user_roles.role_id` of each role.
    pub role_ids: Vec<String>,
}

/// Splits a user from [`user`] into its table row.
pub fn user_row(user: &Value) -> UserRow {
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let ids = |key: &str| -> Vec<String> {
        user.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("value").and_then(s))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut resource = user.clone();
    if let Some(obj) = resource.as_object_mut() {
        for key in ["id", "meta", "groups", "roles", "password"] {
            obj.remove(key);
        }
    }
    UserRow {
        id: user.get("id").and_then(s).unwrap_or_default(),
        user_name: user.get("userName").and_then(s).unwrap_or_default(),
        external_id: user.get("externalId").and_then(s),
        active: user.get("active").and_then(Value::as_bool),
        created_at: user
            .pointer("/meta/created")
            .and_then(s)
            .unwrap_or_default(),
        updated_at: user
            .pointer("/meta/lastModified")
            .and_then(s)
            .unwrap_or_default(),
        resource,
        group_ids: ids("groups"),
        role_ids: ids("roles"),
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Attribute spellings of string-typed User attributes, with case variants, an
/// extension attribute qualified and unqualified, and unknown attributes.
const STRING_ATTRS: [&str; 17] = [
    "userName",
    "USERNAME",
    "name.givenName",
    "Name.FamilyName",
    "displayName",
    "title",
    "externalId",
    "id",
    "emails.value",
    "emails",
    "emails.type",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "groups.value",
    "roles",
    "nickName",
];

const ANY_ATTRS: [&str; 10] = [
    "name",
    "emails",
    "active",
    "meta.created",
    "groups",
    "roles",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "unknownAttr",
    "name.nope",
    "emails.primary",
];

fn op() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        &[
            "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Co",
        ][..],
    )
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => word().prop_map(|w| quoted(&w)),
        1 => uuid().prop_map(|w| quoted(&w)),
        1 => uuid().prop_map(|w| quoted(&w.to_uppercase())),
    ]
}

fn leaf() -> BoxedStrategy<String> {
    Union::new_weighted(vec![
        (
            6,
            (
                prop::sample::select(&STRING_ATTRS[..]),
                op(),
                string_value(),
            )
                .prop_map(|(a, o, v)| format!("{a} {o} {v}"))
                .boxed(),
        ),
        (
            2,
            (
                prop::sample::select(&["active", "emails.primary", "ACTIVE"][..]),
                prop::sample::select(&["eq", "ne"][..]),
                prop::sample::select(&["true", "false", "False", "\"True\""][..]),
            )
                .prop_map(|(a, o, v)| format!("{a} {o} {v}"))
                .boxed(),
        ),
        (
            2,
            (
                prop::sample::select(&["meta.created", "meta.lastModified"][..]),
                prop::sample::select(&["eq", "ne", "gt", "ge", "lt", "le"][..]),
                time(),
            )
                .prop_map(|(a, o, t)| format!("{a} {o} {}", quoted(&t)))
                .boxed(),
        ),
        (
            2,
            prop::sample::select(&ANY_ATTRS[..])
                .prop_map(|a| format!("{a} pr"))
                .boxed(),
        ),
        (
            1,
            (
                prop::sample::select(&["title", "externalId", "name.givenName"][..]),
                prop::sample::select(&["eq", "ne"][..]),
            )
                .prop_map(|(a, o)| format!("{a} {o} null"))
                .boxed(),
        ),
        (2, value_path().boxed()),
    ])
    .boxed()
}

fn emails_inner_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::sample::select(&["value", "type", "Value"][..]),
            op(),
            word()
        )
            .prop_map(|(a, o, w)| format!("{a} {o} {}", quoted(&w))),
        prop::sample::select(
            &[
                "primary eq true",
                "primary ne true",
                "type pr",
                "value pr",
                "display pr"
            ][..]
        )
        .prop_map(str::to_owned),
        prop::sample::select(&["work", "home"][..]).prop_map(|t| format!("type eq \"{t}\"")),
    ]
}

fn value_path() -> impl Strategy<Value = String> {
    let inner = emails_inner_leaf().prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    });
    prop_oneof![
        4 => inner.prop_map(|i| format!("emails[{i}]")),
        1 => uuid().prop_map(|u| format!("groups[value eq \"{u}\"]")),
        1 => uuid().prop_map(|u| format!("roles[value eq \"{u}\" or value eq \"{}\"]", UUIDS[0])),
        1 => word().prop_map(|w| format!("name[givenName eq {} or familyName pr]", quoted(&w))),
    ]
}

/// A valid User filter: leaves of every kind combined with `and`, `or`, `not` and
/// parentheses, in mixed case.
pub fn filter_text() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(&["and", "or", "AND", "Or"][..]),
                inner.clone()
            )
                .prop_map(|(a, k, b)| format!("{a} {k} {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

/// Arbitrary JSON whose keys are often User attribute names, for robustness tests.
pub fn any_json() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(
        &[
            "userName",
            "name",
            "givenName",
            "emails",
            "value",
            "type",
            "primary",
            "active",
            "meta",
            "created",
            "groups",
            "roles",
            "x",
            ENTERPRISE_USER_URN,
            "department",
        ][..],
    )
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::from),
        time().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
