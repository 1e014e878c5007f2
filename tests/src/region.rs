//! The two regions of the test map as one enum, with everything a test needs to reach
//! one: its hosts, its SCIM OAuth and introspection clients, its encryption key.
//!
//! A region used to be a `&str` ("us" or "eu"), and every helper decided on its own
//! what an unknown string meant (`worker("xx")` silently answered with the EU worker).
//! With an enum a typo fails the build, and each per-region value is written once here
//! instead of in an `if region == "us"` at every call site.

use std::fmt;
use std::str::FromStr;

use crate::harness::{
    EU_API, EU_APP, EU_ENCRYPTION_KEY, EU_INTROSPECTION_CLIENT_ID, EU_INTROSPECTION_SECRET,
    EU_SCIM_CLIENT_ID, EU_SCIM_CLIENT_SECRET, US_API, US_APP, US_ENCRYPTION_KEY,
    US_INTROSPECTION_CLIENT_ID, US_INTROSPECTION_SECRET, US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET,
};

/// A region of the test map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// `us`: `app.closedloop.localhost`, `api.closedloop.localhost`.
    Us,
    /// `eu`: `eu.app.closedloop.localhost`, `eu.api.closedloop.localhost`.
    Eu,
}

impl Region {
    /// Both regions, US first.
    pub const ALL: [Region; 2] = [Region::Us, Region::Eu];

    /// The region id of the map (`us`, `eu`): what the worker's `--region` takes and
    /// what its answers and token prefixes carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }

    /// The same id as the worker's type.
    pub fn id(self) -> shared::ids::RegionId {
        shared::ids::RegionId::parse(self.as_str()).expect("the test map's regions are valid")
    }

    /// The other region: where this region's credentials must not work.
    pub fn other(self) -> Region {
        match self {
            Region::Us => Region::Eu,
            Region::Eu => Region::Us,
        }
    }

    /// The API host (no port).
    pub fn api(self) -> &'static str {
        match self {
            Region::Us => US_API,
            Region::Eu => EU_API,
        }
    }

    /// The app host (no port).
    pub fn app(self) -> &'static str {
        match self {
            Region::Us => US_APP,
            Region::Eu => EU_APP,
        }
    }

    /// `http://{api host}`: the API's base URL when the map names no port.
    pub fn api_url(self) -> String {
        format!("http://{}", self.api())
    }

    /// `http://{app host}`: the app's base URL when the map names no port.
    pub fn app_url(self) -> String {
        format!("http://{}", self.app())
    }

    /// Okta's SCIM OAuth client of this region: id and secret.
    pub fn scim_client(self) -> (&'static str, &'static str) {
        match self {
            Region::Us => (US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET),
            Region::Eu => (EU_SCIM_CLIENT_ID, EU_SCIM_CLIENT_SECRET),
        }
    }

    /// The products' introspection client of this region: id and secret.
    pub fn introspection(self) -> (&'static str, &'static str) {
        match self {
            Region::Us => (US_INTROSPECTION_CLIENT_ID, US_INTROSPECTION_SECRET),
            Region::Eu => (EU_INTROSPECTION_CLIENT_ID, EU_INTROSPECTION_SECRET),
        }
    }

    /// The region key that seals Okta client secrets (hex).
    pub fn encryption_key(self) -> &'static str {
        match self {
            Region::Us => US_ENCRYPTION_KEY,
            Region::Eu => EU_ENCRYPTION_KEY,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A region id the test map does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the test map has no region {0:?} (only us and eu)")]
pub struct UnknownRegion(pub String);

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRegion(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_nothing_else_parses() {
        for r in Region::ALL {
            assert_eq!(r.as_str().parse::<Region>(), Ok(r));
            assert_eq!(r.id().as_str(), r.as_str());
            assert_ne!(r.other(), r);
        }
        assert_eq!("xx".parse::<Region>(), Err(UnknownRegion("xx".to_owned())));
        assert!("US".parse::<Region>().is_err());
    }

    #[test]
    fn hosts_are_the_test_maps() {
        assert_eq!(Region::Us.app_url(), "http://app.closedloop.localhost");
        assert_eq!(Region::Eu.api_url(), "http://eu.api.closedloop.localhost");
    }
}
