//! Tests of the PATCH engine, with the bodies Okta and Entra send.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::scim::definitions::{ENTERPRISE_USER_URN, GROUP, USER};

const ID: &str = "2819c223-7f76-453a-919d-413861904646";

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": ID,
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "roles": [{"value": "member", "display": "Member"}],
        "groups": [{"value": "g1", "display": "Tour Guides"}],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z"}
    })
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_URN], "Operations": ops})
}

fn patch(resource: &Value, ops: Value) -> Result<Value, ScimError> {
    let req = PatchRequest::parse(&body(ops), &USER)?;
    let mut r = resource.clone();
    req.apply(&mut r, ID)?;
    Ok(r)
}

fn patch_ok(ops: Value) -> Value {
    patch(&user(), ops.clone()).unwrap_or_else(|e| panic!("{ops}: {e}"))
}

fn patch_err(ops: Value) -> ScimError {
    let before = user();
    let req = PatchRequest::parse(&body(ops.clone()), &USER);
    let e = match req {
        Err(e) => e,
        Ok(req) => {
            let mut r = before.clone();
            let e = req.apply(&mut r, ID).expect_err(&ops.to_string());
            assert_eq!(
                r, before,
                "a failed PATCH must leave the resource untouched"
            );
            e
        }
    };
    assert_eq!(e.status, 400);
    e
}

#[test]
fn okta_deactivate_and_variants() {
    let okta = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]
    });
    let req = PatchRequest::parse(&okta, &USER).unwrap();
    let mut u = user();
    assert!(req.apply(&mut u, ID).unwrap());
    assert_eq!(u["active"], false);
    assert!(
        !req.apply(&mut u, ID).unwrap(),
        "a second identical PATCH changes nothing"
    );
    for ops in [
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
        json!([{"op": "REPLACE", "path": "ACTIVE", "value": false}]),
        json!([{"op": "replace", "value": {"Active": "false"}}]),
        json!([{"op": "Add", "path": "active", "value": "FALSE"}]),
    ] {
        assert_eq!(patch_ok(ops.clone())["active"], false, "{ops}");
    }
    assert_eq!(
        patch_ok(json!([{"op": "replace", "value": {"active": "True"}}]))["active"],
        true
    );
}

#[test]
fn request_shape_errors() {
    let parse = |b: Value| PatchRequest::parse(&b, &USER).unwrap_err();
    let no_schema = parse(json!({"Operations": [{"op": "replace", "value": {"active": false}}]}));
    assert_eq!(no_schema.scim_type, Some(ScimType::InvalidSyntax));
    assert_eq!(
        parse(json!({"schemas": ["x"], "Operations": []})).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse(body(json!([]))).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse(body(json!({}))).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(parse(json!("x")).scim_type, Some(ScimType::InvalidSyntax));
    assert_eq!(
        parse(body(json!([{"op": "merge", "path": "active", "value": 1}]))).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse(body(json!([{"path": "active", "value": 1}]))).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse(body(json!([1]))).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse(body(json!([{"op": "add", "path": "active"}]))).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse(body(json!([{"op": "add", "path": 5, "value": 1}]))).scim_type,
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse(body(json!([{"op": "remove"}]))).scim_type,
        Some(ScimType::NoTarget)
    );
    assert_eq!(
        parse(body(json!([{"op": "remove", "path": "nope"}]))).scim_type,
        Some(ScimType::InvalidPath)
    );
    // Keys of the message are case-insensitive, like attribute names.
    let lower = json!({"SCHEMAS": [PATCH_OP_URN.to_uppercase()], "operations": [{"OP": "remove", "PATH": "title"}]});
    assert!(PatchRequest::parse(&lower, &USER).is_ok());
}

#[test]
fn read_only_and_okta_id_echo() {
    assert_eq!(
        patch_err(json!([{"op": "replace", "path": "id", "value": "x"}])).scim_type,
        Some(ScimType::Mutability)
    );
    assert_eq!(
        patch_err(json!([{"op": "replace", "value": {"id": "other"}}])).scim_type,
        Some(ScimType::Mutability)
    );
    assert_eq!(
        patch_err(json!([{"op": "add", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]))
            .scim_type,
        Some(ScimType::Mutability)
    );
    assert_eq!(
        patch_err(json!([{"op": "remove", "path": "meta"}])).scim_type,
        Some(ScimType::Mutability)
    );
    assert_eq!(
        patch_err(json!([{"op": "add", "path": "groups", "value": [{"value": "g2"}]}])).scim_type,
        Some(ScimType::Mutability)
    );
    // Okta's rename body carries the resource's own id: accepted and ignored.
    let u = patch_ok(json!([{"op": "replace", "value": {"id": ID, "displayName": "Babs"}}]));
    assert_eq!(
        (u["id"].as_str(), u["displayName"].as_str()),
        (Some(ID), Some("Babs"))
    );
}

#[test]
fn required_attributes_cannot_be_removed() {
    for ops in [
        json!([{"op": "remove", "path": "userName"}]),
        json!([{"op": "replace", "path": "userName", "value": null}]),
        json!([{"op": "replace", "path": "userName", "value": ""}]),
    ] {
        assert_eq!(
            patch_err(ops.clone()).scim_type,
            Some(ScimType::Mutability),
            "{ops}"
        );
    }
}

#[test]
fn password_is_accepted_and_dropped() {
    let u = patch_ok(json!([
        {"op": "replace", "path": "password", "value": "hunter2"},
        {"op": "replace", "value": {"password": "x", "title": "Boss"}}
    ]));
    assert!(u.get("password").is_none());
    assert_eq!(u["title"], "Boss");
}

#[test]
fn types_are_validated() {
    for ops in [
        json!([{"op": "replace", "path": "active", "value": "yes"}]),
        json!([{"op": "replace", "path": "userName", "value": 5}]),
        json!([{"op": "add", "path": "emails", "value": [{"value": true}]}]),
        json!([{"op": "replace", "path": "name", "value": "Barbara"}]),
        json!([{"op": "replace", "value": "not an object"}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "maybe"}]),
    ] {
        assert_eq!(
            patch_err(ops.clone()).scim_type,
            Some(ScimType::InvalidValue),
            "{ops}"
        );
    }
}

#[test]
fn complex_attributes_merge() {
    let u = patch_ok(json!([{"op": "replace", "path": "name", "value": {"givenName": "Babs"}}]));
    assert_eq!(
        u["name"],
        json!({"givenName": "Babs", "familyName": "Jensen"})
    );
    let u = patch_ok(
        json!([{"op": "replace", "value": {"name": {"familyName": "J"}, "name.givenName": "B"}}]),
    );
    assert_eq!(u["name"], json!({"givenName": "B", "familyName": "J"}));
    let u = patch_ok(json!([{"op": "add", "path": "name.middleName", "value": "M"}]));
    assert_eq!(u["name"]["middleName"], "M");
    let u = patch_ok(
        json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}]),
    );
    assert!(
        u.get("name").is_none(),
        "an emptied complex attribute is unassigned"
    );
    let u = patch_ok(json!([{"op": "replace", "path": "name", "value": null}]));
    assert!(u.get("name").is_none());
}

#[test]
fn multi_valued_add_appends_dedupes_and_moves_primary() {
    let u = patch_ok(json!([{"op": "add", "path": "emails", "value": [
        {"value": "babs@jensen.org", "type": "home"},
        {"value": "new@x.com", "type": "other", "primary": "true"}
    ]}]));
    assert_eq!(
        u["emails"],
        json!([
            {"value": "bjensen@example.com", "type": "work", "primary": false},
            {"value": "babs@jensen.org", "type": "home"},
            {"value": "new@x.com", "type": "other", "primary": true}
        ])
    );
    let u = patch_ok(
        json!([{"op": "add", "path": "phoneNumbers", "value": {"value": "555", "type": "work"}}]),
    );
    assert_eq!(u["phoneNumbers"], json!([{"value": "555", "type": "work"}]));
    let u = patch_ok(json!([{"op": "replace", "path": "emails", "value": [{"value": "only@x"}]}]));
    assert_eq!(u["emails"], json!([{"value": "only@x"}]));
    let u = patch_ok(json!([{"op": "replace", "path": "emails", "value": []}]));
    assert!(u.get("emails").is_none());
}

#[test]
fn value_filtered_paths() {
    // Entra's update of the work email.
    let u = patch_ok(
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@new.com"}]),
    );
    assert_eq!(
        u["emails"][0],
        json!({"value": "b@new.com", "type": "work", "primary": true})
    );
    // Replace selecting nothing: noTarget.
    let e = patch_err(
        json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x"}]),
    );
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    // Add selecting nothing: Entra's way of creating it.
    let u = patch_ok(
        json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "555-1"}]),
    );
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "mobile", "value": "555-1"}])
    );
    let u = patch_ok(
        json!([{"op": "add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
                           {"op": "add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"}]),
    );
    assert_eq!(
        u["addresses"],
        json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield"}])
    );
    // A filter that does not describe one value cannot create one.
    let e = patch_err(
        json!([{"op": "add", "path": "emails[type eq \"x\" or type eq \"y\"].value", "value": "x"}]),
    );
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    // Whole selected values are merged.
    let u = patch_ok(
        json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"display": "Home", "primary": true}}]),
    );
    assert_eq!(
        u["emails"][1],
        json!({"value": "babs@jensen.org", "type": "home", "display": "Home", "primary": true})
    );
    assert_eq!(
        u["emails"][0]["primary"], false,
        "setting one primary clears the others"
    );
    // Remove selected values; selecting nothing is a no-op.
    let u = patch_ok(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]));
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
    let u = patch_ok(json!([{"op": "remove", "path": "emails[value co \"@\"]"}]));
    assert!(u.get("emails").is_none());
    assert_eq!(
        patch_ok(json!([{"op": "remove", "path": "emails[type eq \"none\"]"}])),
        user()
    );
    let u = patch_ok(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
    assert!(u["emails"][0].get("primary").is_none());
    // Unknown sub-attributes in the filter are errors in a PATCH path.
    assert_eq!(
        patch_err(json!([{"op": "remove", "path": "emails[typo eq \"x\"]"}])).scim_type,
        Some(ScimType::InvalidFilter)
    );
}

#[test]
fn sub_attribute_of_every_value() {
    let u = patch_ok(json!([{"op": "replace", "path": "emails.type", "value": "work"}]));
    assert!(
        u["emails"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "work")
    );
    let u = patch_ok(json!([{"op": "remove", "path": "emails.type"}]));
    assert!(
        u["emails"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("type").is_none())
    );
    let u = patch_ok(json!([{"op": "add", "path": "ims.value", "value": "me"}]));
    assert_eq!(u["ims"], json!([{"value": "me"}]));
}

#[test]
fn roles_as_okta_may_send_them() {
    let u = patch_ok(
        json!([{"op": "add", "path": "roles", "value": [{"value": "admin", "display": "Admin"}]}]),
    );
    assert_eq!(
        u["roles"],
        json!([{"value": "member", "display": "Member"}, {"value": "admin", "display": "Admin"}])
    );
    let u = patch_ok(json!([{"op": "replace", "path": "roles", "value": [{"value": "admin"}]}]));
    assert_eq!(u["roles"], json!([{"value": "admin"}]));
    let u = patch_ok(json!([{"op": "remove", "path": "roles[value eq \"member\"]"}]));
    assert!(u.get("roles").is_none());
    // Entra: remove with a value list.
    let u = patch_ok(json!([{"op": "remove", "path": "roles", "value": [{"value": "MEMBER"}]}]));
    assert!(u.get("roles").is_none());
    let u = patch_ok(
        json!([{"op": "remove", "path": "emails", "value": [{"value": "babs@jensen.org"}]}]),
    );
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
}

#[test]
fn enterprise_extension() {
    let dept = format!("{ENTERPRISE_USER_URN}:department");
    let u = patch_ok(json!([{"op": "replace", "value": {&dept: "R&D"}}]));
    assert_eq!(u[ENTERPRISE_USER_URN], json!({"department": "R&D"}));
    assert_eq!(
        u["schemas"],
        json!([crate::scim::definitions::USER_URN, ENTERPRISE_USER_URN])
    );
    let u = patch_ok(
        json!([{"op": "add", "value": {ENTERPRISE_USER_URN: {"Division": "Ops", "manager": {"value": "m1", "displayName": "ignored"}}}}]),
    );
    assert_eq!(
        u[ENTERPRISE_USER_URN],
        json!({"division": "Ops", "manager": {"value": "m1"}})
    );
    // Entra sends the manager as a bare id.
    let u = patch_ok(
        json!([{"op": "Add", "path": format!("{ENTERPRISE_USER_URN}:manager"), "value": "m2"}]),
    );
    assert_eq!(u[ENTERPRISE_USER_URN]["manager"], json!({"value": "m2"}));
    let u = patch(
        &u,
        json!([{"op": "Remove", "path": format!("{ENTERPRISE_USER_URN}:manager")}]),
    )
    .unwrap();
    assert!(
        u.get(ENTERPRISE_USER_URN).is_none(),
        "an emptied extension is dropped"
    );
    assert_eq!(u["schemas"], json!([crate::scim::definitions::USER_URN]));
    let u = patch_ok(
        json!([{"op": "replace", "path": ENTERPRISE_USER_URN, "value": {"costCenter": "C"}}]),
    );
    assert_eq!(u[ENTERPRISE_USER_URN], json!({"costCenter": "C"}));
    let u = patch(&u, json!([{"op": "remove", "path": ENTERPRISE_USER_URN}])).unwrap();
    assert!(u.get(ENTERPRISE_USER_URN).is_none());
    assert_eq!(patch_err(json!([{"op": "replace", "path": format!("{ENTERPRISE_USER_URN}:manager.displayName"), "value": "x"}])).scim_type, Some(ScimType::Mutability));
}

#[test]
fn foreign_extensions_are_stored_as_sent() {
    let urn = "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User";
    let u = patch_ok(json!([{"op": "add", "path": format!("{urn}:costCode"), "value": 7}]));
    assert_eq!(u[urn], json!({"costCode": 7}));
    assert_eq!(u["schemas"][1], urn);
    let u = patch(
        &u,
        json!([{"op": "remove", "path": format!("{urn}:costCode")}]),
    )
    .unwrap();
    assert!(u.get(urn).is_none());
}

#[test]
fn unknown_path_less_keys_are_ignored() {
    let u =
        patch_ok(json!([{"op": "replace", "value": {"schemas": ["x"], "nope": 1, "title": "T"}}]));
    assert_eq!(u["title"], "T");
    assert!(u.get("nope").is_none());
}

#[test]
fn operations_are_atomic() {
    let e = patch_err(json!([
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": "active", "value": "not a boolean"}
    ]));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn apply_on_a_non_object_is_an_internal_error() {
    let req =
        PatchRequest::parse(&body(json!([{"op": "remove", "path": "title"}])), &USER).unwrap();
    assert_eq!(req.apply(&mut json!([1]), ID).unwrap_err().status, 500);
}

fn group_plan(ops: Value) -> GroupPatchPlan {
    PatchRequest::parse(&body(ops), &GROUP)
        .unwrap()
        .into_group_plan()
        .unwrap()
}

#[test]
fn okta_group_push() {
    let gid = "abf4dd94-a4c0-4f67-89c9-76b03340cb9b";
    // Rename, carrying the group's own id.
    let plan =
        group_plan(json!([{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2"}}]));
    assert!(plan.member_ops.is_empty());
    let mut g =
        json!({"schemas": [crate::scim::definitions::GROUP_URN], "id": gid, "displayName": "Old"});
    assert!(plan.resource_ops.apply(&mut g, gid).unwrap());
    assert_eq!(g["displayName"], "Test SCIMv2");
    // Membership.
    let plan = group_plan(json!([
        {"op": "remove", "path": "members[value eq \"u1\"]"},
        {"op": "add", "path": "members", "value": [{"value": "u2", "display": "b@x"}, {"value": "u3"}, {"value": "u2"}]},
        {"op": "replace", "path": "members", "value": [{"value": "u4"}]}
    ]));
    assert!(plan.resource_ops.operations.is_empty());
    assert_eq!(
        plan.member_ops,
        [
            MemberOp::Remove(vec!["u1".into()]),
            MemberOp::Add(vec!["u2".into(), "u3".into()]),
            MemberOp::Replace(vec!["u4".into()]),
        ]
    );
}

#[test]
fn entra_group_membership() {
    let plan = group_plan(json!([
        {"op": "Add", "path": "members", "value": [{"value": "u1"}]},
        {"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
        {"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"},
        {"op": "remove", "path": "members"},
        {"op": "replace", "value": {"displayName": "New", "members": [{"value": "u9"}]}},
        {"op": "replace", "path": "members", "value": []}
    ]));
    assert_eq!(
        plan.member_ops,
        [
            MemberOp::Add(vec!["u1".into()]),
            MemberOp::Remove(vec!["u1".into(), "u2".into()]),
            MemberOp::Remove(vec!["a".into(), "b".into()]),
            MemberOp::RemoveAll,
            MemberOp::Replace(vec!["u9".into()]),
            MemberOp::Replace(vec![]),
        ]
    );
    assert_eq!(plan.resource_ops.operations.len(), 1);
    assert_eq!(
        plan.resource_ops.operations[0].value,
        Some(json!({"displayName": "New"}))
    );
}

#[test]
fn unsupported_member_operations() {
    let plan = |ops: Value| {
        PatchRequest::parse(&body(ops), &GROUP)
            .unwrap()
            .into_group_plan()
            .unwrap_err()
    };
    assert_eq!(
        plan(json!([{"op": "remove", "path": "members[display eq \"x\"]"}])).scim_type,
        Some(ScimType::InvalidFilter)
    );
    assert_eq!(
        plan(json!([{"op": "remove", "path": "members[value ne \"x\"]"}])).scim_type,
        Some(ScimType::InvalidFilter)
    );
    assert_eq!(
        plan(json!([{"op": "replace", "path": "members[value eq \"x\"].display", "value": "d"}]))
            .scim_type,
        Some(ScimType::InvalidPath)
    );
    assert_eq!(
        plan(json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}])).scim_type,
        Some(ScimType::InvalidValue)
    );
    assert_eq!(
        plan(json!([{"op": "add", "path": "members", "value": [5]}])).scim_type,
        Some(ScimType::InvalidValue)
    );
    let user_req =
        PatchRequest::parse(&body(json!([{"op": "remove", "path": "title"}])), &USER).unwrap();
    assert_eq!(user_req.into_group_plan().unwrap_err().status, 500);
}

fn arb_op() -> impl Strategy<Value = Value> {
    let paths = prop::sample::select(vec![
        Value::Null,
        json!("active"),
        json!("title"),
        json!("name.givenName"),
        json!("name"),
        json!("emails"),
        json!("emails.value"),
        json!("emails[type eq \"work\"].value"),
        json!("emails[type eq \"home\"]"),
        json!("emails[primary eq true]"),
        json!("roles"),
        json!("roles[value eq \"member\"]"),
        json!(format!("{ENTERPRISE_USER_URN}:manager")),
        json!(ENTERPRISE_USER_URN),
        json!("urn:x:y:1.0:User:a"),
        json!("password"),
        json!("userName"),
    ]);
    let ops = prop::sample::select(vec!["add", "remove", "replace", "Replace"]);
    (ops, paths, crate::scim::testing::any_json()).prop_map(|(op, path, value)| {
        let mut o = json!({"op": op, "value": value});
        if !path.is_null() {
            o["path"] = path;
        }
        o
    })
}

proptest! {
    #[test]
    fn never_panics_and_failures_change_nothing(
        ops in prop::collection::vec(arb_op(), 1..4),
        start in prop_oneof![Just(user()), crate::scim::testing::user(), crate::scim::testing::any_json()],
    ) {
        if let Ok(req) = PatchRequest::parse(&body(Value::Array(ops)), &USER) {
            let mut r = start.clone();
            if req.apply(&mut r, ID).is_err() {
                prop_assert_eq!(r, start);
            }
            let _ = req.into_group_plan();
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_paths_and_keys_never_panic(path in "\\PC{0,40}", key in "\\PC{0,20}") {
        let _ = PatchPath::parse(&path, &USER);
        let ops = json!([
            {"op": "add", "path": path, "value": 1},
            {"op": "replace", "value": {key.clone(): "x"}}
        ]);
        if let Ok(req) = PatchRequest::parse(&body(ops), &USER) {
            let _ = req.apply(&mut user(), ID);
        }
        let _ = crate::scim::projection::Projection::parse(Some(&path), Some(&key), &USER);
    }
}
