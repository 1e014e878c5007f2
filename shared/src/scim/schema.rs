//! The SCIM schema model (RFC 7643 §2, §7): attribute characteristics, schemas, and
//! resource types, with the lookups every other SCIM module resolves names through.
//! Attribute names in filters, PATCH paths and projections are matched against these
//! definitions case-insensitively and replaced by the canonical definition, so no
//! client-written name ever reaches JSON keys or SQL.

use std::fmt;

/// The data type of an attribute (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// A JSON string.
    String,
    /// A JSON boolean.
    Boolean,
    /// A JSON number, possibly fractional.
    Decimal,
    /// A JSON number without a fractional part.
    Integer,
    /// An RFC 3339 timestamp in a JSON string.
    DateTime,
    /// A URI in a JSON string.
    Reference,
    /// A JSON object of sub-attributes.
    Complex,
    /// Base64 in a JSON string.
    Binary,
}

impl AttrType {
    /// The name used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        }
    }

    /// Whether values are JSON strings compared as text (`co`, `sw`, `ew` apply).
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            AttrType::String | AttrType::Reference | AttrType::Binary
        )
    }
}

/// Whether and how an attribute may be changed (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// Set by the server only (`id`, `meta`, `groups`).
    ReadOnly,
    /// Freely changed by clients.
    ReadWrite,
    /// Set once, then never changed.
    Immutable,
    /// Accepted but never returned (`password`).
    WriteOnly,
}

impl Mutability {
    /// The name used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute appears in responses (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Returned {
    /// Always, whatever `attributes`/`excludedAttributes` say (`id`).
    Always,
    /// Never (`password`).
    Never,
    /// Unless excluded, or unless `attributes` names others.
    Default,
    /// Only when named in `attributes`.
    Request,
}

impl Returned {
    /// The name used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// How unique a value must be (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Uniqueness {
    /// No constraint.
    None,
    /// Unique within this workspace (`userName`, `id`).
    Server,
    /// Unique everywhere.
    Global,
}

impl Uniqueness {
    /// The name used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition, in RFC 7643 §7's shape. Definitions are `static` data
/// (see `definitions.rs`), so references to them are cheap and comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeDef {
    /// The canonical spelling, used for JSON keys and output.
    pub name: &'static str,
    /// The value type.
    pub ty: AttrType,
    /// Whether the value is a JSON array of values.
    pub multi_valued: bool,
    /// Whether a resource must carry it.
    pub required: bool,
    /// Whether string comparisons respect case (`userName`: no; `id`: yes).
    pub case_exact: bool,
    /// Whether clients may change it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// How unique its values are.
    pub uniqueness: Uniqueness,
    /// Human description for `/Schemas`.
    pub description: &'static str,
    /// The sub-attributes of a complex attribute.
    pub sub_attributes: &'static [AttributeDef],
    /// Suggested values (`work`, `home`, …); advertised, not enforced (RFC 7643 §2.3.1).
    pub canonical_values: &'static [&'static str],
    /// What a reference may point at (`User`, `Group`, `external`, `uri`).
    pub reference_types: &'static [&'static str],
}

impl AttributeDef {
    /// A single-valued, optional, case-insensitive, readWrite, default-returned
    /// attribute: the RFC's defaults. The builder methods below change one each.
    pub(crate) const fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Self {
            name,
            ty,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            description,
            sub_attributes: &[],
            canonical_values: &[],
            reference_types: &[],
        }
    }

    pub(crate) const fn multi(self) -> Self {
        Self {
            multi_valued: true,
            ..self
        }
    }

    pub(crate) const fn required(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }

    pub(crate) const fn case_exact(self) -> Self {
        Self {
            case_exact: true,
            ..self
        }
    }

    pub(crate) const fn mutability(self, mutability: Mutability) -> Self {
        Self { mutability, ..self }
    }

    pub(crate) const fn returned(self, returned: Returned) -> Self {
        Self { returned, ..self }
    }

    pub(crate) const fn uniqueness(self, uniqueness: Uniqueness) -> Self {
        Self { uniqueness, ..self }
    }

    pub(crate) const fn subs(self, sub_attributes: &'static [AttributeDef]) -> Self {
        Self {
            sub_attributes,
            ..self
        }
    }

    pub(crate) const fn canonical(self, canonical_values: &'static [&'static str]) -> Self {
        Self {
            canonical_values,
            ..self
        }
    }

    pub(crate) const fn refs(self, reference_types: &'static [&'static str]) -> Self {
        Self {
            reference_types,
            ..self
        }
    }

    /// The sub-attribute called `name`, compared case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The `value` sub-attribute of a complex attribute: what a filter or PATCH means
    /// when it names the complex attribute but compares it with a plain value.
    pub fn value_sub_attribute(&self) -> Option<&'static AttributeDef> {
        self.sub_attribute("value")
    }
}

/// A schema: a URN and its attributes (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The schema URN, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub id: &'static str,
    /// Human name for `/Schemas`.
    pub name: &'static str,
    /// Human description for `/Schemas`.
    pub description: &'static str,
    /// The schema's own attributes (the common `id`, `externalId`, `meta` are not
    /// listed, as in RFC 7643 §8.7.1; see [`COMMON_ATTRIBUTES`](super::definitions::COMMON_ATTRIBUTES)).
    pub attributes: &'static [AttributeDef],
}

impl Schema {
    /// The attribute called `name`, compared case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// A schema extension a resource type allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaExtension {
    /// The extension schema; its attributes live under a JSON key equal to its URN.
    pub schema: &'static Schema,
    /// Whether every resource must carry it.
    pub required: bool,
}

/// A resource type (RFC 7643 §6): an endpoint, its core schema and its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// The id and name (`User`), also `meta.resourceType` of its resources.
    pub id: &'static str,
    /// The endpoint under the SCIM base URL (`/Users`).
    pub endpoint: &'static str,
    /// Human description for `/ResourceTypes`.
    pub description: &'static str,
    /// The core schema.
    pub schema: &'static Schema,
    /// The allowed extensions.
    pub extensions: &'static [SchemaExtension],
}

/// A schema attribute resolved against a resource type: the canonical definition of
/// the attribute (and of a sub-attribute, if one was named) plus where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrRef {
    /// The extension schema holding the attribute, whose JSON lives under the key
    /// `extension.id`; `None` for core and common attributes (top-level keys).
    pub extension: Option<&'static Schema>,
    /// The (top-level) attribute.
    pub attr: &'static AttributeDef,
    /// The sub-attribute, for `name.givenName` or `emails.value`.
    pub sub: Option<&'static AttributeDef>,
}

impl AttrRef {
    /// The definition a value at this path must satisfy: the sub-attribute if named,
    /// else the attribute.
    pub fn leaf(&self) -> &'static AttributeDef {
        self.sub.unwrap_or(self.attr)
    }

    /// This path with a different sub-attribute.
    pub fn with_sub(self, sub: Option<&'static AttributeDef>) -> Self {
        Self { sub, ..self }
    }

    /// Whether this is the core or common attribute `name` (with any sub-attribute).
    pub fn is(&self, name: &str) -> bool {
        self.extension.is_none() && self.attr.name == name
    }
}

impl fmt::Display for AttrRef {
    /// The canonical path: extension attributes URN-qualified, core ones bare.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ext) = self.extension {
            write!(f, "{}:", ext.id)?;
        }
        f.write_str(self.attr.name)?;
        if let Some(sub) = self.sub {
            write!(f, ".{}", sub.name)?;
        }
        Ok(())
    }
}

/// An attribute path as written, split but not yet resolved:
/// `[urn ":"] name ["." sub]` (RFC 7644 §3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPath<'a> {
    /// The schema URN qualifier, if any.
    pub urn: Option<&'a str>,
    /// The attribute name.
    pub name: &'a str,
    /// The sub-attribute name, if any.
    pub sub: Option<&'a str>,
}

impl<'a> RawPath<'a> {
    /// Splits `text` into URN, name and sub-attribute; `None` if it is not an
    /// attribute path (names are `ALPHA *(ALPHA / DIGIT / "-" / "_")`, with `$ref`
    /// allowed; a URN starts with `urn:`).
    pub fn parse(text: &'a str) -> Option<Self> {
        let (urn, rest) = match text.rfind(':') {
            Some(i) => (Some(&text[..i]), &text[i + 1..]),
            None => (None, text),
        };
        if let Some(urn) = urn {
            let ok = urn.len() > 4
                && has_urn_prefix(urn)
                && urn
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b));
            if !ok {
                return None;
            }
        }
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if !is_attr_name(name) || !sub.is_none_or(is_attr_name) {
            return None;
        }
        Some(Self { urn, name, sub })
    }
}

/// Whether `s` starts with `urn:` in any case (byte-wise, so any text is safe).
pub(crate) fn has_urn_prefix(s: &str) -> bool {
    s.as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"urn:"))
}

/// `ATTRNAME` of RFC 7644 §3.10, also allowing `$ref`.
pub(crate) fn is_attr_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'$' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ResourceType {
    /// The core schema followed by every extension schema.
    pub fn schemas(&self) -> impl Iterator<Item = &'static Schema> + '_ {
        std::iter::once(self.schema).chain(self.extensions.iter().map(|e| e.schema))
    }

    /// The extension schema with this URN (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .map(|e| e.schema)
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Resolves an attribute path. An unqualified name is looked up in the core
    /// schema, then the common attributes, then (leniently, for clients that forget
    /// the URN) the extensions. A name qualified with the core URN finds core and
    /// common attributes; one qualified with an extension URN finds only that
    /// extension's. `None` when nothing matches, including a sub-attribute on an
    /// attribute that has none.
    pub fn resolve(&self, path: &RawPath<'_>) -> Option<AttrRef> {
        let (extension, attr) = match path.urn {
            Some(urn) if self.schema.id.eq_ignore_ascii_case(urn) => {
                (None, self.core_or_common(path.name)?)
            }
            Some(urn) => {
                let ext = self.extension(urn)?;
                (Some(ext), ext.attribute(path.name)?)
            }
            None => match self.core_or_common(path.name) {
                Some(a) => (None, a),
                None => self
                    .extensions
                    .iter()
                    .find_map(|e| Some((Some(e.schema), e.schema.attribute(path.name)?)))?,
            },
        };
        let sub = match path.sub {
            Some(s) => Some(attr.sub_attribute(s)?),
            None => None,
        };
        Some(AttrRef {
            extension,
            attr,
            sub,
        })
    }

    /// Parses and resolves a textual path such as `name.givenName` or
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`.
    pub fn resolve_path(&self, text: &str) -> Option<AttrRef> {
        self.resolve(&RawPath::parse(text)?)
    }

    fn core_or_common(&self, name: &str) -> Option<&'static AttributeDef> {
        self.schema.attribute(name).or_else(|| {
            super::definitions::COMMON_ATTRIBUTES
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{ENTERPRISE_USER_SCHEMA, GROUP, ROLE, USER};

    #[test]
    fn splits_paths() {
        let p =
            RawPath::parse("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName").unwrap();
        assert_eq!(p.urn, Some("urn:ietf:params:scim:schemas:core:2.0:User"));
        assert_eq!((p.name, p.sub), ("name", Some("givenName")));
        let p = RawPath::parse("members.$ref").unwrap();
        assert_eq!((p.urn, p.name, p.sub), (None, "members", Some("$ref")));
        // Multi-byte text where a byte offset would split a character must not panic.
        for odd in ["aéé:x", "uré:x", "é", "ü:ü.ü", "urn:é:x"] {
            assert!(RawPath::parse(odd).is_none(), "{odd:?}");
        }
        for bad in [
            "",
            "1abc",
            "a.b.c",
            "a b",
            "x:y",
            "a.",
            ".a",
            "urn:a b:c",
            "a[b]",
        ] {
            assert!(RawPath::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn resolves_case_insensitively_to_canonical_names() {
        let a = USER.resolve_path("NAME.GIVENNAME").unwrap();
        assert_eq!(a.to_string(), "name.givenName");
        assert_eq!(USER.resolve_path("username").unwrap().attr.name, "userName");
        let id = USER.resolve_path("ID").unwrap();
        assert!(id.attr.case_exact);
        assert_eq!(id.attr.mutability, Mutability::ReadOnly);
        assert_eq!(
            USER.resolve_path("meta.lastmodified").unwrap().to_string(),
            "meta.lastModified"
        );
        assert!(USER.resolve_path("nope").is_none());
        assert!(USER.resolve_path("userName.x").is_none());
        assert!(USER.resolve_path("name.nope").is_none());
    }

    #[test]
    fn resolves_urn_qualified_paths() {
        let d = USER
            .resolve_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .unwrap();
        assert_eq!(d.extension, Some(&ENTERPRISE_USER_SCHEMA));
        assert_eq!(
            d.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        );
        let m = USER
            .resolve_path(
                "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:manager.value",
            )
            .unwrap();
        assert_eq!(m.leaf().name, "value");
        let core = USER
            .resolve_path("urn:ietf:params:scim:schemas:core:2.0:User:emails.value")
            .unwrap();
        assert_eq!(
            (core.extension, core.to_string().as_str()),
            (None, "emails.value")
        );
        assert!(
            USER.resolve_path("urn:ietf:params:scim:schemas:core:2.0:User:id")
                .is_some()
        );
        // The unqualified fallback into extensions.
        assert_eq!(
            USER.resolve_path("costCenter").unwrap().extension,
            Some(&ENTERPRISE_USER_SCHEMA)
        );
        // A Group does not have User attributes, nor the enterprise extension.
        assert!(GROUP.resolve_path("userName").is_none());
        assert!(
            GROUP
                .resolve_path(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
                )
                .is_none()
        );
        assert_eq!(
            GROUP.resolve_path("members.value").unwrap().to_string(),
            "members.value"
        );
        assert_eq!(
            ROLE.resolve_path("description").unwrap().attr.name,
            "description"
        );
    }
}
