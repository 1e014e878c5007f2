//! Revocations that survive Redis. Postgres is the truth; Redis's tombstones, user
//! epochs and grant flags are a copy that can go back in time: a restart from an older
//! RDB snapshot, a Sentinel failover to a replica that had not yet received the last
//! writes, an `appendfsync everysec` that loses its last second, or a publication that
//! failed while Redis was unreachable. Taken as truth, such a Redis makes a revoked
//! credential valid again.
//!
//! - **The journal** (V9): every revocation (a token, a user's epoch, a grant) gets a
//!   number, gapless and in commit order, written by triggers in the revoking
//!   transaction, whatever code path revoked.
//! - **Redis's watermark** (`{prefix}rev:seq`): the number up to which Redis holds every
//!   revocation. It only moves forward contiguously ([`catch_up`] applies entries
//!   `cur+1..=to` and raises it in one script), and it lives in the same dataset as the
//!   copies it vouches for, so whatever rolls the copies back rolls it back with them.
//! - **The worker's watermark** ([`CacheGuard::known`]): the highest number this worker
//!   knows committed, from `LISTEN/NOTIFY` (sent by the journal trigger at commit) and a
//!   poll every [`POLL`] as a backstop ([`follow`]). On hearing of a revocation the
//!   worker first brings Redis up to it, then raises its own watermark: an ordinary
//!   revocation never makes checks cold.
//! - **The check**: every hot-path script returns Redis's watermark in the same round
//!   trip. When it is below the worker's, the check answers from Postgres
//!   ([`super::tokens`]), and a single catch-up replays the missing entries into Redis.
//!   When the journal no longer reaches back that far (pruned after
//!   [`JOURNAL_RETENTION_SECS`]) or the gap is huge, the credential copies are deleted
//!   instead: a cold cache is always right.
//!
//! **On Redis Cluster** each shard fails over on its own, and a promoted replica may
//! lack its old master's last writes while every other shard lost nothing. One global
//! watermark cannot vouch for copies on other shards, so the copies are split into
//! [`CLUSTER_PARTITIONS`](super::redis::CLUSTER_PARTITIONS) partitions (a token by its
//! hash, a user's epoch by the user, a grant flag by the grant; see
//! [`token_partition`], [`user_partition`], [`grant_partition`]), each under its own
//! hash tag with its own watermark (`{prefix}{tag}rev:seq`), in the same slot as the
//! copies it vouches for. A check reads the watermark of its key's partition; a
//! catch-up brings each partition up on its own (a partition behind is replayed or
//! flushed, the others are left alone); [`APPLY`] runs once per partition with every
//! key it writes passed in `KEYS`. A single server or Sentinel has one partition, named
//! as before (`{prefix}rev:seq`, `{prefix}tok:…`).
//!
//! The one window left is the time between a revocation's commit and this worker
//! hearing of it (milliseconds): a Redis that loses that revocation *and* is consulted
//! in that window is believed. Nothing else Redis does can bring a credential back.
//!
//! This module also holds the **negative cache**: token hashes Postgres did not know,
//! remembered for [`NEGATIVE_TTL`] so that a flood of one well-formed but unknown
//! bearer or cookie does not cost a Postgres query each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use shared::ids::TeamId;
use shared::regions::Secret;
use shared::token::TokenHash;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use super::StoreError;
use super::redis::Redis;
use super::tokens::{self, HOT_TTL_SECS};
use crate::clock::Clock;
use crate::store::pg::Pool;

/// The `NOTIFY` channel of the journal trigger (V9).
pub const CHANNEL: &str = "closedloop_revocations";
/// How often each worker reads the journal's counter and checks Redis's watermark even
/// when no notification came: a lost notification or a Redis that rolled back with no
/// traffic is noticed within this.
pub const POLL: Duration = Duration::from_secs(2);
/// How long journal entries are kept: longer than any credential copy lives in Redis
/// (every such key expires within a day, `tokens::HOT_TTL_SECS`), plus an hour. A
/// Redis missing an entry older than this holds no copy that contradicts it, since
/// every such copy was written before the revocation (later ones are read from
/// Postgres) and has expired since.
pub const JOURNAL_RETENTION_SECS: i64 = HOT_TTL_SECS + 3600;
/// How often a worker prunes the journal.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Entries read and applied per round trip.
const BATCH: i64 = 500;
/// Beyond this many missing entries, deleting the credential copies is cheaper than
/// replaying (and a Redis that lost that much, an empty one, holds few copies anyway).
pub const MAX_REPLAY: i64 = 20_000;
/// How long an unknown token hash is remembered. Short: it bounds how long a token
/// whose row somehow became visible late would be refused (see [`NegativeCache`]).
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// How many unknown hashes each of the negative cache's two generations holds.
pub const NEGATIVE_CAPACITY: usize = 32_768;

/// Catch-ups started because a check or the poll found Redis behind the worker's
/// watermark: a restart from an older snapshot, a failover to a lagging replica, a lost
/// publication. Ordinary revocations do not count (Redis is brought up to them before
/// the worker's watermark moves), so a steady rate means Redis keeps losing writes.
pub const CATCH_UPS: &str = "worker_revocation_catch_ups_total";

/// What a worker knows that Redis cannot be trusted to: the revocation watermark, and
/// the hashes Postgres did not know. One per worker process, shared by every clone of
/// its [`Redis`] handle.
#[derive(Debug)]
pub struct CacheGuard {
    /// The highest revocation number this worker knows committed. Redis's watermark
    /// below it means Redis lost revocations.
    known: AtomicI64,
    /// Set while a catch-up runs: one at a time per worker (single flight).
    catching_up: AtomicBool,
    /// Unknown token hashes, briefly.
    negative: Mutex<NegativeCache>,
    /// Personal tokens' owners, as seen in their entries.
    owners: Mutex<Owners>,
    /// The worker's clock, for the negative cache and the checks' notion of now.
    clock: Clock,
}

impl Default for CacheGuard {
    fn default() -> Self {
        Self::new(Clock::system())
    }
}

impl CacheGuard {
    /// A guard that knows no revocation yet, reading time from `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            known: AtomicI64::new(0),
            catching_up: AtomicBool::new(false),
            negative: Mutex::new(NegativeCache::new(NEGATIVE_TTL, NEGATIVE_CAPACITY)),
            owners: Mutex::new(Owners::new(OWNERS_CAPACITY)),
            clock,
        }
    }

    /// The highest revocation number this worker knows committed.
    pub fn known(&self) -> i64 {
        self.known.load(Ordering::Acquire)
    }

    /// Records that revocation `seq` committed (never lowers the watermark).
    pub fn raise(&self, seq: i64) {
        self.known.fetch_max(seq, Ordering::AcqRel);
    }

    /// Whether a Redis at watermark `redis_seq` lacks revocations this worker knows of.
    pub fn behind(&self, redis_seq: i64) -> bool {
        redis_seq < self.known()
    }

    /// Now, by the worker's clock.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    fn now_ms(&self) -> i64 {
        (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn negative(&self) -> std::sync::MutexGuard<'_, NegativeCache> {
        self.negative.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether Postgres said, within [`NEGATIVE_TTL`], that it does not know `hash`.
    pub fn known_unknown(&self, hash: &TokenHash) -> bool {
        let now = self.now_ms();
        self.negative().contains(hash, now)
    }

    /// Remembers that Postgres does not know `hash`.
    pub fn remember_unknown(&self, hash: &TokenHash) {
        let now = self.now_ms();
        self.negative().insert(hash, now);
    }

    /// Forgets `hash` (it was just minted here).
    pub fn forget_unknown(&self, hash: &TokenHash) {
        self.negative().forget(hash);
    }

    /// The workspace and user a personal token belongs to, if this worker has seen its
    /// entry recently. Never a reason to accept: only which epoch to read early.
    pub fn owner_of(&self, hash: &TokenHash) -> Option<(TeamId, Uuid)> {
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
    }

    /// Remembers a personal token's owner (a fact that never changes).
    pub fn remember_owner(&self, hash: &TokenHash, team_id: TeamId, user_id: Uuid) {
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, (team_id, user_id));
    }
}

/// How many token owners each of [`Owners`]' two generations holds.
pub const OWNERS_CAPACITY: usize = 65_536;

/// Personal tokens' owners (workspace and user), bounded: two generations of at most
/// `capacity` entries, the older dropped when the current one is full. Nothing expires
/// otherwise, since a token's owner never changes; an entry only saves a round trip.
#[derive(Debug)]
pub struct Owners {
    capacity: usize,
    current: HashMap<[u8; 32], (TeamId, Uuid)>,
    previous: HashMap<[u8; 32], (TeamId, Uuid)>,
}

impl Owners {
    /// An empty map holding up to `2 × capacity` owners.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// The owner of `hash`, if remembered.
    pub fn get(&self, hash: &TokenHash) -> Option<(TeamId, Uuid)> {
        self.current
            .get(&hash.0)
            .or_else(|| self.previous.get(&hash.0))
            .copied()
    }

    /// Remembers the owner of `hash`.
    pub fn insert(&mut self, hash: &TokenHash, owner: (TeamId, Uuid)) {
        if self.current.len() >= self.capacity {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(hash.0, owner);
    }

    /// How many owners it holds.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Token hashes that Postgres did not know, each for a short time; bounded.
///
/// It cannot hide a token minted later: a hash gets here only when someone presented
/// it and Postgres had no row for it. A token's secret is handed out only after its row
/// committed, so the only way to present a hash before its token exists is to guess a
/// 256-bit secret. Minting on this worker also forgets the hash, and entries live
/// [`NEGATIVE_TTL`] at most, so even a row that became visible late (it cannot, on the
/// primary) would be refused for seconds, not longer.
///
/// Two generations of at most `capacity` entries each: inserts go to the current one,
/// which becomes the previous one after `ttl` or when full, dropping the older. Memory
/// is bounded by `2 × capacity` hashes and no operation scans.
#[derive(Debug)]
pub struct NegativeCache {
    ttl_ms: i64,
    capacity: usize,
    /// Hash → expiry (Unix milliseconds).
    current: HashMap<[u8; 32], i64>,
    previous: HashMap<[u8; 32], i64>,
    rotated_at: i64,
}

impl NegativeCache {
    /// An empty cache remembering entries for `ttl`, `capacity` per generation.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl_ms: ttl.as_millis() as i64,
            capacity: capacity.max(1),
            current: HashMap::new(),
            previous: HashMap::new(),
            rotated_at: i64::MIN,
        }
    }

    fn rotate(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.rotated_at) >= self.ttl_ms
            || self.current.len() >= self.capacity
        {
            self.previous = std::mem::take(&mut self.current);
            self.rotated_at = now_ms;
        }
    }

    /// Whether `hash` is remembered and unexpired at `now_ms`.
    pub fn contains(&mut self, hash: &TokenHash, now_ms: i64) -> bool {
        self.rotate(now_ms);
        [&self.current, &self.previous]
            .iter()
            .any(|m| m.get(&hash.0).is_some_and(|&exp| exp > now_ms))
    }

    /// Remembers `hash` from `now_ms` for the cache's ttl.
    pub fn insert(&mut self, hash: &TokenHash, now_ms: i64) {
        self.rotate(now_ms);
        self.current
            .insert(hash.0, now_ms.saturating_add(self.ttl_ms));
    }

    /// Forgets `hash`.
    pub fn forget(&mut self, hash: &TokenHash) {
        self.current.remove(&hash.0);
        self.previous.remove(&hash.0);
    }

    /// How many hashes it holds (expired ones included until they rotate out).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of Redis's watermark (of the first partition: the only one on a single
/// server or under Sentinel).
pub fn watermark_key(redis: &Redis) -> String {
    partition_watermark_key(redis, 0)
}

/// The key of the watermark of credential partition `partition`.
pub fn partition_watermark_key(redis: &Redis, partition: u16) -> String {
    redis.partition_key(partition, "rev:seq")
}

/// The partition of a token's copies (its entry, tombstone, "last used" marker).
pub fn token_partition(redis: &Redis, hash: &TokenHash) -> u16 {
    redis.partition_of(&hash.0)
}

/// The partition of a user's revocation epoch.
pub fn user_partition(redis: &Redis, user_id: Uuid) -> u16 {
    redis.partition_of(user_id.as_bytes())
}

/// The partition of a SCIM OAuth grant's flag.
pub fn grant_partition(redis: &Redis, grant_id: Uuid) -> u16 {
    redis.partition_of(grant_id.as_bytes())
}

/// Every partition's watermark, in partition order (a missing one reads 0). One `GET`
/// per partition, all at once: a multi-slot `MGET` (which the crate splits per shard)
/// was seen to answer a wrong number of values after a failover, so each read stays
/// on its one slot.
pub async fn watermarks(redis: &Redis) -> Result<Vec<i64>, StoreError> {
    let reads = (0..redis.partitions()).map(|p| {
        let key = partition_watermark_key(redis, p);
        let mut conn = redis.conn();
        async move {
            let v: Option<i64> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            Ok::<i64, StoreError>(v.unwrap_or(0))
        }
    });
    futures_util::future::try_join_all(reads).await
}

/// What a catch-up does to bring Redis from its watermark to the worker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Redis has every revocation the worker knows of.
    UpToDate,
    /// Replay the journal's entries after Redis's watermark.
    Replay,
    /// Delete the credential copies (the journal no longer reaches back to Redis's
    /// watermark, or the gap is larger than [`MAX_REPLAY`]), then go on from the
    /// worker's watermark.
    Flush,
}

/// Decides how to bring a Redis at `redis_seq` up to `target`, given the first journal
/// entry kept after `redis_seq` (`None` when none is). Replaying is only right when the
/// journal holds the very next entry: a pruned entry could be the one Redis lost.
pub fn plan(redis_seq: i64, target: i64, first_kept: Option<i64>) -> Plan {
    if redis_seq >= target {
        Plan::UpToDate
    } else if target - redis_seq > MAX_REPLAY || first_kept != Some(redis_seq + 1) {
        Plan::Flush
    } else {
        Plan::Replay
    }
}

/// Applies journal entries to Redis and raises the watermark to the last of them, only
/// if Redis's watermark is still at least where the entries start (ARGV[2]): a Redis
/// that went back in time meanwhile is not marked as having what it lacks. Every effect
/// is idempotent and monotone (a tombstone, an epoch raised to at least a value), so
/// entries Redis already has may be applied again. Returns the watermark after.
///
/// Runs on one partition: KEYS[1] is its watermark, KEYS[2..] the key of each entry
/// (all of the partition, so of one slot on a cluster: no key is built in the script).
/// ARGV: from, to, ttl, then per entry `x` (a token or a grant: a tombstone) or `e`
/// followed by an epoch (a user's epoch, raised to at least it).
const APPLY: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local from = tonumber(ARGV[1])
local to = tonumber(ARGV[2])
if cur < from then return cur end
local ttl = ARGV[3]
local a = 4
for k = 2, #KEYS do
  if ARGV[a] == 'e' then
    local e = tonumber(redis.call('GET', KEYS[k]) or '-1')
    if tonumber(ARGV[a + 1]) > e then redis.call('SET', KEYS[k], ARGV[a + 1], 'EX', ttl) end
    a = a + 2
  else
    redis.call('SET', KEYS[k], 'revoked', 'EX', ttl)
    a = a + 1
  end
end
if to > cur then redis.call('SET', KEYS[1], to) return to end
return cur";

/// Sets the watermark to ARGV[2] if it is still ARGV[1] (after a flush).
const SET_IF: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2]) return 1
end
return 0";

/// Reads the journal's counter (the last committed revocation) and raises the worker's
/// watermark to it. Returns it.
pub async fn load_watermark(pool: &Pool, redis: &Redis) -> Result<i64, StoreError> {
    let seq = read_counter(pool).await?;
    redis.guard().raise(seq);
    Ok(seq)
}

/// The number of the last committed revocation.
async fn read_counter(pool: &Pool) -> Result<i64, StoreError> {
    Ok(pool
        .get()
        .await?
        .query_one("SELECT seq FROM revocation_counter", &[])
        .await?
        .get(0))
}

/// Starts a catch-up in the background unless one is running: the hot path never
/// waits for it (it answers from Postgres meanwhile).
pub fn spawn_catch_up(pool: &Pool, redis: &Redis) {
    let guard = redis.guard();
    if guard.catching_up.swap(true, Ordering::AcqRel) {
        return;
    }
    metrics::counter!(CATCH_UPS).increment(1);
    let (pool, redis) = (pool.clone(), redis.clone());
    tokio::spawn(async move {
        if let Err(e) = catch_up(&pool, &redis).await {
            tracing::warn!(error = %e, "could not bring Redis's revocations up to date; checks answer from Postgres until it works");
        }
        redis.guard().catching_up.store(false, Ordering::Release);
    });
}

/// Brings Redis's copies up to the worker's watermark: replays the journal entries
/// Redis lacks, or deletes the credential copies when they cannot be replayed. Safe to
/// run on several workers at once.
pub async fn catch_up(pool: &Pool, redis: &Redis) -> Result<(), StoreError> {
    bring_up(pool, redis, || redis.guard().known()).await
}

/// Brings Redis's copies up to `target()` (read again each round), partition by
/// partition: partitions at the same watermark (all of them, usually) share one read of
/// the journal; a partition behind the others (its shard failed over) is replayed or
/// flushed on its own.
async fn bring_up(pool: &Pool, redis: &Redis, target: impl Fn() -> i64) -> Result<(), StoreError> {
    // Bounded: each round applies a batch or flushes; a Redis that keeps going back in
    // time is left to the next trigger.
    for _ in 0..(MAX_REPLAY / BATCH + 4) {
        let target = target();
        let curs = watermarks(redis).await?;
        // The partitions behind, grouped by their watermark; the lowest first.
        let mut behind: std::collections::BTreeMap<i64, Vec<u16>> = Default::default();
        for (p, &cur) in (0u16..).zip(curs.iter()) {
            if cur < target {
                behind.entry(cur).or_default().push(p);
            }
        }
        let Some((cur, partitions)) = behind.pop_first() else {
            return Ok(());
        };
        let client = pool.get().await?;
        let rows = client
            .query(
                "SELECT seq, token_hash, team_id, user_id, epoch, grant_id
                   FROM revocation_journal WHERE seq > $1 AND seq <= $2
                  ORDER BY seq LIMIT $3",
                &[&cur, &target, &BATCH],
            )
            .await?;
        drop(client);
        match plan(cur, target, rows.first().map(|r| r.get(0))) {
            Plan::UpToDate => return Ok(()),
            Plan::Flush => {
                let mut deleted = 0;
                let mut moved = 0;
                for &p in &partitions {
                    deleted += flush_partition(redis, p).await?;
                    let set: i64 = redis::Script::new(SET_IF)
                        .key(partition_watermark_key(redis, p))
                        .arg(cur)
                        .arg(target)
                        .invoke_async(&mut redis.conn())
                        .await?;
                    moved += set;
                }
                tracing::warn!(
                    from = cur,
                    to = target,
                    deleted,
                    partitions = partitions.len(),
                    moved,
                    "Redis lacked revocations the journal no longer replays: deleted its credential copies"
                );
            }
            Plan::Replay => {
                let to: i64 = rows.last().map_or(cur, |r| r.get(0));
                let entries = rows.iter().map(entry_of).collect::<Result<Vec<_>, _>>()?;
                let after = apply_to(redis, &partitions, cur, to, &entries).await?;
                tracing::info!(
                    from = cur,
                    to,
                    after,
                    partitions = partitions.len(),
                    "replayed revocations into Redis"
                );
            }
        }
    }
    Ok(())
}

/// One revocation, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A token revoked.
    Token(TokenHash),
    /// A user's tokens must carry at least `epoch` from now on.
    Epoch {
        /// The workspace.
        team_id: shared::ids::TeamId,
        /// The user.
        user_id: Uuid,
        /// The epoch.
        epoch: i64,
    },
    /// A SCIM OAuth grant revoked.
    Grant(Uuid),
}

fn entry_of(row: &tokio_postgres::Row) -> Result<Entry, StoreError> {
    let hash: Option<Vec<u8>> = row.get(1);
    let team: Option<Uuid> = row.get(2);
    let user: Option<Uuid> = row.get(3);
    let epoch: Option<i64> = row.get(4);
    let grant: Option<Uuid> = row.get(5);
    match (hash, team, user, epoch, grant) {
        (Some(h), ..) => Ok(Entry::Token(TokenHash(h.try_into().map_err(|_| {
            StoreError::Corrupt("a journaled token hash is not 32 bytes".into())
        })?))),
        (None, Some(team), Some(user_id), Some(epoch), _) => Ok(Entry::Epoch {
            team_id: shared::ids::TeamId::from(team),
            user_id,
            epoch,
        }),
        (None, _, _, _, Some(grant)) => Ok(Entry::Grant(grant)),
        _ => Err(StoreError::Corrupt(
            "a revocation journal entry names nothing".into(),
        )),
    }
}

/// Applies `entries` (journal numbers `from + 1 ..= to`) to Redis and raises its
/// watermark to `to`, only if the watermark is still at least `from` (see [`APPLY`]).
/// Returns the watermark after: below `to` when Redis went back in time meanwhile. On a
/// cluster every partition is brought along (the lowest watermark after is returned).
pub async fn apply(
    redis: &Redis,
    from: i64,
    to: i64,
    entries: &[Entry],
) -> Result<i64, StoreError> {
    let all: Vec<u16> = (0..redis.partitions()).collect();
    apply_to(redis, &all, from, to, entries).await
}

/// The partition an entry's copy lives in.
fn partition_of_entry(redis: &Redis, entry: &Entry) -> u16 {
    match entry {
        Entry::Token(hash) => token_partition(redis, hash),
        Entry::Epoch { user_id, .. } => user_partition(redis, *user_id),
        Entry::Grant(grant) => grant_partition(redis, *grant),
    }
}

/// [`apply`] on `partitions` only: each gets the entries that belong to it (maybe none:
/// its watermark still moves to `to`), one script per partition, all at once. Returns
/// the lowest watermark after.
async fn apply_to(
    redis: &Redis,
    partitions: &[u16],
    from: i64,
    to: i64,
    entries: &[Entry],
) -> Result<i64, StoreError> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(APPLY));
    let runs = partitions.iter().map(|&p| {
        let mut invocation = SCRIPT.key(partition_watermark_key(redis, p));
        invocation.arg(from).arg(to).arg(HOT_TTL_SECS);
        for entry in entries.iter().filter(|e| partition_of_entry(redis, e) == p) {
            match entry {
                Entry::Token(hash) => invocation.key(tokens::hot_key(redis, hash)).arg("x"),
                Entry::Grant(grant) => invocation.key(tokens::grant_key(redis, *grant)).arg("x"),
                Entry::Epoch {
                    team_id,
                    user_id,
                    epoch,
                } => invocation
                    .key(tokens::epoch_key(redis, *team_id, *user_id))
                    .arg("e")
                    .arg(*epoch),
            };
        }
        let mut conn = redis.conn();
        async move {
            let after: i64 = invocation.invoke_async(&mut conn).await?;
            Ok::<i64, StoreError>(after)
        }
    });
    let afters = futures_util::future::try_join_all(runs).await?;
    Ok(afters.into_iter().min().unwrap_or(to))
}

/// Deletes every credential copy under the worker's prefix (token entries and
/// tombstones, user epochs, grant flags), in every partition: afterwards every check
/// reads Postgres and primes Redis from it. Returns how many keys went.
pub async fn flush_credentials(redis: &Redis) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for p in 0..redis.partitions() {
        deleted += flush_partition(redis, p).await?;
    }
    Ok(deleted)
}

/// Deletes the credential copies of one partition. On a cluster the partition is one
/// slot, so one master holds all of it: `SCAN` runs there (routed by the partition's
/// hash tag), matching only the partition's keys; a `SCAN` never blocks the server, and
/// a flush is rare (a shard lost revocations the journal no longer replays). Returns
/// how many keys went.
pub async fn flush_partition(redis: &Redis, partition: u16) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for kind in ["tok:", "uep:", "grant:"] {
        let pattern = format!("{}*", glob_escape(&redis.partition_key(partition, kind)));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis
                .query_partition_master(
                    partition,
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            if !keys.is_empty() {
                // One slot: one UNLINK.
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut redis.conn())
                    .await?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

/// Escapes the glob characters of a key prefix for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Deletes journal entries older than [`JOURNAL_RETENTION_SECS`] (by the database's
/// clock, which stamped them). Returns how many went.
pub async fn prune(pool: &Pool) -> Result<u64, StoreError> {
    Ok(pool
        .get()
        .await?
        .execute(
            "DELETE FROM revocation_journal WHERE at < now() - make_interval(secs => $1)",
            &[&(JOURNAL_RETENTION_SECS as f64)],
        )
        .await?)
}

/// Follows the journal until `stop` fires: listens for its notifications on a
/// dedicated connection (reconnecting when it breaks), polls its counter every
/// [`POLL`], raises the worker's watermark, catches Redis up when it is behind, and
/// prunes old entries. It takes the stores and the database URL (for its own
/// listening connection), not the worker's state, so the store depends on nothing above it.
pub async fn follow(
    pool: Pool,
    redis: Redis,
    database_url: Secret,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard: Option<Listening> = None;
    let mut pruned_at: Option<Instant> = None;
    loop {
        let note = async {
            match heard.as_mut() {
                Some(l) => l.heard.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => return,
            n = note => match n {
                Some(mut seq) => {
                    // Everything heard so far, in one go.
                    if let Some(l) = heard.as_mut() {
                        while let Ok(more) = l.heard.try_recv() {
                            seq = seq.max(more);
                        }
                    }
                    advance(&pool, &redis, seq).await;
                }
                None => {
                    tracing::warn!("lost the revocation notifications' connection; polling until it is back");
                    heard = None;
                }
            },
            _ = tick.tick() => {
                if heard.is_none() {
                    match listen(database_url.expose()).await {
                        Ok(rx) => heard = Some(rx),
                        Err(e) => tracing::debug!(error = %e, "could not listen for revocations"),
                    }
                }
                match read_counter(&pool).await {
                    Ok(seq) => {
                        advance(&pool, &redis, seq).await;
                        spawn_catch_up_if_behind(&pool, &redis).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "could not read the revocation counter"),
                }
                if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    pruned_at = Some(Instant::now());
                    if let Err(e) = prune(&pool).await {
                        tracing::debug!(error = %e, "could not prune the revocation journal");
                    }
                }
            }
        }
    }
}

/// Takes revocation `seq` (heard or polled) into account: first brings Redis up to it,
/// then raises the worker's watermark. In that order, checks keep trusting Redis
/// through an ordinary revocation (Redis has it before the worker asks for it); only a
/// Redis that cannot be brought up, or that goes back in time, makes checks cold.
async fn advance(pool: &Pool, redis: &Redis, seq: i64) {
    let guard = redis.guard();
    if seq <= guard.known() {
        return;
    }
    if let Err(e) = bring_up(pool, redis, || seq).await {
        tracing::debug!(error = %e, "could not bring Redis up to a revocation just heard");
    }
    guard.raise(seq);
}

/// Reads Redis's watermarks and starts a catch-up when one is behind: a Redis (or a
/// cluster shard) that went back in time is repaired within [`POLL`] even when no
/// request notices it.
async fn spawn_catch_up_if_behind(pool: &Pool, redis: &Redis) {
    match watermarks(redis).await {
        Ok(curs) if curs.iter().any(|&c| redis.guard().behind(c)) => spawn_catch_up(pool, redis),
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "could not read Redis's revocation watermarks"),
    }
}

/// A connection listening on [`CHANNEL`].
struct Listening {
    /// Keeps the connection open: it closes when its last client goes.
    _client: tokio_postgres::Client,
    /// The numbers heard; closes when the connection breaks.
    heard: mpsc::UnboundedReceiver<i64>,
}

/// Opens a connection that `LISTEN`s on [`CHANNEL`].
async fn listen(url: &str) -> anyhow::Result<Listening> {
    let super::pg::Target { mut config, tls } = super::pg::parse_url(url)?;
    config.application_name("closedloop-revocations");
    config.connect_timeout(Duration::from_secs(5));
    let (tx, rx) = mpsc::unbounded_channel();
    let client = match tls {
        None => {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(pump(conn, tx));
            client
        }
        Some(tls) => {
            let (client, conn) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await?;
            tokio::spawn(pump(conn, tx));
            client
        }
    };
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listening {
        _client: client,
        heard: rx,
    })
}

/// Drives a listening connection, forwarding each notification's number.
async fn pump<S, T>(mut conn: tokio_postgres::Connection<S, T>, tx: mpsc::UnboundedSender<i64>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(n)) => {
                if let Ok(seq) = n.payload().parse::<i64>()
                    && tx.send(seq).is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "the revocation notifications' connection broke");
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> TokenHash {
        TokenHash([n; 32])
    }

    #[test]
    fn a_redis_is_replayed_only_from_the_very_next_entry() {
        // Up to date, or ahead (a revocation published before this worker heard of it).
        assert_eq!(plan(7, 7, None), Plan::UpToDate);
        assert_eq!(plan(9, 7, None), Plan::UpToDate);
        // Behind, and the journal holds the next entry: replay.
        assert_eq!(plan(5, 7, Some(6)), Plan::Replay);
        assert_eq!(plan(0, 3, Some(1)), Plan::Replay);
        // The next entry was pruned (or nothing is kept): the lost revocation could be
        // the missing one, so the copies go.
        assert_eq!(plan(5, 7, Some(7)), Plan::Flush);
        assert_eq!(plan(5, 7, None), Plan::Flush);
        assert_eq!(plan(0, 3, Some(2)), Plan::Flush);
        // Too far behind to be worth replaying.
        assert_eq!(plan(0, MAX_REPLAY + 1, Some(1)), Plan::Flush);
        assert_eq!(plan(1, MAX_REPLAY + 1, Some(2)), Plan::Replay);
    }

    #[test]
    fn the_watermark_only_goes_up_and_behind_compares_with_it() {
        let guard = CacheGuard::default();
        assert!(!guard.behind(0), "a worker that knows nothing trusts Redis");
        guard.raise(5);
        guard.raise(3);
        assert_eq!(guard.known(), 5);
        assert!(guard.behind(4));
        assert!(!guard.behind(5));
        assert!(!guard.behind(6));
    }

    #[test]
    fn unknown_hashes_are_remembered_briefly() {
        let mut cache = NegativeCache::new(Duration::from_secs(5), 100);
        cache.insert(&h(1), 1_000);
        assert!(cache.contains(&h(1), 1_000));
        assert!(cache.contains(&h(1), 5_999));
        assert!(!cache.contains(&h(2), 2_000));
        assert!(!cache.contains(&h(1), 6_000), "expired after its ttl");
        // Forgotten at once when minted here.
        cache.insert(&h(3), 7_000);
        cache.forget(&h(3));
        assert!(!cache.contains(&h(3), 7_001));
    }

    #[test]
    fn the_negative_cache_is_bounded() {
        let mut cache = NegativeCache::new(Duration::from_secs(60), 10);
        for i in 0..=255u8 {
            cache.insert(&h(i), 1_000);
            assert!(cache.len() <= 20, "{}", cache.len());
        }
        // The latest entries are still there.
        assert!(cache.contains(&h(255), 1_001));
        // Old generations rotate out with time.
        assert!(!cache.contains(&h(255), 200_000));
        assert!(cache.is_empty() || cache.len() <= 20);
    }

    #[test]
    fn the_guard_reads_the_injected_clock() {
        let clock = Clock::adjustable();
        let guard = CacheGuard::new(clock.clone());
        guard.remember_unknown(&h(9));
        assert!(guard.known_unknown(&h(9)));
        assert!(clock.advance(NEGATIVE_TTL));
        assert!(
            !guard.known_unknown(&h(9)),
            "gone once the clock passed its ttl"
        );
        guard.remember_unknown(&h(9));
        guard.forget_unknown(&h(9));
        assert!(!guard.known_unknown(&h(9)));
    }

    #[test]
    fn token_owners_are_remembered_within_bounds() {
        let mut owners = Owners::new(4);
        let team = TeamId::from(Uuid::from_u128(7));
        for i in 0..=255u8 {
            owners.insert(&h(i), (team, Uuid::from_u128(u128::from(i))));
            assert!(owners.len() <= 8, "{}", owners.len());
        }
        assert_eq!(owners.get(&h(255)), Some((team, Uuid::from_u128(255))));
        assert_eq!(owners.get(&h(0)), None, "the oldest went");
        let guard = CacheGuard::default();
        assert_eq!(guard.owner_of(&h(1)), None);
        guard.remember_owner(&h(1), team, Uuid::from_u128(1));
        assert_eq!(guard.owner_of(&h(1)), Some((team, Uuid::from_u128(1))));
    }

    #[test]
    fn prefixes_are_escaped_for_scan() {
        assert_eq!(glob_escape("t:ab12:"), "t:ab12:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
