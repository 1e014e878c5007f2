//! Test fixtures shared by the tests beside each part of the region map: a small valid
//! map to edit, and Okta's callback pattern.

use super::RegionMapError;

/// A valid two-region map with a plain-HTTP `[gateway]` table; tests replace parts of it.
pub(super) const GOOD: &str = r#"
[gateway]
listen = "0.0.0.0:443"
admin_listen = "127.0.0.1:9000"

[regions.us]
app_url = "https://app.closedloop.sh"
api_url = "https://api.closedloop.sh"
workers = ["us-worker-0:8081", "us-worker-1:8081"]
postgres = { env = "CLOSEDLOOP_US_DATABASE_URL" }
redis = { file = "/run/secrets/us-redis-url" }

[regions.eu]
app_url = "https://eu.app.closedloop.sh"
api_url = "https://eu.api.closedloop.sh"
workers = ["eu-worker-0:8081"]
postgres = { env = "CLOSEDLOOP_EU_DATABASE_URL" }
redis = { env = "CLOSEDLOOP_EU_REDIS_URL" }
"#;

/// Okta's SCIM OAuth callback, as the Okta Integration Network asks to allow it.
pub(super) const OKTA_CALLBACK: &str =
    "https://system-admin.okta.com/admin/app/cpc/{appName}/oauth/callback";

/// The line of `text` that `e` names.
pub(super) fn offending_line<'a>(text: &'a str, e: &RegionMapError) -> &'a str {
    text.lines().nth(e.line - 1).unwrap_or_default()
}
