//! The discovery documents (RFC 7644 §4, RFC 7643 §5-7): `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`, rendered from the same definitions the filter and
//! PATCH engines use, so what we advertise is what we do. Okta's Entitlement
//! Management reads `/ResourceTypes` to find `/Roles` (OKTA.md §5).

use serde_json::{Map, Value, json};

use super::definitions::{RESOURCE_TYPES, SCHEMAS};
use super::schema::{AttrType, AttributeDef, ResourceType, Schema};

/// URN of the schema of `/Schemas` entries.
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// URN of the schema of `/ResourceTypes` entries.
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// URN of the `/ServiceProviderConfig` document.
pub const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

fn base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// The `/ServiceProviderConfig` document. `base_url` is the workspace's SCIM base URL
/// (with or without a trailing `/`); `max_results` is the cap applied to `count`.
pub fn service_provider_config(base_url: &str, max_results: u32) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with an OAuth 2.0 bearer token (RFC 6750).",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base(base_url)),
        }
    })
}

/// One `/ResourceTypes` entry. `schemaExtensions` is present only when the type has
/// extensions, so the Role entry is exactly OKTA.md §5's shape.
pub fn resource_type(rt: &ResourceType, base_url: &str) -> Value {
    let mut out = json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": rt.id,
        "name": rt.id,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/{}", base(base_url), rt.id),
        }
    });
    if !rt.extensions.is_empty() {
        let exts: Vec<Value> = rt
            .extensions
            .iter()
            .map(|e| json!({"schema": e.schema.id, "required": e.required}))
            .collect();
        if let Some(obj) = out.as_object_mut() {
            obj.insert("schemaExtensions".into(), Value::Array(exts));
        }
    }
    out
}

/// Every `/ResourceTypes` entry, in a stable order (User, Group, Role).
pub fn resource_types(base_url: &str) -> Vec<Value> {
    RESOURCE_TYPES
        .iter()
        .map(|rt| resource_type(rt, base_url))
        .collect()
}

/// The resource type whose id is `id` (`/ResourceTypes/{id}`; exact, as ids are).
pub fn find_resource_type(id: &str) -> Option<&'static ResourceType> {
    RESOURCE_TYPES.iter().copied().find(|rt| rt.id == id)
}

/// One `/Schemas` entry in RFC 7643 §7's shape.
pub fn schema(schema: &Schema, base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base(base_url), schema.id),
        }
    })
}

/// Every `/Schemas` entry, in a stable order.
pub fn schemas(base_url: &str) -> Vec<Value> {
    SCHEMAS.iter().map(|s| schema(s, base_url)).collect()
}

/// The schema whose URN is `id` (`/Schemas/{id}`; case-insensitive, as URNs are).
pub fn find_schema(id: &str) -> Option<&'static Schema> {
    SCHEMAS
        .iter()
        .copied()
        .find(|s| s.id.eq_ignore_ascii_case(id))
}

fn attribute(a: &AttributeDef) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), a.name.into());
    m.insert("type".into(), a.ty.as_str().into());
    m.insert("multiValued".into(), a.multi_valued.into());
    m.insert("description".into(), a.description.into());
    m.insert("required".into(), a.required.into());
    if a.ty != AttrType::Complex {
        m.insert("caseExact".into(), a.case_exact.into());
    }
    if !a.canonical_values.is_empty() {
        m.insert("canonicalValues".into(), a.canonical_values.into());
    }
    m.insert("mutability".into(), a.mutability.as_str().into());
    m.insert("returned".into(), a.returned.as_str().into());
    m.insert("uniqueness".into(), a.uniqueness.as_str().into());
    if a.ty == AttrType::Reference {
        m.insert("referenceTypes".into(), a.reference_types.into());
    }
    if a.ty == AttrType::Complex {
        let subs: Vec<Value> = a.sub_attributes.iter().map(attribute).collect();
        m.insert("subAttributes".into(), subs.into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{ENTERPRISE_USER_SCHEMA, ROLE, USER, USER_SCHEMA};

    const BASE: &str = "https://api.closedloop.sh/api/scim/v2/t1/";

    #[test]
    fn role_resource_type_is_exactly_okta_shape() {
        assert_eq!(
            resource_type(&ROLE, BASE),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": "Role",
                "name": "Role",
                "endpoint": "/Roles",
                "description": "ClosedLoop AI workspace roles",
                "schema": "urn:okta:scim:schemas:core:1.0:Role",
                "meta": {
                    "resourceType": "ResourceType",
                    "location": "https://api.closedloop.sh/api/scim/v2/t1/ResourceTypes/Role"
                }
            })
        );
    }

    #[test]
    fn user_resource_type_lists_the_enterprise_extension() {
        let u = resource_type(&USER, BASE);
        assert_eq!(u["endpoint"], "/Users");
        assert_eq!(
            u["schemaExtensions"],
            json!([{"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": false}])
        );
        let ids: Vec<_> = resource_types(BASE)
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(ids, [json!("User"), json!("Group"), json!("Role")]);
        assert_eq!(find_resource_type("Group").unwrap().endpoint, "/Groups");
        assert!(find_resource_type("group").is_none());
    }

    #[test]
    fn schemas_follow_rfc_7643_section_7() {
        let s = schema(&USER_SCHEMA, BASE);
        assert_eq!(s["schemas"], json!([SCHEMA_URN]));
        assert_eq!(s["id"], USER_SCHEMA.id);
        assert_eq!(s["meta"]["resourceType"], "Schema");
        assert_eq!(
            s["meta"]["location"],
            "https://api.closedloop.sh/api/scim/v2/t1/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"
        );
        let attrs = s["attributes"].as_array().unwrap();
        let user_name = attrs.iter().find(|a| a["name"] == "userName").unwrap();
        assert_eq!(
            user_name,
            &json!({
                "name": "userName", "type": "string", "multiValued": false,
                "description": user_name["description"], "required": true, "caseExact": false,
                "mutability": "readWrite", "returned": "default", "uniqueness": "server"
            })
        );
        let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
        assert_eq!(
            (&password["mutability"], &password["returned"]),
            (&json!("writeOnly"), &json!("never"))
        );
        let emails = attrs.iter().find(|a| a["name"] == "emails").unwrap();
        assert_eq!(emails["multiValued"], true);
        let subs = emails["subAttributes"].as_array().unwrap();
        let ty = subs.iter().find(|a| a["name"] == "type").unwrap();
        assert_eq!(ty["canonicalValues"], json!(["work", "home", "other"]));
        let groups = attrs.iter().find(|a| a["name"] == "groups").unwrap();
        assert_eq!(groups["mutability"], "readOnly");
        let reference = groups["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "$ref")
            .unwrap();
        assert_eq!(reference["referenceTypes"], json!(["User", "Group"]));

        let e = schema(&ENTERPRISE_USER_SCHEMA, BASE);
        let manager = e["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "manager")
            .unwrap();
        assert_eq!(manager["subAttributes"].as_array().unwrap().len(), 3);
        assert_eq!(schemas(BASE).len(), 4);
        assert_eq!(
            find_schema("URN:OKTA:SCIM:SCHEMAS:CORE:1.0:ROLE")
                .unwrap()
                .name,
            "Role"
        );
    }

    #[test]
    fn service_provider_config_advertises_what_we_support() {
        let c = service_provider_config("https://x/scim/v2", 200);
        assert_eq!(c["patch"]["supported"], true);
        assert_eq!(c["bulk"]["supported"], false);
        assert_eq!(c["filter"], json!({"supported": true, "maxResults": 200}));
        assert_eq!(c["changePassword"]["supported"], false);
        assert_eq!(c["sort"]["supported"], false);
        assert_eq!(c["etag"]["supported"], true);
        assert_eq!(c["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(
            c["meta"]["location"],
            "https://x/scim/v2/ServiceProviderConfig"
        );
    }
}
