//! MCP clients connecting with OAuth (issue 17): the region's MCP endpoint, the
//! protected resource, and the OAuth authorization server MCP clients discover from it
//! (the MCP authorization specification, revision 2026-07-28, and the revisions current
//! SDKs implement).
//!
//! The flow, across the region's two hosts:
//! 1. `POST {api}/api/mcp` without a valid token answers `401` naming the resource's
//!    metadata ([`server`]); the client reads it and the authorization server's
//!    ([`metadata`]).
//! 2. The client identifies itself with a Client ID Metadata Document or registers
//!    (RFC 7591, [`register`]); [`clients`] resolves either and matches redirect URIs.
//! 3. `GET {api}/api/mcp/oauth/authorize` ([`authorize`]) checks the client and its
//!    redirect URI before anything else, then PKCE S256, the `resource` and the scopes,
//!    parks the request and sends the browser to the app host.
//! 4. `{app}/mcp/consent` ([`consent`]) signs the user in (through the workspace's
//!    Okta when configured) and asks them; Approve creates the grant and a code.
//! 5. `POST {api}/api/mcp/oauth/token` ([`token`]) redeems the code or rotates a
//!    refresh token; access tokens are the region's MCP tokens, carrying the user's
//!    revocation epoch. `POST …/revoke` ([`revoke`]) is RFC 7009.
//! 6. `/tokens` lists each grant under "Connected apps" ([`connected`]).
//!
//! Every authorization response names the issuer (`iss`, RFC 9207), so a client
//! talking to several authorization servers cannot be mixed up.

pub mod authorize;
pub mod clients;
pub mod connected;
pub mod consent;
pub mod metadata;
pub mod register;
pub mod revoke;
pub mod server;
pub mod token;

use crate::paths::api;
use crate::state::AppState;

/// The one scope: use the MCP server as the user.
pub const SCOPE: &str = "mcp";

/// The counter of the MCP OAuth flow's steps, by step and outcome.
pub const MCP_OAUTH: &str = "worker_mcp_oauth_total";

/// The region's MCP resource identifier (RFC 8707): the MCP endpoint's URL. Tokens are
/// issued for it and only for it.
pub fn resource(state: &AppState) -> String {
    format!("{}{}", state.config.region.api_base(), api::MCP)
}

/// The region's MCP authorization server's issuer identifier: the API base (no path,
/// so its metadata is at the host's `/.well-known/oauth-authorization-server`).
pub fn issuer(state: &AppState) -> String {
    state.config.region.api_base().to_owned()
}

/// Counts one step of the flow.
pub fn count(step: &'static str, outcome: &'static str) {
    metrics::counter!(MCP_OAUTH, "step" => step, "outcome" => outcome).increment(1);
}
