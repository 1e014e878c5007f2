//! The state every handler shares: configuration and the region's stores.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::config::WorkerConfig;
use crate::store::redis::Redis;

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
}

impl AppState {
    /// Wraps the parts.
    pub fn new(config: WorkerConfig, pg: Pool, redis: Redis) -> Self {
        Self(Arc::new(Inner { config, pg, redis }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
