//! Postgres: the connection pool, the embedded SQL migrations and the region stamp.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use shared::ids::RegionId;
use tokio_postgres::NoTls;

use super::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Builds a pool for `url`. No connection is made yet: a Postgres that is down at
/// this moment only makes the first requests fail with `503`.
pub fn pool(url: &str, size: usize, timeout: Duration) -> anyhow::Result<Pool> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid Postgres URL: {e}"))?;
    config.connect_timeout(timeout);
    config.application_name("closedloop-region-worker");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()?)
}

/// A fingerprint of the migrations compiled into this binary (names and checksums),
/// so that a test template built by one binary is never mistaken for another's.
pub fn migrations_fingerprint() -> String {
    let runner = embedded::migrations::runner();
    runner
        .get_migrations()
        .iter()
        .map(|m| format!("{}:{:016x}", m.name(), m.checksum()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Applies every pending migration, holding an advisory lock so that replicas
/// starting together do not race.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    const LOCK: i64 = 0x636c_6b5f_6d69_6772; // "clk_migr"
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await?;
    let result = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await?;
    result?;
    Ok(())
}

/// The region stamp of a store did not match this worker's region.
#[derive(Debug, thiserror::Error)]
#[error(
    "{store} is stamped for region {found}, but this worker serves region {expected}: refusing to start (regions never share stores)"
)]
pub struct StampMismatch {
    /// Which store (`Postgres` or `Redis`).
    pub store: &'static str,
    /// The region this worker serves.
    pub expected: RegionId,
    /// The region found in the store.
    pub found: String,
}

/// Writes the region stamp on first use and checks it on every start.
pub async fn check_stamp(
    client: &tokio_postgres::Client,
    region: &RegionId,
) -> Result<(), anyhow::Error> {
    client
        .execute(
            "INSERT INTO region_stamp (region) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&region.as_str()],
        )
        .await?;
    let found: String = client
        .query_one("SELECT region FROM region_stamp", &[])
        .await?
        .get(0);
    if found != region.as_str() {
        return Err(StampMismatch {
            store: "Postgres",
            expected: region.clone(),
            found,
        }
        .into());
    }
    Ok(())
}

/// Takes a pooled connection, mapping pool failures to [`StoreError`].
pub async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    Ok(pool.get().await?)
}
