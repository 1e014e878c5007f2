//! The SCIM OAuth 2.0 authorization server Okta obtains its SCIM bearer token from
//! (OKTA.md §6, the seed's Step 5), and the page that lists and disconnects its grants.
//!
//! The flow, across the region's two hosts:
//! 1. `GET {api}/api/okta/scim/oauth/authorize` ([`authorize`]) checks the client and
//!    the redirect URI before anything else, then parks the request and sends the
//!    browser to the app host, where the session cookie lives.
//! 2. `GET|POST {app}/oauth/consent` ([`consent`]) signs the admin in if needed, names
//!    the workspace, region, client and scopes, and on Approve creates the grant and a
//!    code (single use, at most 60 s) and redirects back to Okta.
//! 3. `POST {api}/api/okta/scim/oauth/token` ([`token`]) authenticates the client and
//!    runs the `authorization_code` ([`code_grant`]) or `refresh_token`
//!    ([`refresh_grant`]) grant, issuing tokens ([`issue`]) that SCIM accepts as they are.
//! 4. `{app}/integrations/okta/provisioning` ([`grants_page`]) lists the connected
//!    grants and disconnects them.
//!
//! Errors: [`error::OAuthError`] renders RFC 6749 §5.2 at the token endpoint; errors
//! after the redirect URI is validated go back to the client (§4.1.2.1); before that, and
//! on the app host, a page explains.

pub mod authorize;
pub mod client_auth;
pub mod code_grant;
pub mod consent;
pub mod error;
pub mod grants_page;
pub mod issue;
pub mod params;
pub mod refresh_grant;
pub mod revoke;
pub mod token;
