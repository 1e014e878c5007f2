//! End-to-end tests: real workers and gateways over real Postgres and Redis, one
//! database and one Redis key space per test. One binary for the whole crate.

mod a11y;
mod activity;
mod browser;
mod faults;
mod gateway_e2e;
mod home_realm;
mod isolation;
mod mcp;
mod mixup;
mod oauth;
mod observability;
mod oidc;
mod openapi;
mod operator;
mod people;
mod rekey;
mod revocation;
mod routing;
mod scim;
mod scim_agreement;
mod security;
mod signin_binding;
mod stores;
mod story;
mod tokens;
mod tracing;
mod troubleshooting;
mod universal_logout;
mod workspace;
