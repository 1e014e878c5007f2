//! Test support for the whole system: the harness that starts real workers and
//! gateways on port 0 over per-test databases and Redis key spaces, and (as binaries)
//! the load generator.
//!
//! # Layout
//!
//! - [`harness`]: per-test stores, in-process workers and gateways, a whole two-region
//!   stack behind a gateway.
//! - [`region`]: the test map's two regions as an enum, with their hosts and clients.
//! - [`okta_sim`]: a simulated Okta org (OIDC server, SCIM provisioning client, SCIM
//!   OAuth client, Universal Logout sender); the `okta-sim` binary serves one.
//! - [`hostile_as`]: a hostile authorization server (the OIDC mix-up attacker's "Okta
//!   org"); the `hostile-as` binary serves one.
//! - [`story`]: the seed's whole story through the gateway, step by step, for the e2e
//!   suite and the launcher's `demo`.
//! - [`web`]: the one cookie-jar browser of the tests and the story.
//! - [`dns_server`]: a tiny DNS server answering TXT queries from a table (the proof of
//!   a claimed email domain).
//! - [`browser`]: a real browser (headless Chromium over WebDriver) for the page tests.
//! - Helpers several e2e modules share: [`session`] (pages with a session cookie),
//!   [`tokens`] (personal tokens made, used, introspected), [`redirect`] (reading
//!   redirects), [`okta_page`] (the Integrations > Okta form), [`okta_world`] (a
//!   workspace connected to the simulated org: its users, SCIM provisioning, audit
//!   trail and sessions), [`scim_grant`] (a SCIM OAuth grant approved by an admin).

#![forbid(unsafe_code)]

pub mod browser;
pub mod dns_server;
pub mod harness;
pub mod hostile_as;
pub mod mcp_client;
pub mod okta_page;
pub mod okta_sim;
pub mod okta_world;
pub mod redirect;
pub mod region;
pub mod scim_grant;
pub mod session;
pub mod story;
pub mod tokens;
pub mod web;
