//! Audit retention: a worker deletes the region's audit events older than the region's
//! `audit_retention_days` ([`crate::config::WorkerConfig::audit_retention`]), by the
//! worker's [`Clock`](crate::clock::Clock), so a test moves time instead of waiting.
//!
//! Why batches: a backlog (a region that just lowered its retention, or a worker that
//! was down for weeks) can be millions of rows. One `DELETE` of all of them would hold
//! row locks and a long transaction while SCIM and sign-ins keep writing events; small
//! batches ([`BATCH`] rows, oldest first, by the `at` index of migration V13) each
//! commit at once, with a pause between them, so requests never wait on the pruner.
//!
//! Why a lock: every replica runs the task, and two pruning at once would only fight
//! over the same rows. A session advisory lock, tried and never waited for, leaves the
//! work to whichever replica holds it; the others skip their turn.

use std::time::Duration;

use time::OffsetDateTime;

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit;
use crate::store::pg::Pool;

/// Rows deleted per batch.
pub const BATCH: i64 = 5_000;

/// The pause between two batches: other writers get the table (and the disk) between
/// them.
pub const PAUSE: Duration = Duration::from_millis(100);

/// The advisory lock key of the pruner (an arbitrary constant, shared by every
/// replica of the region: "audit" in ASCII).
pub const LOCK_KEY: i64 = 0x0061_7564_6974;

/// What one pruning run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// This worker held the lock and deleted this many events.
    Deleted(u64),
    /// Another worker is pruning; this one did nothing.
    Busy,
}

/// Deletes every event recorded before `cutoff`, `batch` rows at a time with `pause`
/// between batches, unless another worker holds the pruner's lock. Holds one pooled
/// connection for the run (the lock is its session's).
pub async fn prune(
    pool: &Pool,
    cutoff: OffsetDateTime,
    batch: i64,
    pause: Duration,
) -> Result<Pruned, StoreError> {
    let client = pool.get().await?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await?
        .get(0);
    if !locked {
        return Ok(Pruned::Busy);
    }
    let mut total = 0;
    let run = async {
        loop {
            let deleted = audit::prune_batch(&client, cutoff, batch).await?;
            total += deleted;
            if deleted < u64::try_from(batch).unwrap_or(0) {
                return Ok::<(), StoreError>(());
            }
            tokio::time::sleep(pause).await;
        }
    }
    .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    if unlocked.is_err() {
        // The lock is the session's: a connection that may still hold it must not go
        // back to the pool, or the next pruning run would find it taken for ever.
        client.detach();
    }
    run?;
    unlocked?;
    Ok(Pruned::Deleted(total))
}

/// Prunes every `audit_prune_every` until `stop` fires. A failed run is logged and
/// tried again at the next turn.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = state.config.audit_prune_every;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(every) => {}
        }
        let cutoff = state.config.clock.now() - state.config.audit_retention;
        match prune(&state.pg, cutoff, BATCH, PAUSE).await {
            Ok(Pruned::Deleted(0) | Pruned::Busy) => {}
            Ok(Pruned::Deleted(n)) => {
                tracing::info!(deleted = n, %cutoff, "pruned audit events past the retention");
            }
            Err(e) => tracing::warn!(error = %e, "could not prune audit events"),
        }
    }
}
