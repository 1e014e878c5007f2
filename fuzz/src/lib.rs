//! What the fuzz targets check, one module per target. Each `check` takes the raw
//! bytes libFuzzer generates and panics only when an invariant of `shared` breaks, so
//! a crash is always a finding: rejected input is fine, a panic inside `shared` or a
//! failed assertion here is not.
//!
//! # Layout
//!
//! - [`samples`]: fixed resources the targets evaluate, patch and project.
//! - [`scim_filter`]: filter parsing, canonical text, SQL translation, evaluation.
//! - [`scim_patch`]: PATCH parsing and application, Group plans, canonicalisation.
//! - [`scim_projection`]: `attributes` / `excludedAttributes`.
//! - [`regions_toml`]: the region map.
//! - [`token_prefix`]: presented-token prefixes.
//! - [`json_body`]: SCIM request bodies (and key-set documents) as raw bytes.
//! - [`jwt`]: ID tokens and Universal Logout JWTs, as text and built from parts
//!   ([`jwt_keys`]: its fixed test keys; [`draw`]: structured choices from bytes).
//! - [`gateway_headers`]: the gateway's host routing and upstream header rewriting.
//!
//! The binaries in `fuzz_targets/` are one line each around these functions; the
//! integration test `tests/seeds.rs` replays `seeds/` through them on stable Rust.

#![forbid(unsafe_code)]

pub mod draw;
pub mod gateway_headers;
pub mod json_body;
pub mod jwt;
pub mod jwt_keys;
pub mod regions_toml;
pub mod samples;
pub mod scim_filter;
pub mod scim_patch;
pub mod scim_projection;
pub mod token_prefix;
