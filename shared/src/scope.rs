//! The scopes of the SCIM OAuth server and of SCIM bearer tokens: exactly
//! `scim.read`, `scim.write` and `entitlements.read`, nothing else.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One SCIM scope. Stores (Postgres `text[]` columns, Redis JSON entries) and audit
/// details keep its wire name; serde reads and writes the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read users, groups and discovery documents.
    ScimRead,
    /// Create, change and delete users and groups.
    ScimWrite,
    /// Read workspace roles (`/Roles`) for Okta Entitlement Management.
    EntitlementsRead,
}

/// A scope string that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected scim.read, scim.write or entitlements.read")]
pub struct UnknownScope(pub String);

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 3] = [Scope::ScimRead, Scope::ScimWrite, Scope::EntitlementsRead];

    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ScimRead => "scim.read",
            Scope::ScimWrite => "scim.write",
            Scope::EntitlementsRead => "entitlements.read",
        }
    }

    /// Parses one scope name (exact, case-sensitive as RFC 6749 §3.3 requires).
    pub fn parse(s: &str) -> Result<Self, UnknownScope> {
        Self::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }

    /// A description in words, for consent pages.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::ScimRead => "Read the workspace's users and groups",
            Scope::ScimWrite => "Create, update and deactivate users and groups",
            Scope::EntitlementsRead => "Read the workspace's roles",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The space-separated form of a scope list (RFC 6749 §3.3), as the token endpoint's
/// `scope` and the operator's `token issue` print it.
pub fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a space-separated scope list (commas tolerated, as admins paste the seed's
/// `scim.read, scim.write, entitlements.read`); duplicates collapse; the result is
/// sorted. An empty list is returned as empty (callers decide the default).
pub fn parse_list(s: &str) -> Result<Vec<Scope>, UnknownScope> {
    let mut scopes = s
        .split([' ', ','])
        .filter(|p| !p.is_empty())
        .map(Scope::parse)
        .collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            parse_list("scim.write scim.read scim.read").unwrap(),
            vec![Scope::ScimRead, Scope::ScimWrite]
        );
        assert_eq!(
            parse_list("scim.read, scim.write, entitlements.read")
                .unwrap()
                .len(),
            3
        );
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list("SCIM.READ").is_err());
        assert!(parse_list("scim.read admin").is_err());
    }

    #[test]
    fn scopes_serialise_as_their_wire_names() {
        let all = Scope::ALL.to_vec();
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(json, r#"["scim.read","scim.write","entitlements.read"]"#);
        assert_eq!(serde_json::from_str::<Vec<Scope>>(&json).unwrap(), all);
        assert!(serde_json::from_str::<Scope>(r#""admin""#).is_err());
        assert_eq!(join(&all), "scim.read scim.write entitlements.read");
        assert_eq!(join(&[]), "");
        assert_eq!(parse_list(&join(&all)).unwrap().len(), 3);
    }
}
