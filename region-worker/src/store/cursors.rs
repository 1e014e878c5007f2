//! Positions for paging. SCIM pages by `startIndex`, which in SQL is an `OFFSET`:
//! reading page 1,000 of 100,000 users would walk 99,900 index entries first. Every
//! page served teaches where it ended: "the rows from index `p` on are exactly the rows
//! with `seq > q`". Those positions are kept per list in a Redis sorted set (score
//! `p`), and a request for `startIndex = s` starts from the nearest known position
//! `p ≤ s`, skipping only `s - p` rows. An import that pages in order skips none.
//!
//! Only unfiltered lists use positions: their order changes only when rows are
//! deleted (new rows go to the end). Every deletion bumps the list's generation and
//! drops its positions; a position of an older generation is never used.

use shared::ids::TeamId;

use super::StoreError;
use super::redis::Redis;

/// How long positions are kept after the last page that used them.
const POSITIONS_TTL_SECS: i64 = 600;

/// How many nearby positions to read (to step over any left by a stale generation).
const CANDIDATES: isize = 4;

// A list's generation and positions are read and written together (one pipeline): on
// Redis Cluster they share the workspace as hash tag; elsewhere the names are as before.
fn gen_key(redis: &Redis, kind: &str, team_id: TeamId) -> String {
    redis.key(&format!(
        "pgen:{kind}:{}",
        redis.tagged(&team_id.to_string())
    ))
}

fn positions_key(redis: &Redis, kind: &str, team_id: TeamId) -> String {
    redis.key(&format!(
        "ppos:{kind}:{}",
        redis.tagged(&team_id.to_string())
    ))
}

/// Where to start reading a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The list's generation when read.
    pub generation: i64,
    /// A known position at or before the requested index: rows from index `index`
    /// on are the rows with `seq > after_seq`.
    pub known: Option<Known>,
}

/// A known position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The 1-based list index the position is at.
    pub index: u64,
    /// The `seq` of the row just before it.
    pub after_seq: i64,
}

/// Reads the generation and the nearest known position at or before `start_index`,
/// in one round trip.
pub async fn find(
    redis: &Redis,
    kind: &str,
    team_id: TeamId,
    start_index: u64,
) -> Result<Start, StoreError> {
    let (generation, nearest): (Option<i64>, Vec<String>) = redis::pipe()
        .get(gen_key(redis, kind, team_id))
        .cmd("ZREVRANGEBYSCORE")
        .arg(positions_key(redis, kind, team_id))
        .arg(start_index)
        .arg("-inf")
        .arg("LIMIT")
        .arg(0)
        .arg(CANDIDATES)
        .query_async(&mut redis.conn())
        .await?;
    let generation = generation.unwrap_or(0);
    let known = nearest.iter().find_map(|member| {
        let mut parts = member.split(':');
        let index = parts.next()?.parse().ok()?;
        let member_generation: i64 = parts.next()?.parse().ok()?;
        let after_seq = parts.next()?.parse().ok()?;
        (member_generation == generation).then_some(Known { index, after_seq })
    });
    Ok(Start { generation, known })
}

/// Records that the rows from `index` on are the rows with `seq > after_seq`.
pub async fn remember(
    redis: &Redis,
    kind: &str,
    team_id: TeamId,
    generation: i64,
    index: u64,
    after_seq: i64,
) -> Result<(), StoreError> {
    let key = positions_key(redis, kind, team_id);
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(&key)
        .arg(index)
        .arg(format!("{index}:{generation}:{after_seq}"))
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(POSITIONS_TTL_SECS)
        .ignore()
        .query_async(&mut redis.conn())
        .await?;
    Ok(())
}

/// Invalidates every position of the list (call before committing a deletion).
pub async fn invalidate(redis: &Redis, kind: &str, team_id: TeamId) -> Result<(), StoreError> {
    let _: () = redis::pipe()
        .cmd("INCR")
        .arg(gen_key(redis, kind, team_id))
        .ignore()
        .cmd("DEL")
        .arg(positions_key(redis, kind, team_id))
        .ignore()
        .query_async(&mut redis.conn())
        .await?;
    Ok(())
}
