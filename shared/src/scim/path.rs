//! PATCH paths (RFC 7644 §3.5.2, Figure 7): `attr`, `attr.sub`, `urn:…:attr`,
//! `attr[filter]`, `attr[filter].sub`, and a bare extension URN naming the whole
//! extension object. Resolved against the schema like filters; unlike filters, an
//! unknown attribute is an error (`400 invalidPath`), except under a schema URN we do
//! not know, whose attributes are stored as sent (custom extensions).

use std::fmt;

use super::error::{ScimError, ScimType};
use super::filter::{
    Filter, FilterOptions, UnknownAttributes, ValueFilterText, parse_value_filter,
};
use super::schema::{AttrRef, AttrType, RawPath, ResourceType, Schema, is_attr_name};

/// A parsed PATCH path.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchPath {
    /// A whole schema extension object (`urn:…:extension:enterprise:2.0:User`).
    Extension(&'static Schema),
    /// A schema attribute (`attr.sub` sets `attr.sub`); with a value filter, the
    /// values of the multi-valued `attr.attr` it selects (and their `attr.sub`).
    Attribute {
        /// The attribute, and the sub-attribute if the path names one.
        attr: AttrRef,
        /// The value filter (`emails[type eq "work"]`), over `attr.attr`'s values.
        filter: Option<Filter>,
    },
    /// An attribute of an extension schema we do not define, stored verbatim under
    /// the URN key.
    Foreign {
        /// The extension URN as written.
        urn: String,
        /// The attribute name as written.
        name: String,
        /// The sub-attribute name as written.
        sub: Option<String>,
    },
}

fn invalid_path(detail: String) -> ScimError {
    ScimError::bad_request(ScimType::InvalidPath, detail)
}

impl PatchPath {
    /// Parses `text` for resources of type `rt`. Syntax and unknown names are
    /// `400 invalidPath`; a bad value filter is `400 invalidFilter`.
    pub fn parse(text: &str, rt: &'static ResourceType) -> Result<Self, ScimError> {
        let text = text.trim();
        if let Some(ext) = rt.extension(text) {
            return Ok(PatchPath::Extension(ext));
        }
        let Some(open) = text.find('[') else {
            let raw = RawPath::parse(text)
                .ok_or_else(|| invalid_path(format!("{text:?} is not an attribute path")))?;
            if let Some(attr) = rt.resolve(&raw) {
                return Ok(PatchPath::Attribute { attr, filter: None });
            }
            return match raw.urn {
                Some(urn) if !rt.schemas().any(|s| s.id.eq_ignore_ascii_case(urn)) => {
                    Ok(PatchPath::Foreign {
                        urn: urn.to_owned(),
                        name: raw.name.to_owned(),
                        sub: raw.sub.map(str::to_owned),
                    })
                }
                _ => Err(invalid_path(format!("unknown attribute {text:?}"))),
            };
        };
        let head = &text[..open];
        let parent = RawPath::parse(head)
            .filter(|p| p.sub.is_none())
            .and_then(|p| rt.resolve(&p))
            .filter(|a| a.attr.ty == AttrType::Complex && a.attr.multi_valued)
            .ok_or_else(|| {
                invalid_path(format!(
                    "{head:?} is not a multi-valued complex attribute, so it takes no value filter"
                ))
            })?;
        let opts = FilterOptions {
            unknown_attributes: UnknownAttributes::Reject,
            ..FilterOptions::default()
        };
        let (filter, end) = parse_value_filter(text, open, Some(parent), rt, opts)?;
        let sub = match text.get(end..).unwrap_or_default() {
            "" => None,
            rest => {
                let name = rest
                    .strip_prefix('.')
                    .filter(|n| is_attr_name(n))
                    .ok_or_else(|| {
                        invalid_path(format!("unexpected {rest:?} after the value filter"))
                    })?;
                Some(parent.attr.sub_attribute(name).ok_or_else(|| {
                    invalid_path(format!(
                        "'{}' has no sub-attribute {name:?}",
                        parent.attr.name
                    ))
                })?)
            }
        };
        Ok(PatchPath::Attribute {
            attr: parent.with_sub(sub),
            filter: Some(filter),
        })
    }
}

impl fmt::Display for PatchPath {
    /// The canonical path text; parsing it gives back an equal path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchPath::Extension(s) => f.write_str(s.id),
            PatchPath::Attribute { attr, filter: None } => write!(f, "{attr}"),
            PatchPath::Attribute {
                attr,
                filter: Some(filter),
            } => {
                write!(f, "{}[", attr.with_sub(None))?;
                write!(f, "{}", ValueFilterText(filter))?;
                f.write_str("]")?;
                if let Some(sub) = attr.sub {
                    write!(f, ".{}", sub.name)?;
                }
                Ok(())
            }
            PatchPath::Foreign { urn, name, sub } => {
                write!(f, "{urn}:{name}")?;
                if let Some(sub) = sub {
                    write!(f, ".{sub}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{ENTERPRISE_USER_SCHEMA, GROUP, USER};

    fn parse(s: &str) -> PatchPath {
        PatchPath::parse(s, &USER).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> ScimError {
        PatchPath::parse(s, &USER).expect_err(s)
    }

    #[test]
    fn plain_and_qualified_paths() {
        assert_eq!(parse("active").to_string(), "active");
        assert_eq!(parse("NAME.givenname").to_string(), "name.givenName");
        assert_eq!(
            parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
        );
        assert_eq!(
            parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
            PatchPath::Extension(&ENTERPRISE_USER_SCHEMA)
        );
        assert_eq!(
            parse("urn:example:custom:1.0:User:shoeSize"),
            PatchPath::Foreign {
                urn: "urn:example:custom:1.0:User".into(),
                name: "shoeSize".into(),
                sub: None
            }
        );
        assert_eq!(
            parse("urn:example:custom:1.0:User:a.b").to_string(),
            "urn:example:custom:1.0:User:a.b"
        );
    }

    #[test]
    fn filtered_paths() {
        let p = parse(r#"emails[type eq "work"].value"#);
        let PatchPath::Attribute {
            attr,
            filter: Some(_),
        } = &p
        else {
            panic!("{p:?}")
        };
        assert_eq!(attr.to_string(), "emails.value");
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
        assert_eq!(
            parse(r#"addresses[type eq "work"].streetAddress"#).to_string(),
            r#"addresses[type eq "work"].streetAddress"#
        );
        assert_eq!(
            parse(r#"roles[value eq "r1"]"#).to_string(),
            r#"roles[value eq "r1"]"#
        );
        let m = PatchPath::parse(r#"members[value eq "a" or value eq "b"]"#, &GROUP).unwrap();
        assert_eq!(m.to_string(), r#"members[value eq "a" or value eq "b"]"#);
        for s in [
            r#"emails[type eq "work"].value"#,
            r#"members[value eq "a"]"#,
        ] {
            let rt = if s.starts_with("members") {
                &GROUP
            } else {
                &USER
            };
            let p = PatchPath::parse(s, rt).unwrap();
            assert_eq!(PatchPath::parse(&p.to_string(), rt).unwrap(), p);
        }
    }

    #[test]
    fn bad_paths() {
        for s in [
            "",
            "nope",
            "name.nope",
            "urn:ietf:params:scim:schemas:core:2.0:User:nope",
            "a b",
            "emails]",
        ] {
            assert_eq!(err(s).scim_type, Some(ScimType::InvalidPath), "{s}");
        }
        for s in [
            r#"name[givenName eq "x"]"#,
            r#"userName[x eq "y"]"#,
            r#"emails.value[type eq "work"]"#,
            r#"emails[type eq "work"]value"#,
            r#"emails[type eq "work"].nope"#,
            r#"emails[type eq "work"]."#,
            r#"nope[type eq "work"]"#,
        ] {
            assert_eq!(err(s).scim_type, Some(ScimType::InvalidPath), "{s}");
        }
        for s in [
            r#"emails[type eq "work""#,
            r#"emails[typo eq "work"]"#,
            r#"emails[]"#,
        ] {
            assert_eq!(err(s).scim_type, Some(ScimType::InvalidFilter), "{s}");
        }
    }
}
