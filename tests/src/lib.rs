//! Test support for the whole system: the harness that starts real workers and
//! gateways on port 0 over per-test databases and Redis key spaces, and (as binaries)
//! the load generator.
//!
//! # Layout
//!
//! - [`harness`]: per-test stores, in-process workers and gateways, a whole two-region
//!   stack behind a gateway.

#![forbid(unsafe_code)]

pub mod harness;
