//! The worker's typed configuration: its region from `regions.toml`, with the store
//! URLs resolved from the environment or secret files the map names. Parsing works from
//! a lookup function rather than the process environment, so tests never mutate it.

use std::net::SocketAddr;
use std::time::Duration;

use shared::ids::RegionId;
use shared::regions::{Region, RegionMap, Secret, SecretSource};

/// Everything a worker needs to serve one region.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The region this worker serves; requests for other hosts are refused.
    pub region: Region,
    /// The development switch of the region map (plain-HTTP URLs, loopback Okta).
    pub development: bool,
    /// Public listener address (from the map, overridable on the command line).
    pub listen: SocketAddr,
    /// Admin listener address (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: SocketAddr,
    /// The region's Postgres URL.
    pub database_url: Secret,
    /// The region's Redis URL.
    pub redis_url: Secret,
    /// Prefix of every Redis key this worker writes: empty in production, unique per
    /// test so that tests share a Redis server without sharing a key space.
    pub redis_prefix: String,
    /// How long one store operation may take before the request answers `503`.
    pub store_timeout: Duration,
    /// Size of the Postgres connection pool.
    pub pg_pool_size: usize,
    /// The per-workspace SCIM rate limit.
    pub scim_rate_limit: RateLimit,
    /// The largest `count` a SCIM list returns (advertised as `filter.maxResults`).
    pub scim_max_results: u32,
}

/// A token-bucket rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second; 0 turns the limit off.
    pub per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
}

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The map has no region with this id.
    #[error("region {0} is not in the region map")]
    UnknownRegion(RegionId),
    /// A secret's environment variable is unset or empty.
    #[error("{what}: environment variable {name} is not set")]
    MissingEnv {
        /// Which setting.
        what: &'static str,
        /// The variable's name.
        name: String,
    },
    /// A secret file could not be read.
    #[error("{what}: cannot read {path}: {source}")]
    File {
        /// Which setting.
        what: &'static str,
        /// The file's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl WorkerConfig {
    /// Builds the configuration of `region` from the map, resolving secrets with `env`
    /// (the process environment in `main`, a map in tests).
    pub fn from_map(
        map: &RegionMap,
        region: &RegionId,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let r = map
            .region(region)
            .ok_or_else(|| ConfigError::UnknownRegion(region.clone()))?
            .clone();
        Ok(Self {
            development: map.development,
            listen: r.worker_listen,
            admin_listen: r.worker_admin_listen,
            database_url: resolve_secret("postgres", &r.postgres, env)?,
            redis_url: resolve_secret("redis", &r.redis, env)?,
            redis_prefix: String::new(),
            store_timeout: Duration::from_secs(2),
            pg_pool_size: 16,
            // Generous: Okta provisions in bursts; the limit stops runaway clients.
            scim_rate_limit: RateLimit {
                per_second: 2000,
                burst: 4000,
            },
            scim_max_results: 200,
            region: r,
        })
    }

    /// The region's id.
    pub fn region_id(&self) -> &RegionId {
        &self.region.id
    }
}

/// Reads a secret from where the map says it is.
pub fn resolve_secret(
    what: &'static str,
    source: &SecretSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    match source {
        SecretSource::Env(name) => env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Secret::new(v.trim()))
            .ok_or_else(|| ConfigError::MissingEnv {
                what,
                name: name.clone(),
            }),
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|v| Secret::new(v.trim_end()))
            .map_err(|source| ConfigError::File {
                what,
                path: path.clone(),
                source,
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"
development = true
[regions.us]
app_url = "http://app.closedloop.localhost"
api_url = "http://api.closedloop.localhost"
workers = ["127.0.0.1:1"]
postgres = { env = "US_PG" }
redis = { env = "US_REDIS" }
"#;

    #[test]
    fn resolves_secrets_from_the_given_environment() {
        let map = RegionMap::parse(MAP).unwrap();
        let us = RegionId::parse("us").unwrap();
        let env = |k: &str| match k {
            "US_PG" => Some("postgres://localhost/us".to_owned()),
            "US_REDIS" => Some("redis://localhost/0".to_owned()),
            _ => None,
        };
        let c = WorkerConfig::from_map(&map, &us, &env).unwrap();
        assert_eq!(c.database_url.expose(), "postgres://localhost/us");
        assert!(
            !format!("{c:?}").contains("postgres://"),
            "secrets must not print"
        );
        let e = WorkerConfig::from_map(&map, &us, &|_| None).unwrap_err();
        assert!(e.to_string().contains("US_PG"), "{e}");
        let eu = RegionId::parse("eu").unwrap();
        assert!(WorkerConfig::from_map(&map, &eu, &env).is_err());
    }
}
