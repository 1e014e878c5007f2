//! Fixed resources shaped as the worker renders them (stored JSON plus `id`, `meta`,
//! `groups`, `roles`), plus deliberately malformed ones: evaluation and projection
//! must never panic "whatever the JSON".

use serde_json::{Value, json};

/// The id of [`user`].
pub const USER_ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

/// The id of [`group`].
pub const GROUP_ID: &str = "0a1b2c3d-0000-4000-8000-000000000001";

/// A full User, every kind of attribute present.
pub fn user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": USER_ID,
        "externalId": "00u1abc",
        "userName": "Jane.Doe@example.com",
        "name": { "givenName": "Jane", "familyName": "Doe", "formatted": "Jane Doe" },
        "displayName": "Jane Doe",
        "title": "a%_b\\c",
        "active": true,
        "emails": [
            { "value": "jane@example.com", "type": "work", "primary": true },
            { "value": "JANE@home.example", "type": "home" },
            { "type": "other" }
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "R&D",
            "manager": { "value": "0a1b2c3d-0000-4000-8000-000000000002" }
        },
        "urn:example:params:scim:schemas:extension:custom:1.0:User": { "x": 1 },
        "roles": [{ "value": "0a1b2c3d-0000-4000-8000-000000000002", "display": "Admin" }],
        "groups": [{
            "value": GROUP_ID,
            "display": "Engineering",
            "$ref": "https://api.example/Groups/0a1b2c3d-0000-4000-8000-000000000001",
            "type": "direct"
        }],
        "meta": {
            "resourceType": "User",
            "created": "2024-01-01T00:00:00Z",
            "lastModified": "2024-06-30T12:30:00.250Z",
            "location": "https://api.example/Users/6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "version": "W/\"3\""
        }
    })
}

/// A full Group with members.
pub fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": GROUP_ID,
        "externalId": "00g1",
        "displayName": "Engineering",
        "members": [
            { "value": USER_ID, "display": "Jane Doe", "type": "User" },
            { "value": "0a1b2c3d-0000-4000-8000-000000000002" }
        ],
        "meta": {
            "resourceType": "Group",
            "created": "2024-01-01T02:00:00+02:00",
            "lastModified": "2025-03-01T08:00:00.000001Z",
            "version": "W/\"1\""
        }
    })
}

/// Resources with every attribute of the wrong JSON type, and non-objects.
pub fn malformed() -> Vec<Value> {
    vec![
        Value::Null,
        json!([]),
        json!("userName"),
        json!({}),
        json!({
            "id": 7,
            "userName": ["a"],
            "name": "Jane",
            "displayName": { "value": "x" },
            "active": "true",
            "emails": { "value": "a@b.c" },
            "members": "x",
            "groups": [1, null, "x", { "value": 2 }],
            "roles": { "value": null },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": [1],
            "meta": { "created": "yesterday", "lastModified": 1.5 }
        }),
        json!({
            "emails": [[{ "value": "a" }], { "value": { "value": "a" } }, { "primary": "yes" }],
            "name": { "givenName": 1e308, "familyName": -0.0 },
            "meta": []
        }),
    ]
}
