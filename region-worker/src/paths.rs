//! Every path the worker serves, in one place: the route table ([`crate::routes`])
//! registers these constants and the pages link, redirect and post to the same ones, so
//! a link cannot drift from its route and the Integrations page shows Okta exactly the
//! URLs that are served.
//!
//! A leaf: it imports nothing from the crate, so `web` (the sign-in redirect) and the
//! pages can use it without depending on `routes`. Paths with parameters are written as
//! route templates (`{team_id}`, the labels metrics report, see [`crate::metrics`]),
//! with a small function beside the template where a page or a header needs it filled.
//! Grouped by the listener or host that serves them.

/// The app host (`app.*`): the web pages.
pub mod app {
    /// The home page.
    pub const HOME: &str = "/";
    /// The sign-in page ("Sign in with your work email"); its `POST` finds the email's
    /// workspace (OIDC discovery).
    pub const SIGN_IN: &str = "/auth";
    /// The seed's Post-logout URI path: Okta's logout comes back to the sign-in page.
    pub const POST_LOGOUT: &str = SIGN_IN;
    /// Where sign-out lands when there was no Okta session to end.
    pub const SIGNED_OUT: &str = "/auth?signed_out=1";
    /// The one-time sign-in link of a workspace's first admin.
    pub const SIGN_IN_LINK: &str = "/auth/link";
    /// Where the API host hands a sign-in to the app host (a one-time code).
    pub const SIGN_IN_COMPLETE: &str = "/auth/complete";
    /// Where the sign-out forms post.
    pub const SIGN_OUT: &str = "/auth/sign-out";
    /// Integrations > Okta: the workspace's Okta settings and setup values.
    pub const OKTA_INTEGRATION: &str = "/integrations/okta";
    /// Where Integrations > Okta's claim form for an email domain posts.
    pub const OKTA_DOMAINS: &str = "/integrations/okta/domains";
    /// Where a claimed email domain's Verify button posts (the DNS lookup).
    pub const OKTA_DOMAINS_VERIFY: &str = "/integrations/okta/domains/verify";
    /// Where a claimed email domain's Remove button posts.
    pub const OKTA_DOMAINS_REMOVE: &str = "/integrations/okta/domains/remove";
    /// The SCIM OAuth grants Okta holds, and their Disconnect forms.
    pub const OKTA_PROVISIONING: &str = "/integrations/okta/provisioning";
    /// Where the grants' Disconnect forms post.
    pub const OKTA_PROVISIONING_DISCONNECT: &str = "/integrations/okta/provisioning/disconnect";
    /// The SCIM OAuth consent page.
    pub const OAUTH_CONSENT: &str = "/oauth/consent";
    /// The consent page of an MCP client's authorization request.
    pub const MCP_CONSENT: &str = "/mcp/consent";
    /// Where the Connected apps' Disconnect forms on the tokens page post.
    pub const MCP_DISCONNECT: &str = "/tokens/connected-apps/disconnect";
    /// A user's API and MCP tokens.
    pub const TOKENS: &str = "/tokens";
    /// Where the tokens page's Revoke forms post.
    pub const TOKENS_REVOKE: &str = "/tokens/revoke";
    /// The workspace as its admins see it.
    pub const WORKSPACE: &str = "/workspace";
    /// Activity: the workspace's audit events, filtered and paged.
    pub const ACTIVITY: &str = "/activity";
    /// The Activity page's events as a download (`?format=jsonl|csv` and its filter).
    pub const ACTIVITY_EXPORT: &str = "/activity/export";
    /// People: the workspace's users, searched, filtered and paged.
    pub const PEOPLE: &str = "/people";
    /// One user of the workspace.
    pub const PERSON: &str = "/people/{id}";
    /// Groups: the workspace's groups, paged.
    pub const GROUPS: &str = "/groups";
    /// One group of the workspace and its members.
    pub const GROUP: &str = "/groups/{id}";

    /// One user's page, [`PERSON`] filled in.
    pub fn person(id: impl std::fmt::Display) -> String {
        format!("{PEOPLE}/{id}")
    }

    /// One group's page, [`GROUP`] filled in.
    pub fn group(id: impl std::fmt::Display) -> String {
        format!("{GROUPS}/{id}")
    }
}

/// The API host (`api.*`): SCIM, OAuth, OIDC, Universal Logout and the JSON API.
pub mod api {
    use std::fmt::Display;

    /// A cheap probe: which region answered.
    pub const PING: &str = "/api/ping";
    /// The OpenAPI document of the JSON endpoints.
    pub const OPENAPI: &str = "/api/openapi.json";

    /// The SCIM 2.0 prefix; a workspace's base URL is this, `/` and its `team_id`.
    pub const SCIM: &str = "/api/scim/v2";
    /// A workspace's SCIM base itself (no such endpoint: `404` in SCIM's format).
    pub const SCIM_WORKSPACE: &str = "/api/scim/v2/{team_id}";
    /// Users.
    pub const SCIM_USERS: &str = "/api/scim/v2/{team_id}/Users";
    /// One user.
    pub const SCIM_USER: &str = "/api/scim/v2/{team_id}/Users/{id}";
    /// Groups.
    pub const SCIM_GROUPS: &str = "/api/scim/v2/{team_id}/Groups";
    /// One group.
    pub const SCIM_GROUP: &str = "/api/scim/v2/{team_id}/Groups/{id}";
    /// Roles (Okta's entitlements).
    pub const SCIM_ROLES: &str = "/api/scim/v2/{team_id}/Roles";
    /// One role.
    pub const SCIM_ROLE: &str = "/api/scim/v2/{team_id}/Roles/{id}";
    /// RFC 7644 §4 discovery.
    pub const SCIM_SERVICE_PROVIDER_CONFIG: &str = "/api/scim/v2/{team_id}/ServiceProviderConfig";
    /// RFC 7644 §4 discovery.
    pub const SCIM_RESOURCE_TYPES: &str = "/api/scim/v2/{team_id}/ResourceTypes";
    /// RFC 7644 §4 discovery.
    pub const SCIM_RESOURCE_TYPE: &str = "/api/scim/v2/{team_id}/ResourceTypes/{id}";
    /// RFC 7644 §4 discovery.
    pub const SCIM_SCHEMAS: &str = "/api/scim/v2/{team_id}/Schemas";
    /// RFC 7644 §4 discovery.
    pub const SCIM_SCHEMA: &str = "/api/scim/v2/{team_id}/Schemas/{id}";
    /// Bulk operations (not implemented: `501`).
    pub const SCIM_BULK: &str = "/api/scim/v2/{team_id}/Bulk";
    /// `/Me` (not implemented: `501`).
    pub const SCIM_ME: &str = "/api/scim/v2/{team_id}/Me";
    /// Anything else under a workspace's SCIM base (`404` in SCIM's format).
    pub const SCIM_OTHER: &str = "/api/scim/v2/{team_id}/{*rest}";

    /// A workspace's SCIM base path (absolute with the API base in front).
    pub fn scim_base(team_id: impl Display) -> String {
        format!("{SCIM}/{team_id}")
    }

    /// The SCIM OAuth server's authorization endpoint (Okta's provisioning app).
    pub const OKTA_SCIM_OAUTH_AUTHORIZE: &str = "/api/okta/scim/oauth/authorize";
    /// The SCIM OAuth server's token endpoint.
    pub const OKTA_SCIM_OAUTH_TOKEN: &str = "/api/okta/scim/oauth/token";

    /// The Okta sign-in endpoints' common prefix: the path of the sign-in's binding
    /// cookie, so the browser sends it to these endpoints only.
    pub const OKTA_OIDC: &str = "/api/okta/oidc";
    /// The seed's Initiate login URI path.
    pub const OKTA_OIDC_LOGIN: &str = "/api/okta/oidc/login";
    /// The seed's Redirect URI path.
    pub const OKTA_OIDC_CALLBACK: &str = "/api/okta/oidc/callback";

    /// Okta's Universal Logout endpoint.
    pub const OKTA_UNIVERSAL_LOGOUT: &str = "/api/okta/universal-logout";

    /// Who a personal API token belongs to.
    pub const ME: &str = "/api/me";
    /// Who an MCP token belongs to.
    pub const MCP_WHOAMI: &str = "/api/mcp/whoami";
    /// The MCP endpoint (Streamable HTTP), the protected resource of the MCP OAuth
    /// server.
    pub const MCP: &str = "/api/mcp";
    /// RFC 9728 metadata of the MCP resource (the well-known prefix, then its path).
    pub const MCP_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource/api/mcp";
    /// RFC 9728 metadata at the host's root, for clients that look there first.
    pub const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";
    /// RFC 8414 metadata of the region's MCP authorization server (its issuer is the
    /// API base, which has no path).
    pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
    /// The MCP OAuth server's authorization endpoint.
    pub const MCP_OAUTH_AUTHORIZE: &str = "/api/mcp/oauth/authorize";
    /// The MCP OAuth server's token endpoint.
    pub const MCP_OAUTH_TOKEN: &str = "/api/mcp/oauth/token";
    /// Dynamic client registration (RFC 7591).
    pub const MCP_OAUTH_REGISTER: &str = "/api/mcp/oauth/register";
    /// Token revocation (RFC 7009).
    pub const MCP_OAUTH_REVOKE: &str = "/api/mcp/oauth/revoke";
    /// The caller's personal tokens.
    pub const TOKENS: &str = "/api/tokens";
    /// One of the caller's personal tokens.
    pub const TOKEN: &str = "/api/tokens/{id}";
    /// Token introspection (RFC 7662).
    pub const TOKEN_INTROSPECT: &str = "/api/tokens/introspect";

    /// One personal token's path, [`TOKEN`] filled in.
    pub fn token(id: impl Display) -> String {
        format!("{TOKENS}/{id}")
    }
}

/// The admin listener (never the public port).
pub mod admin {
    /// Liveness.
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness: both stores answer.
    pub const READYZ: &str = "/readyz";
    /// Prometheus metrics.
    pub const METRICS: &str = "/metrics";
}

#[cfg(test)]
mod tests {
    use super::{api, app};

    #[test]
    fn scim_templates_sit_under_a_workspace_base() {
        for template in [
            api::SCIM_USERS,
            api::SCIM_USER,
            api::SCIM_GROUPS,
            api::SCIM_GROUP,
            api::SCIM_ROLES,
            api::SCIM_ROLE,
            api::SCIM_SERVICE_PROVIDER_CONFIG,
            api::SCIM_RESOURCE_TYPES,
            api::SCIM_RESOURCE_TYPE,
            api::SCIM_SCHEMAS,
            api::SCIM_SCHEMA,
            api::SCIM_BULK,
            api::SCIM_ME,
            api::SCIM_OTHER,
        ] {
            let rest = template.strip_prefix(api::SCIM_WORKSPACE).unwrap();
            assert!(rest.starts_with('/'), "{template}");
        }
        assert_eq!(api::scim_base("{team_id}"), api::SCIM_WORKSPACE);
    }

    #[test]
    fn filled_paths_match_their_templates() {
        assert_eq!(api::token("{id}"), api::TOKEN);
        assert_eq!(app::person("{id}"), app::PERSON);
        assert_eq!(app::group("{id}"), app::GROUP);
        assert_eq!(
            api::token("0b7e6a1c-0f52-4a8e-9a57-1c3d2b4a5e6f"),
            "/api/tokens/0b7e6a1c-0f52-4a8e-9a57-1c3d2b4a5e6f"
        );
    }

    #[test]
    fn prefixes_hold() {
        for p in [api::OKTA_OIDC_LOGIN, api::OKTA_OIDC_CALLBACK] {
            assert!(p.starts_with(&format!("{}/", api::OKTA_OIDC)), "{p}");
        }
        for p in [app::SIGN_IN_LINK, app::SIGN_IN_COMPLETE, app::SIGN_OUT] {
            assert!(p.starts_with(&format!("{}/", app::SIGN_IN)), "{p}");
        }
        assert_eq!(app::SIGNED_OUT, format!("{}?signed_out=1", app::SIGN_IN));
        assert!(app::OKTA_PROVISIONING.starts_with(app::OKTA_INTEGRATION));
        assert!(app::OKTA_PROVISIONING_DISCONNECT.starts_with(app::OKTA_PROVISIONING));
    }
}
