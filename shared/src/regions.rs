//! The region map, `regions.toml`: which hosts belong to which region, where the
//! region's workers listen, and where a worker finds its stores. The gateway and every
//! worker read the same file. Parsing is strict: an unknown key, a malformed URL, a host
//! claimed by two regions or a region without workers is refused with the line it is on.
//! A region may carry its SCIM OAuth server (`[regions.<id>.scim_oauth]`): one client,
//! its secret's source and the redirect URIs Okta may use.
//! A region may also name the service credential of its token introspection endpoint
//! (`[regions.<id>.introspection]`, RFC 7662): a client id and its secret's source.
//!
//! The `[gateway]` table configures the edge: its listeners (plain HTTP, TLS, admin),
//! the certificates it serves by SNI, its limits and timeouts, and how often it checks
//! the workers' health. Every key of it but `listen`/`tls_listen` has a default; see
//! [`GatewaySettings`]. A worker is listed as `"host:port"` or as
//! `{ addr = "host:port", admin = "host:port" }`; see [`Region::worker_admin`].
//!
//! # Layout
//!
//! - `map.rs`: the region/host model and the entry point, [`RegionMap::parse`]:
//!   [`RegionMap`], [`Region`], the region's OAuth clients ([`ScimOAuthSettings`],
//!   [`IntrospectionSettings`]), host routing ([`RegionMap::region_for_host`],
//!   [`strip_port`]).
//! - `gateway.rs`: the `[gateway]` table: [`GatewaySettings`], [`CertificateSettings`],
//!   [`GatewayLimits`], checked against the regions' hosts.
//! - `redirect.rs`: the SCIM OAuth server's redirect-URI patterns with Okta's
//!   `{appName}`: [`RedirectUriPattern`], [`RedirectUriProblem`].
//! - `secret.rs`: [`SecretSource`] (where a secret is read from) and [`Secret`] (a read
//!   secret whose `Debug` prints `[redacted]`).
//! - `raw.rs`: the serde mirror of the file, every value `toml::Spanned` so that a
//!   refusal can name its line; nothing outside this module sees it.
//! - `error.rs`: [`ConfigError`], every reason the file can be refused for, and
//!   [`RegionMapError`], that reason with its line.
//!
//! Each file carries the tests of what it holds.

mod error;
mod gateway;
mod map;
mod raw;
mod redirect;
mod secret;

#[cfg(test)]
mod fixtures;

pub use error::{ConfigError, RegionMapError};
pub use gateway::{CertificateSettings, GatewayLimits, GatewaySettings};
pub use map::{IntrospectionSettings, Region, RegionMap, ScimOAuthSettings, strip_port};
pub use redirect::{RedirectUriPattern, RedirectUriProblem};
pub use secret::{Secret, SecretSource};
