//! Redis, the token store: a multiplexed, self-reconnecting connection and the key
//! space of this worker (a prefix, empty in production, unique per test).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use shared::ids::RegionId;

use super::StoreError;
use super::pg::StampMismatch;

/// A handle on the region's Redis; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    /// Reconnects by itself after Redis restarts, so the worker recovers unaided.
    conn: ConnectionManager,
    /// Prepended to every key.
    prefix: Arc<str>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Redis {
    /// Connects to `url`. Fails when Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            prefix: prefix.into(),
        })
    }

    /// The full key for `name` in this worker's key space.
    pub fn key(&self, name: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + name.len());
        k.push_str(&self.prefix);
        k.push_str(name);
        k
    }

    /// A connection to run commands on (a clone of the multiplexed handle).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Writes the region stamp on first use and checks it on every start.
    pub async fn check_stamp(&self, region: &RegionId) -> anyhow::Result<()> {
        let key = self.key("region_stamp");
        let mut conn = self.conn();
        let _: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(region.as_str())
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let found: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if found != region.as_str() {
            return Err(StampMismatch {
                store: "Redis",
                expected: region.clone(),
                found,
            }
            .into());
        }
        Ok(())
    }
}
