//! End-to-end tests: real workers and gateways over real Postgres and Redis, one
//! database and one Redis key space per test. One binary for the whole crate.

mod faults;
mod isolation;
mod oauth;
mod operator;
mod routing;
mod scim;
mod scim_agreement;
