//! The seed-file format: the org the `okta-sim` binary (and [`super::SimConfig`]) starts
//! with. JSON, unknown fields refused so that a typo does not silently drop a setting:
//!
//! ```json
//! {
//!   "apps": [{
//!     "name": "closedloop-us",
//!     "client_id": "0oaclosedloopus00001",
//!     "client_secret": "a-demo-secret-of-forty-characters-000000",
//!     "redirect_uris": ["http://api.closedloop.localhost/api/okta/oidc/callback"],
//!     "post_logout_redirect_uris": ["http://app.closedloop.localhost/auth"]
//!   }],
//!   "users": [{
//!     "login": "jane@acme.test", "given_name": "Jane", "family_name": "Doe",
//!     "password": "correct horse", "apps": ["closedloop-us"]
//!   }],
//!   "groups": [{ "name": "Engineering", "members": ["jane@acme.test"] }]
//! }
//! ```
//!
//! Every key is optional except an app's `name`, a user's `login`, `given_name` and
//! `family_name`, and a group's `name`. Missing client ids and secrets are generated
//! (and printed by the binary); a user's `email` defaults to the login, `locale` to
//! `en-US`, `active` to true; a user without `password` signs in with any password.

use serde::{Deserialize, Serialize};

/// The whole seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// App instances; none means one default app (see [`SeedApp::test_default`]).
    #[serde(default)]
    pub apps: Vec<SeedApp>,
    /// Users.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
}

impl Seed {
    /// Parses a seed file's text.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// One app instance (an OIDC web app with SCIM provisioning).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedApp {
    /// Its label, which users' `apps` refer to.
    pub name: String,
    /// The OIDC client id; generated (`0oa…`) when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OIDC client secret; generated when absent.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Allowed `redirect_uri`s (exact match).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Allowed `post_logout_redirect_uri`s.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
}

impl SeedApp {
    /// The default app: named `closedloop`, with both regions' callback and post-logout
    /// URLs of the test region map (`*.closedloop.localhost`).
    pub fn test_default() -> Self {
        Self {
            name: "closedloop".into(),
            client_id: None,
            client_secret: None,
            redirect_uris: vec![
                "http://api.closedloop.localhost/api/okta/oidc/callback".into(),
                "http://eu.api.closedloop.localhost/api/okta/oidc/callback".into(),
            ],
            post_logout_redirect_uris: vec![
                "http://app.closedloop.localhost/auth".into(),
                "http://eu.app.closedloop.localhost/auth".into(),
            ],
        }
    }
}

/// One user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Okta login (an email address).
    pub login: String,
    /// First name.
    pub given_name: String,
    /// Last name.
    pub family_name: String,
    /// Primary email; the login when absent.
    #[serde(default)]
    pub email: Option<String>,
    /// The login page's password; any password when absent.
    #[serde(default)]
    pub password: Option<String>,
    /// Locale; `en-US` when absent.
    #[serde(default)]
    pub locale: Option<String>,
    /// Whether the user is active (may sign in).
    #[serde(default = "yes")]
    pub active: bool,
    /// Names of the apps the user is assigned to.
    #[serde(default)]
    pub apps: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedGroup {
    /// Its name.
    pub name: String,
    /// Logins of its members.
    #[serde(default)]
    pub members: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("seed.rs");
        let start = doc.find("//! {").unwrap();
        let end = doc.find("//! ```\n//!\n//! Every").unwrap();
        let json: String = doc[start..end]
            .lines()
            .map(|l| l.trim_start_matches("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let seed = Seed::parse(&json).unwrap();
        assert_eq!(seed.apps[0].name, "closedloop-us");
        assert!(seed.users[0].active);
        assert_eq!(seed.groups[0].members, ["jane@acme.test"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            Seed::parse(
                r#"{"users":[{"login":"a","given_name":"A","family_name":"B","pasword":"x"}]}"#
            )
            .is_err()
        );
        assert!(Seed::parse("{}").unwrap().apps.is_empty());
    }
}
