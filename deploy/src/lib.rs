//! Running the system on one machine: private Postgres and Redis servers (for the
//! local launcher and for tests that need a store they can stop), and the launcher.
//!
//! # Layout
//!
//! - [`stores`]: start, stop and restart a private PostgreSQL cluster or Redis server
//!   in a directory of ours, as the `postgres` user when we are root.

#![forbid(unsafe_code)]

pub mod stores;
