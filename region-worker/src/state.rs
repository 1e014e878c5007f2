//! The state every handler shares: configuration, the region's stores and the Okta
//! client with its caches.

use std::sync::Arc;

use crate::config::WorkerConfig;
use crate::okta::Okta;
use crate::store::pg::Pool;
use crate::store::redis::Redis;
use crate::store::roles::RoleCache;

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Inner {
    /// The worker's configuration.
    pub config: WorkerConfig,
    /// The region's Postgres.
    pub pg: Pool,
    /// The region's Redis.
    pub redis: Redis,
    /// The HTTPS client to Okta orgs and its discovery and key caches (per worker
    /// process: each replica fetches for itself).
    pub okta: Okta,
    /// Workspace roles, which never change once a workspace exists: read once per
    /// workspace instead of on every SCIM write.
    pub roles: RoleCache,
    /// Clients this worker turns away for repeated invalid credentials
    /// ([`crate::failed_auth`]).
    pub failed_auth: crate::failed_auth::Blocks,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(config: WorkerConfig, pg: Pool, redis: Redis) -> Self {
        let okta = Okta::new(&config);
        Self(Arc::new(Inner {
            config,
            pg,
            redis,
            okta,
            roles: RoleCache::default(),
            failed_auth: Default::default(),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
