//! Protocol identifiers as newtypes, each with a `parse` constructor, so that a region
//! name or workspace id is validated once at the edge and never branched on as a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The name of a region (`us`, `eu`): lower-case ASCII letters and digits, 1 to 16
/// characters, starting with a letter. It appears in token prefixes and store stamps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RegionId(String);

/// Why a region name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region id {0:?} must be 1-16 lower-case letters or digits, starting with a letter")]
pub struct InvalidRegionId(pub String);

impl RegionId {
    /// Validates a region name.
    pub fn parse(s: &str) -> Result<Self, InvalidRegionId> {
        let ok = (1..=16).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidRegionId(s.to_owned()))
        }
    }

    /// The region name as written in configs and token prefixes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RegionId {
    type Err = InvalidRegionId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for RegionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A workspace id (`team_id`): a UUID, printed in lower-case hyphenated form. Okta
/// stores it as the app's tenant setting and splices it into the SCIM base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TeamId(Uuid);

/// Why a workspace id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a workspace id (a UUID)")]
pub struct InvalidTeamId(pub String);

impl TeamId {
    /// A fresh random workspace id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses a UUID in any of its textual forms (hyphenated, simple, braced, URN).
    pub fn parse(s: &str) -> Result<Self, InvalidTeamId> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| InvalidTeamId(s.to_owned()))
    }

    /// The underlying UUID, for binding as a query parameter.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for TeamId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl fmt::Display for TeamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for TeamId {
    type Err = InvalidTeamId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_ids() {
        assert!(RegionId::parse("us").is_ok());
        assert!(RegionId::parse("eu2").is_ok());
        for bad in ["", "US", "2eu", "e-u", "abcdefghijklmnopq", "eu "] {
            assert!(RegionId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn team_ids_print_hyphenated_lower_case() {
        let t = TeamId::parse("6F9619FF8B86D011B42D00C04FC964FF").unwrap();
        assert_eq!(t.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert!(TeamId::parse("not-a-uuid").is_err());
        assert!(TeamId::parse("010101001010101011001010101011").is_err());
    }
}
