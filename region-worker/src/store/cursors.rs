//! Keyset cursors for sequential paging. SCIM pages by `startIndex`, which in SQL is an
//! `OFFSET`: reading page 1,000 of 100,000 users would walk 99,900 rows first. When a
//! client pages in order (as Okta's import does), the page ending at index `i` leaves a
//! cursor "the row at index `i` has `seq` s", and the request for `startIndex = i + 1`
//! reads `seq > s` straight from the index.
//!
//! A cursor is only used for unfiltered lists, whose order changes only when rows are
//! deleted (new rows go to the end). Every deletion bumps the list's generation, which
//! invalidates all its cursors; a missing or stale cursor falls back to `OFFSET`.

use redis::AsyncCommands;
use shared::ids::TeamId;

use super::StoreError;
use super::redis::Redis;

/// How long a cursor is kept: long enough for an import to page through.
const CURSOR_TTL_SECS: u64 = 600;

fn gen_key(redis: &Redis, kind: &str, team_id: TeamId) -> String {
    redis.key(&format!("pgen:{kind}:{team_id}"))
}

fn cursor_key(redis: &Redis, kind: &str, team_id: TeamId, start_index: u64) -> String {
    redis.key(&format!("pcur:{kind}:{team_id}:{start_index}"))
}

/// A position found for a page, and the generation it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The list's generation when read.
    pub generation: i64,
    /// The `seq` of the row just before `startIndex`, if a valid cursor exists.
    pub after_seq: Option<i64>,
}

/// Reads the generation and the cursor for `start_index` in one round trip.
pub async fn find(
    redis: &Redis,
    kind: &str,
    team_id: TeamId,
    start_index: u64,
) -> Result<Position, StoreError> {
    let (generation, cursor): (Option<i64>, Option<String>) = redis::pipe()
        .get(gen_key(redis, kind, team_id))
        .get(cursor_key(redis, kind, team_id, start_index))
        .query_async(&mut redis.conn())
        .await?;
    let generation = generation.unwrap_or(0);
    let after_seq = cursor.and_then(|c| {
        let (g, seq) = c.split_once(':')?;
        (g.parse::<i64>().ok()? == generation).then(|| seq.parse().ok())?
    });
    Ok(Position {
        generation,
        after_seq,
    })
}

/// Leaves a cursor for the page that starts at `next_start_index`.
pub async fn leave(
    redis: &Redis,
    kind: &str,
    team_id: TeamId,
    next_start_index: u64,
    position: Position,
    last_seq: i64,
) -> Result<(), StoreError> {
    let _: () = redis
        .conn()
        .set_ex(
            cursor_key(redis, kind, team_id, next_start_index),
            format!("{}:{last_seq}", position.generation),
            CURSOR_TTL_SECS,
        )
        .await?;
    Ok(())
}

/// Invalidates every cursor of the list (call before committing a deletion).
pub async fn invalidate(redis: &Redis, kind: &str, team_id: TeamId) -> Result<(), StoreError> {
    let _: i64 = redis.conn().incr(gen_key(redis, kind, team_id), 1).await?;
    Ok(())
}
