//! The schemas and resource types this server speaks: core User (RFC 7643 §4.1, §8.7.1),
//! the Enterprise User extension (§4.3), Group (§4.2), Okta's Role entitlement schema
//! (OKTA.md §5), and the common attributes every resource has (§3.1).

use super::schema::{
    AttrType, AttributeDef, Mutability, ResourceType, Returned, Schema, SchemaExtension, Uniqueness,
};

use AttrType::{Binary, Boolean, Complex, DateTime, Reference, String as Str};
use Mutability::{Immutable, ReadOnly, WriteOnly};

/// URN of the core User schema.
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// URN of the Enterprise User extension.
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// URN of the core Group schema.
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// URN of Okta's Role schema, which Okta Entitlement Management discovers.
pub const ROLE_URN: &str = "urn:okta:scim:schemas:core:1.0:Role";

const fn attr(name: &'static str, ty: AttrType, description: &'static str) -> AttributeDef {
    AttributeDef::new(name, ty, description)
}

/// `id`, `externalId` and `meta`: on every resource, defined by RFC 7643 §3.1 rather
/// than by any schema's attribute list.
pub static COMMON_ATTRIBUTES: [AttributeDef; 3] = [
    attr(
        "id",
        Str,
        "Unique identifier of the resource, assigned by the service provider.",
    )
    .case_exact()
    .mutability(ReadOnly)
    .returned(Returned::Always)
    .uniqueness(Uniqueness::Server),
    attr(
        "externalId",
        Str,
        "Identifier of the resource as defined by the provisioning client.",
    )
    .case_exact(),
    attr("meta", Complex, "Resource metadata.")
        .mutability(ReadOnly)
        .subs(&META_SUBS),
];

static META_SUBS: [AttributeDef; 5] = [
    attr(
        "resourceType",
        Str,
        "The name of the resource type of the resource.",
    )
    .case_exact()
    .mutability(ReadOnly),
    attr(
        "created",
        DateTime,
        "When the resource was added to the service provider.",
    )
    .mutability(ReadOnly),
    attr(
        "lastModified",
        DateTime,
        "When the resource was last changed.",
    )
    .mutability(ReadOnly),
    attr("location", Reference, "The URI of the resource.")
        .case_exact()
        .mutability(ReadOnly)
        .refs(&["uri"]),
    attr("version", Str, "The version (ETag) of the resource.")
        .case_exact()
        .mutability(ReadOnly),
];

/// The sub-attributes of the "plural" attributes (`emails`, `phoneNumbers`, …):
/// `value`, `display`, `type`, `primary`, with `type`'s canonical values varying.
macro_rules! plural_subs {
    ($value:expr, $types:expr) => {
        [
            $value,
            attr(
                "display",
                Str,
                "A human-readable name, primarily used for display.",
            ),
            attr("type", Str, "A label indicating the attribute's function.").canonical($types),
            attr(
                "primary",
                Boolean,
                "Whether this is the preferred value; at most one is.",
            ),
        ]
    };
}

static NAME_SUBS: [AttributeDef; 6] = [
    attr("formatted", Str, "The full name, formatted for display."),
    attr("familyName", Str, "The family name (last name)."),
    attr("givenName", Str, "The given name (first name)."),
    attr("middleName", Str, "The middle name(s)."),
    attr(
        "honorificPrefix",
        Str,
        "The honorific prefix (title), e.g. 'Ms.'.",
    ),
    attr("honorificSuffix", Str, "The honorific suffix, e.g. 'III'."),
];

static EMAIL_SUBS: [AttributeDef; 4] = plural_subs!(
    attr("value", Str, "The email address."),
    &["work", "home", "other"]
);

static PHONE_SUBS: [AttributeDef; 4] = plural_subs!(
    attr("value", Str, "The phone number."),
    &["work", "home", "mobile", "fax", "pager", "other"]
);

static IM_SUBS: [AttributeDef; 4] = plural_subs!(
    attr("value", Str, "The instant messaging address."),
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
);

static PHOTO_SUBS: [AttributeDef; 4] = plural_subs!(
    attr("value", Reference, "The URL of a photo.").refs(&["external"]),
    &["photo", "thumbnail"]
);

static ENTITLEMENT_SUBS: [AttributeDef; 4] =
    plural_subs!(attr("value", Str, "The value of an entitlement."), &[]);

static ROLE_SUBS: [AttributeDef; 4] = plural_subs!(
    attr("value", Str, "The id of a ClosedLoop AI workspace role."),
    &[]
);

static X509_SUBS: [AttributeDef; 4] = plural_subs!(
    attr("value", Binary, "The DER-encoded certificate, in base64."),
    &[]
);

static ADDRESS_SUBS: [AttributeDef; 8] = [
    attr(
        "formatted",
        Str,
        "The full mailing address, formatted for display.",
    ),
    attr("streetAddress", Str, "The full street address component."),
    attr("locality", Str, "The city or locality component."),
    attr("region", Str, "The state or region component."),
    attr("postalCode", Str, "The zip code or postal code component."),
    attr(
        "country",
        Str,
        "The country name component (ISO 3166-1 alpha-2).",
    ),
    attr("type", Str, "A label indicating the address's function.")
        .canonical(&["work", "home", "other"]),
    attr(
        "primary",
        Boolean,
        "Whether this is the preferred address; at most one is.",
    ),
];

static USER_GROUP_SUBS: [AttributeDef; 4] = [
    attr("value", Str, "The id of a group the user belongs to.").mutability(ReadOnly),
    attr("$ref", Reference, "The URI of the group.")
        .mutability(ReadOnly)
        .refs(&["User", "Group"]),
    attr("display", Str, "The group's display name.").mutability(ReadOnly),
    attr("type", Str, "How the membership arose.")
        .mutability(ReadOnly)
        .canonical(&["direct", "indirect"]),
];

static USER_ATTRIBUTES: [AttributeDef; 21] = [
    attr(
        "userName",
        Str,
        "Unique identifier for the user; ClosedLoop AI uses the email address.",
    )
    .required()
    .uniqueness(Uniqueness::Server),
    attr("name", Complex, "The components of the user's real name.").subs(&NAME_SUBS),
    attr(
        "displayName",
        Str,
        "The name of the user, suitable for display.",
    ),
    attr("nickName", Str, "The casual way to address the user."),
    attr(
        "profileUrl",
        Reference,
        "A URI of the user's online profile.",
    )
    .refs(&["external"]),
    attr("title", Str, "The user's title, such as 'Vice President'."),
    attr(
        "userType",
        Str,
        "The relationship between the organization and the user.",
    ),
    attr(
        "preferredLanguage",
        Str,
        "The user's preferred written or spoken language.",
    ),
    attr("locale", Str, "The user's default location, e.g. 'en-US'."),
    attr(
        "timezone",
        Str,
        "The user's time zone, e.g. 'America/Los_Angeles'.",
    ),
    attr(
        "active",
        Boolean,
        "Whether the user may access ClosedLoop AI.",
    ),
    attr(
        "password",
        Str,
        "Accepted and discarded: ClosedLoop AI does not use passwords.",
    )
    .mutability(WriteOnly)
    .returned(Returned::Never),
    attr("emails", Complex, "Email addresses for the user.")
        .multi()
        .subs(&EMAIL_SUBS),
    attr("phoneNumbers", Complex, "Phone numbers for the user.")
        .multi()
        .subs(&PHONE_SUBS),
    attr("ims", Complex, "Instant messaging addresses for the user.")
        .multi()
        .subs(&IM_SUBS),
    attr("photos", Complex, "URLs of photos of the user.")
        .multi()
        .subs(&PHOTO_SUBS),
    attr(
        "addresses",
        Complex,
        "Physical mailing addresses for the user.",
    )
    .multi()
    .subs(&ADDRESS_SUBS),
    attr(
        "groups",
        Complex,
        "The groups the user belongs to; changed through /Groups.",
    )
    .multi()
    .mutability(ReadOnly)
    .subs(&USER_GROUP_SUBS),
    attr("entitlements", Complex, "Entitlements of the user.")
        .multi()
        .subs(&ENTITLEMENT_SUBS),
    attr(
        "roles",
        Complex,
        "The user's ClosedLoop AI workspace roles (see /Roles).",
    )
    .multi()
    .subs(&ROLE_SUBS),
    attr(
        "x509Certificates",
        Complex,
        "X.509 certificates of the user.",
    )
    .multi()
    .subs(&X509_SUBS),
];

/// The core User schema.
pub static USER_SCHEMA: Schema = Schema {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: &USER_ATTRIBUTES,
};

static MANAGER_SUBS: [AttributeDef; 3] = [
    attr("value", Str, "The id of the user's manager."),
    attr("$ref", Reference, "The URI of the manager's User resource.").refs(&["User"]),
    attr("displayName", Str, "The manager's display name.").mutability(ReadOnly),
];

static ENTERPRISE_ATTRIBUTES: [AttributeDef; 6] = [
    attr(
        "employeeNumber",
        Str,
        "Identifier of the user in the organization.",
    ),
    attr("costCenter", Str, "The user's cost center."),
    attr("organization", Str, "The user's organization."),
    attr("division", Str, "The user's division."),
    attr("department", Str, "The user's department."),
    attr("manager", Complex, "The user's manager.").subs(&MANAGER_SUBS),
];

/// The Enterprise User extension schema.
pub static ENTERPRISE_USER_SCHEMA: Schema = Schema {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &ENTERPRISE_ATTRIBUTES,
};

static MEMBER_SUBS: [AttributeDef; 4] = [
    attr("value", Str, "The id of a member user.").mutability(Immutable),
    attr("$ref", Reference, "The URI of the member.")
        .mutability(Immutable)
        .refs(&["User", "Group"]),
    attr("display", Str, "The member's display name."),
    attr("type", Str, "The kind of member.")
        .mutability(Immutable)
        .canonical(&["User", "Group"]),
];

static GROUP_ATTRIBUTES: [AttributeDef; 2] = [
    attr("displayName", Str, "A human-readable name for the group.").required(),
    attr("members", Complex, "The members of the group.")
        .multi()
        .subs(&MEMBER_SUBS),
];

/// The core Group schema.
pub static GROUP_SCHEMA: Schema = Schema {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: &GROUP_ATTRIBUTES,
};

static ROLE_ATTRIBUTES: [AttributeDef; 2] = [
    attr("displayName", Str, "The role's name.").required(),
    attr("description", Str, "What the role allows."),
];

/// Okta's Role schema: ClosedLoop AI workspace roles, read as entitlements.
pub static ROLE_SCHEMA: Schema = Schema {
    id: ROLE_URN,
    name: "Role",
    description: "ClosedLoop AI workspace role",
    attributes: &ROLE_ATTRIBUTES,
};

/// The `User` resource type, with the enterprise extension optional.
pub static USER: ResourceType = ResourceType {
    id: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER_SCHEMA,
    extensions: &[SchemaExtension {
        schema: &ENTERPRISE_USER_SCHEMA,
        required: false,
    }],
};

/// The `Group` resource type.
pub static GROUP: ResourceType = ResourceType {
    id: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP_SCHEMA,
    extensions: &[],
};

/// The `Role` resource type (OKTA.md §5).
pub static ROLE: ResourceType = ResourceType {
    id: "Role",
    endpoint: "/Roles",
    description: "ClosedLoop AI workspace roles",
    schema: &ROLE_SCHEMA,
    extensions: &[],
};

/// Every resource type, in `/ResourceTypes` order.
pub static RESOURCE_TYPES: [&ResourceType; 3] = [&USER, &GROUP, &ROLE];

/// Every schema, in `/Schemas` order.
pub static SCHEMAS: [&Schema; 4] = [
    &USER_SCHEMA,
    &ENTERPRISE_USER_SCHEMA,
    &GROUP_SCHEMA,
    &ROLE_SCHEMA,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn all_defs(defs: &'static [AttributeDef]) -> Vec<&'static AttributeDef> {
        defs.iter()
            .flat_map(|d| std::iter::once(d).chain(d.sub_attributes.iter()))
            .collect()
    }

    #[test]
    fn definitions_are_consistent() {
        for schema in SCHEMAS {
            let defs = all_defs(schema.attributes);
            for d in &defs {
                // Only complex attributes have sub-attributes; names are unique per level.
                assert_eq!(d.ty == Complex, !d.sub_attributes.is_empty(), "{}", d.name);
                assert!(d.sub_attributes.iter().all(|s| s.ty != Complex));
            }
            let mut names: Vec<_> = schema
                .attributes
                .iter()
                .map(|a| a.name.to_lowercase())
                .collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), schema.attributes.len(), "{}", schema.id);
        }
    }

    #[test]
    fn key_characteristics() {
        let user = |n| USER_SCHEMA.attribute(n).unwrap();
        assert!(user("userName").required && !user("userName").case_exact);
        assert_eq!(user("password").returned, Returned::Never);
        assert_eq!(user("password").mutability, WriteOnly);
        assert_eq!(user("groups").mutability, ReadOnly);
        assert!(user("roles").multi_valued);
        assert_eq!(user("emails").value_sub_attribute().unwrap().ty, Str);
        assert!(COMMON_ATTRIBUTES[1].case_exact);
        assert_eq!(
            GROUP_SCHEMA
                .attribute("MEMBERS")
                .unwrap()
                .sub_attributes
                .len(),
            4
        );
        assert_eq!(ROLE.schema.id, "urn:okta:scim:schemas:core:1.0:Role");
    }
}
