//! Protocol logic shared by the gateway and the region workers. Nothing in this crate
//! performs I/O: every function takes values and returns values, so it is unit- and
//! property-tested without a server.
//!
//! # Layout
//!
//! - [`ids`]: protocol identifiers as newtypes (`RegionId`, `TeamId`).
//! - [`jwt`]: JWT verification against a JWKS (ID tokens, Universal Logout JWTs).
//! - [`regions`]: the `regions.toml` model, parsed and validated with line numbers.
//! - [`scope`]: the SCIM OAuth scopes.
//! - [`telemetry`]: the process-wide Prometheus recorder.
//! - [`token`]: the opaque token format (`clk_{region}_{kind}_…`) and its hashing.
//! - [`scim`]: SCIM 2.0 schemas, filter parser and back ends, PATCH engine, error and
//!   list shapes.

#![forbid(unsafe_code)]

pub mod ids;
pub mod jwt;
pub mod regions;
pub mod scim;
pub mod scope;
pub mod telemetry;
pub mod token;
