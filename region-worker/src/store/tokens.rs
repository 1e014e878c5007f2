//! Durable token records and their hot copies. A token is stored only as its SHA-256:
//! a row in Postgres (the truth) and an entry in Redis (the hot path). A check reads
//! Redis first and falls back to Postgres when the entry is missing, so a flushed Redis
//! loses nothing; a revocation is written to both, leaving a tombstone in Redis that a
//! concurrent fallback cannot overwrite.
//!
//! Personal credentials (sessions, API and MCP tokens) carry their user's revocation
//! epoch: [`check_personal_at`] reads the token entry (and claims its "last used"
//! marker) and the user's current epoch, and raising the epoch
//! ([`publish_user_epoch`]) ends all of them at once. They are two commands: every key
//! a script touches must be passed to it, the epoch's key is known only from the entry,
//! and on Redis Cluster the two live in different partitions (see
//! [`super::revocations`]). The first check of a token on a worker reads them one after
//! the other; the worker then remembers the token's owner (which never changes), and
//! later checks send both at once: one round trip's wait.
//!
//! Tokens issued by a SCIM OAuth grant also name the grant. A grant has one revocation
//! flag (Postgres `scim_oauth_grants.revoked_at`, mirrored in Redis like the user
//! epoch), checked on every lookup, so revoking a grant stops all of its tokens with
//! one write.
//!
//! Redis is trusted only while it holds every revocation this worker knows committed:
//! each script also returns Redis's revocation watermark, and a Redis behind the
//! worker's (restarted from an older snapshot, failed over to a lagging replica) is
//! treated as cold for that check, which Postgres answers ([`truth`]) while a catch-up
//! replays what Redis lost (see [`super::revocations`]). A hash Postgres did not know is
//! remembered for a few seconds, so a flood of one unknown token does not reach
//! Postgres each time.

use std::sync::LazyLock;

use crate::store::pg::GenericClient;
use crate::store::pg::Pool;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shared::ids::TeamId;
use shared::scope::Scope;
use shared::token::{TokenHash, TokenKind};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::redis::Redis;
use super::revocations;

/// How long a hot entry lives in Redis at most before it is re-read from Postgres. Every
/// credential copy (token entry, tombstone, user epoch, grant flag) expires within it,
/// which bounds how long the revocation journal must be kept.
pub(crate) const HOT_TTL_SECS: i64 = 24 * 3600;
/// What a revoked token's key holds until its natural expiry.
const TOMBSTONE: &str = "revoked";

/// What a token grants, as stored. Kind and scopes are typed here and kept as their
/// codes in both stores (`text` and `text[]` columns, strings in the Redis entry), so
/// entries written before they were typed read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The workspace the token is bound to.
    pub team_id: TeamId,
    /// The token's kind (stored as its code: `scim`, `api`, …).
    pub kind: TokenKind,
    /// Granted scopes (SCIM tokens), empty otherwise.
    pub scopes: Vec<Scope>,
    /// The user the token belongs to, for personal tokens and sessions.
    pub user_id: Option<Uuid>,
    /// The user's revocation epoch at issue time.
    pub user_epoch: i64,
    /// Expiry as a Unix timestamp, if any.
    pub expires_at: Option<i64>,
}

impl TokenRecord {
    /// Whether the record has passed its expiry at `now` (Unix seconds).
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A stored kind code, parsed; a code we never write is corruption.
pub(super) fn parse_kind(code: &str) -> Result<TokenKind, StoreError> {
    TokenKind::parse(code).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored `scopes` array, parsed; a name we never write is corruption (never
/// silently dropped, nor widened).
pub(super) fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, StoreError> {
    names
        .iter()
        .map(|n| Scope::parse(n).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

/// Scopes as a `text[]` column holds them.
pub(super) fn scope_names(scopes: &[Scope]) -> Vec<&'static str> {
    scopes.iter().map(|s| s.as_str()).collect()
}

/// The record in columns 0 to 5 of a token row: `team_id, kind, scopes, user_id,
/// user_epoch, expires_at` (Unix seconds).
fn record_of(row: &tokio_postgres::Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        team_id: TeamId::from(row.get::<_, Uuid>(0)),
        kind: parse_kind(row.get(1))?,
        scopes: parse_scopes(&row.get::<_, Vec<String>>(2))?,
        user_id: row.get(3),
        user_epoch: row.get(4),
        expires_at: row.get(5),
    })
}

/// A token to record.
#[derive(Debug)]
pub struct NewTokenRecord<'a> {
    /// The hash of the minted secret.
    pub hash: TokenHash,
    /// What it grants.
    pub record: TokenRecord,
    /// Optional name given by its owner.
    pub name: Option<&'a str>,
    /// Who issued it (`operator`, `oauth:<grant>`, `user:<id>`), for the audit trail.
    pub created_by: &'a str,
}

/// What a token's Redis entry holds: the record and, for a token issued by a SCIM
/// OAuth grant, the grant. Entries written before grants existed have no `grant_id`
/// and read as `None`.
#[derive(Serialize, Deserialize)]
struct HotRecord {
    #[serde(flatten)]
    record: TokenRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant_id: Option<Uuid>,
}

/// The key of a token's entry or tombstone, in the token's partition.
pub(crate) fn hot_key(redis: &Redis, hash: &TokenHash) -> String {
    redis.partition_key(
        revocations::token_partition(redis, hash),
        &format!("tok:{}", hash.to_hex()),
    )
}

fn ttl_for(record: &TokenRecord, now: i64) -> i64 {
    record
        .expires_at
        .map_or(HOT_TTL_SECS, |e| (e - now).clamp(1, HOT_TTL_SECS))
}

/// Records a new token in Postgres, then primes Redis (a failure to prime is harmless:
/// the first check falls back to Postgres).
pub async fn insert(
    pool: &Pool,
    redis: &Redis,
    new: &NewTokenRecord<'_>,
) -> Result<(), StoreError> {
    let client = pool.get().await?;
    insert_in(&client, new, None).await?;
    prime(redis, new, None).await;
    Ok(())
}

/// Records a new token with `client` (a transaction, so that it commits with what
/// issued it), naming the SCIM OAuth grant that issued it if any. Call [`prime`] after
/// the commit.
pub async fn insert_in(
    client: &impl GenericClient,
    new: &NewTokenRecord<'_>,
    grant_id: Option<Uuid>,
) -> Result<(), StoreError> {
    let r = &new.record;
    let scopes = scope_names(&r.scopes);
    let expires = r
        .expires_at
        .map(OffsetDateTime::from_unix_timestamp)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    client
        .execute(
            "INSERT INTO tokens (hash, team_id, kind, scopes, user_id, user_epoch, name, created_by, expires_at, grant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &new.hash.0.as_slice(),
                &r.team_id.as_uuid(),
                &r.kind.code(),
                &scopes,
                &r.user_id,
                &r.user_epoch,
                &new.name,
                &new.created_by,
                &expires,
                &grant_id,
            ],
        )
        .await?;
    Ok(())
}

/// Primes the hot copy of a token recorded with [`insert_in`]. Best effort: a failure
/// is logged, and the first check falls back to Postgres. The hash leaves the negative
/// cache, should it be there.
pub async fn prime(redis: &Redis, new: &NewTokenRecord<'_>, grant_id: Option<Uuid>) {
    redis.guard().forget_unknown(&new.hash);
    let now = redis.guard().now().unix_timestamp();
    let hot = HotRecord {
        record: new.record.clone(),
        grant_id,
    };
    let json = match serde_json::to_string(&hot) {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(error = %e, "could not encode a token record for Redis");
            return;
        }
    };
    let prime: Result<(), _> = redis
        .conn()
        .set_ex(
            hot_key(redis, &new.hash),
            json,
            ttl_for(&new.record, now) as u64,
        )
        .await;
    if let Err(e) = prime {
        tracing::warn!(error = %e, "could not prime the token in Redis; checks will fall back to Postgres");
    }
}

/// Looks a presented token up: Redis first, Postgres when Redis lacks it or is behind
/// on revocations. Returns the record of a live token (not revoked, not expired, its
/// grant live), `None` otherwise.
pub async fn lookup(
    pool: &Pool,
    redis: &Redis,
    hash: &TokenHash,
    kind: TokenKind,
) -> Result<Option<TokenRecord>, StoreError> {
    let guard = redis.guard();
    if guard.known_unknown(hash) {
        return Ok(None);
    }
    let now = guard.now().unix_timestamp();
    let key = hot_key(redis, hash);
    // The entry and Redis's revocation watermark in one round trip (MGET costs Redis
    // what a GET does; a script would cost a third more). Both keys are of the token's
    // partition: one slot on a cluster.
    let (hot, rev): (Option<String>, Option<i64>) = redis::cmd("MGET")
        .arg(&key)
        .arg(revocations::partition_watermark_key(
            redis,
            revocations::token_partition(redis, hash),
        ))
        .query_async(&mut redis.conn())
        .await?;
    if guard.behind(rev.unwrap_or(0)) {
        revocations::spawn_catch_up(pool, redis);
        return Ok(truth(pool, redis, hash, now)
            .await?
            .and_then(|(record, _)| (record.kind == kind).then_some(record)));
    }
    let HotRecord { record, grant_id } = match hot.as_deref() {
        Some(TOMBSTONE) => return Ok(None),
        Some(json) => serde_json::from_str::<HotRecord>(json)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => {
            if !crate::failed_auth::store_allowed() {
                return Ok(None);
            }
            let client = pool.get().await?;
            let row = client
                .query_opt(
                    "SELECT team_id, kind, scopes, user_id, user_epoch,
                            extract(epoch FROM expires_at)::bigint, revoked_at IS NOT NULL,
                            grant_id
                       FROM tokens WHERE hash = $1",
                    &[&hash.0.as_slice()],
                )
                .await?;
            let Some(row) = row else {
                guard.remember_unknown(hash);
                return Ok(None);
            };
            let revoked: bool = row.get(6);
            if revoked {
                // Remembered in Redis like any revocation (SET NX: never over a newer
                // entry), so the next check of it costs no Postgres query.
                let _: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(TOMBSTONE)
                    .arg("EX")
                    .arg(HOT_TTL_SECS)
                    .arg("NX")
                    .query_async(&mut redis.conn())
                    .await?;
                return Ok(None);
            }
            let hot = HotRecord {
                record: record_of(&row)?,
                grant_id: row.get(7),
            };
            // SET NX: a tombstone written by a concurrent revocation wins.
            let json =
                serde_json::to_string(&hot).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let _: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("EX")
                .arg(ttl_for(&hot.record, now))
                .arg("NX")
                .query_async(&mut redis.conn())
                .await?;
            hot
        }
    };
    if record.kind != kind || record.expired_at(now) {
        return Ok(None);
    }
    if let Some(grant_id) = grant_id
        && !grant_live(pool, redis, grant_id).await?
    {
        return Ok(None);
    }
    Ok(Some(record))
}

/// What Postgres alone says of a token at `now` (Unix seconds): its record and grant
/// when it is live (not revoked, not expired, issued under its user's current epoch,
/// its grant not revoked), `None` otherwise. The answer of a check that cannot trust
/// Redis; one query, and nothing is written to Redis (the catch-up repairs it). A hash
/// Postgres does not know goes to the negative cache.
pub async fn truth(
    pool: &Pool,
    redis: &Redis,
    hash: &TokenHash,
    now: i64,
) -> Result<Option<(TokenRecord, Option<Uuid>)>, StoreError> {
    if !crate::failed_auth::store_allowed() {
        return Ok(None);
    }
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT t.team_id, t.kind, t.scopes, t.user_id, t.user_epoch,
                    extract(epoch FROM t.expires_at)::bigint,
                    t.revoked_at IS NULL
                      AND (t.user_id IS NULL OR u.token_epoch <= t.user_epoch)
                      AND (t.grant_id IS NULL OR g.revoked_at IS NULL AND g.id IS NOT NULL),
                    t.grant_id
               FROM tokens t
               LEFT JOIN users u ON u.team_id = t.team_id AND u.id = t.user_id
               LEFT JOIN scim_oauth_grants g ON g.id = t.grant_id
              WHERE t.hash = $1",
            &[&hash.0.as_slice()],
        )
        .await?;
    let Some(row) = row else {
        redis.guard().remember_unknown(hash);
        return Ok(None);
    };
    // NULL (a personal token whose user is gone) is not live.
    if row.get::<_, Option<bool>>(6) != Some(true) {
        return Ok(None);
    }
    let record = record_of(&row)?;
    if record.expired_at(now) {
        return Ok(None);
    }
    Ok(Some((record, row.get(7))))
}

/// The key of a grant's flag, in the grant's partition.
pub(crate) fn grant_key(redis: &Redis, grant_id: Uuid) -> String {
    redis.partition_key(
        revocations::grant_partition(redis, grant_id),
        &format!("grant:{grant_id}"),
    )
}

fn grant_used_key(redis: &Redis, grant_id: Uuid) -> String {
    redis.partition_key(
        revocations::grant_partition(redis, grant_id),
        &format!("grant_used:{grant_id}"),
    )
}

/// What a grant's Redis flag holds while the grant is live.
const GRANT_LIVE: &str = "live";
/// How often, at most, a grant's `last_used_at` is written: once a minute is precise
/// enough for "last used" and keeps SCIM traffic from writing Postgres per request.
const GRANT_USE_RESOLUTION_SECS: i64 = 60;

/// Reads a grant's flag and, when the grant is live and its use was not recorded in the
/// last minute, claims the right to record it: one round trip on the hot path.
/// Returns `{state, watermark}`: state -1 when Redis lacks the flag, 0 when revoked, 1
/// live, 2 live and to record; Redis's revocation watermark. KEYS: the flag, the "used"
/// marker and the watermark, all of the grant's partition.
const CHECK_GRANT: &str = r"
local rev = tonumber(redis.call('GET', KEYS[3]) or '0')
local v = redis.call('GET', KEYS[1])
if not v then return {-1, rev} end
if v ~= ARGV[1] then return {0, rev} end
if redis.call('SET', KEYS[2], '1', 'EX', ARGV[2], 'NX') then return {2, rev} end
return {1, rev}";

/// Whether the SCIM OAuth grant `grant_id` is live (not revoked): Redis first,
/// Postgres when Redis lacks the flag or is behind on revocations. Records the grant's
/// last use, to the minute.
pub async fn grant_live(pool: &Pool, redis: &Redis, grant_id: Uuid) -> Result<bool, StoreError> {
    static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CHECK_GRANT));
    let key = grant_key(redis, grant_id);
    let (mut state, rev): (i64, i64) = SCRIPT
        .key(&key)
        .key(grant_used_key(redis, grant_id))
        .key(revocations::partition_watermark_key(
            redis,
            revocations::grant_partition(redis, grant_id),
        ))
        .arg(GRANT_LIVE)
        .arg(GRANT_USE_RESOLUTION_SECS)
        .invoke_async(&mut redis.conn())
        .await?;
    if redis.guard().behind(rev) {
        revocations::spawn_catch_up(pool, redis);
        // Redis's flag may be a live one from before a revocation it lost: Postgres
        // answers (and Redis is not primed from here; the catch-up repairs it).
        let client = pool.get().await?;
        let row = client
            .query_opt(
                "SELECT revoked_at IS NULL FROM scim_oauth_grants WHERE id = $1",
                &[&grant_id],
            )
            .await?;
        if !row.is_some_and(|r| r.get::<_, bool>(0)) {
            return Ok(false);
        }
        state = state.max(1);
    }
    let live = match state {
        0 => return Ok(false),
        1 => return Ok(true),
        2 => true,
        _ => {
            let client = pool.get().await?;
            let row = client
                .query_opt(
                    "SELECT revoked_at IS NULL FROM scim_oauth_grants WHERE id = $1",
                    &[&grant_id],
                )
                .await?;
            // A grant that no longer exists (its workspace was deleted) is revoked.
            let live = row.is_some_and(|r| r.get::<_, bool>(0));
            // SET NX: a revocation published meanwhile wins.
            let _: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(if live { GRANT_LIVE } else { TOMBSTONE })
                .arg("EX")
                .arg(HOT_TTL_SECS)
                .arg("NX")
                .query_async(&mut redis.conn())
                .await?;
            live
        }
    };
    if live {
        let touched = async {
            pool.get()
                .await?
                .execute(
                    "UPDATE scim_oauth_grants SET last_used_at = now() WHERE id = $1",
                    &[&grant_id],
                )
                .await?;
            Ok::<(), StoreError>(())
        };
        if let Err(e) = touched.await {
            tracing::warn!(error = %e, %grant_id, "could not record a grant's last use");
        }
    }
    Ok(live)
}

/// Publishes the revocation of a grant (already committed in Postgres) to Redis, so
/// that the very next check of any of its tokens refuses them. Like every hot entry it
/// expires after a day; a check after that re-reads Postgres, which keeps the truth.
pub async fn publish_grant_revoked(redis: &Redis, grant_id: Uuid) -> Result<(), StoreError> {
    let _: () = redis
        .conn()
        .set_ex(grant_key(redis, grant_id), TOMBSTONE, HOT_TTL_SECS as u64)
        .await?;
    Ok(())
}

/// Publishes the revocation of one token to Redis (a tombstone that a concurrent
/// Postgres fallback cannot overwrite). Callers revoking in a transaction call it
/// before the commit, so that no check accepts the token once the revocation returns.
pub async fn publish_revoked(redis: &Redis, hash: &TokenHash) -> Result<(), StoreError> {
    let _: () = redis
        .conn()
        .set_ex(hot_key(redis, hash), TOMBSTONE, HOT_TTL_SECS as u64)
        .await?;
    Ok(())
}

/// Revokes one token in both stores.
pub async fn revoke(pool: &Pool, redis: &Redis, hash: &TokenHash) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE tokens SET revoked_at = now() WHERE hash = $1 AND revoked_at IS NULL",
            &[&hash.0.as_slice()],
        )
        .await?;
    let _: () = redis
        .conn()
        .set_ex(hot_key(redis, hash), TOMBSTONE, HOT_TTL_SECS as u64)
        .await?;
    Ok(n > 0)
}

/// The key of a user's revocation epoch, in the user's partition.
pub(crate) fn epoch_key(redis: &Redis, team_id: TeamId, user_id: Uuid) -> String {
    redis.partition_key(
        revocations::user_partition(redis, user_id),
        &format!("uep:{team_id}:{user_id}"),
    )
}

/// Raises a Redis epoch key to `value` unless it already holds more: concurrent
/// revocations may arrive in any order, and the epoch must never go down.
const RAISE_EPOCH: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1";

/// The user's current revocation epoch: Redis first, Postgres when Redis lacks it or is
/// behind on revocations (the epoch and its partition's watermark are read in one
/// round trip; a Redis behind is not primed from here, the catch-up repairs it).
pub async fn user_epoch(
    pool: &Pool,
    redis: &Redis,
    team_id: TeamId,
    user_id: Uuid,
) -> Result<Option<i64>, StoreError> {
    let hot = read_user_epoch(redis, team_id, user_id).await?;
    user_epoch_from(pool, redis, team_id, user_id, hot).await
}

/// What Redis holds of a user's epoch: the epoch (if any) and the watermark of its
/// partition, in one round trip (one slot).
async fn read_user_epoch(
    redis: &Redis,
    team_id: TeamId,
    user_id: Uuid,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    Ok(redis::cmd("MGET")
        .arg(epoch_key(redis, team_id, user_id))
        .arg(revocations::partition_watermark_key(
            redis,
            revocations::user_partition(redis, user_id),
        ))
        .query_async(&mut redis.conn())
        .await?)
}

/// [`user_epoch`] given what [`read_user_epoch`] read.
async fn user_epoch_from(
    pool: &Pool,
    redis: &Redis,
    team_id: TeamId,
    user_id: Uuid,
    (hot, rev): (Option<i64>, Option<i64>),
) -> Result<Option<i64>, StoreError> {
    let key = epoch_key(redis, team_id, user_id);
    let behind = redis.guard().behind(rev.unwrap_or(0));
    if behind {
        revocations::spawn_catch_up(pool, redis);
    } else if let Some(epoch) = hot {
        return Ok(Some(epoch));
    }
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT token_epoch FROM users WHERE team_id = $1 AND id = $2",
            &[&team_id.as_uuid(), &user_id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let epoch: i64 = row.get(0);
    if behind {
        return Ok(Some(epoch));
    }
    let _: i64 = redis::Script::new(RAISE_EPOCH)
        .key(&key)
        .arg(epoch)
        .arg(HOT_TTL_SECS)
        .invoke_async(&mut redis.conn())
        .await?;
    Ok(Some(epoch))
}

/// Publishes a user's new revocation epoch (already committed in Postgres) to Redis,
/// so that the very next check of any of the user's tokens refuses them.
pub async fn publish_user_epoch(
    redis: &Redis,
    team_id: TeamId,
    user_id: Uuid,
    epoch: i64,
) -> Result<(), StoreError> {
    let _: i64 = redis::Script::new(RAISE_EPOCH)
        .key(epoch_key(redis, team_id, user_id))
        .arg(epoch)
        .arg(HOT_TTL_SECS)
        .invoke_async(&mut redis.conn())
        .await?;
    Ok(())
}

/// Checks a personal credential (session, API or MCP token): live, of the right kind,
/// and issued under the user's current revocation epoch.
pub async fn check_personal(
    pool: &Pool,
    redis: &Redis,
    hash: &TokenHash,
    kind: TokenKind,
) -> Result<Option<TokenRecord>, StoreError> {
    let now = redis.guard().now().unix_timestamp();
    Ok(check_personal_at(pool, redis, hash, kind, now, None)
        .await?
        .map(|c| c.record))
}

/// What [`check_personal_at`] found: a live personal credential.
#[derive(Debug, Clone)]
pub struct PersonalCheck {
    /// The credential's record.
    pub record: TokenRecord,
    /// Whether this check claimed the right to record the credential's last use (at
    /// most once per the `touch` interval given to the check).
    pub touched: bool,
}

/// Reads a token's hot entry and Redis's revocation watermark, and optionally claims the
/// token's "last used" marker: one round trip. KEYS: the entry, the watermark of the
/// token's partition, and (with a touch interval) the marker; all of one partition.
/// The user's epoch is read next ([`user_epoch`]): its key is known only from the
/// entry, and a script may touch only the keys it is given.
///
/// Returns `{state, entry, touched, watermark}`: state -1 when Redis lacks the entry, 0
/// for a tombstone, 1 with the entry.
const CHECK_PERSONAL: &str = r"
local rev = tonumber(redis.call('GET', KEYS[2]) or '0')
local v = redis.call('GET', KEYS[1])
if not v then return {-1, false, 0, rev} end
if v == ARGV[1] then return {0, false, 0, rev} end
local touched = 0
if KEYS[3] and redis.call('SET', KEYS[3], '1', 'EX', ARGV[2], 'NX') then touched = 1 end
return {1, v, touched, rev}";

fn used_key(redis: &Redis, hash: &TokenHash) -> String {
    redis.partition_key(
        revocations::token_partition(redis, hash),
        &format!("tok_used:{}", hash.to_hex()),
    )
}

/// Checks a personal credential at `now` (Unix seconds, the caller's clock): live, of
/// `kind`, unexpired, and issued under the user's current revocation epoch. A check
/// never misses a revocation: a tombstone or a raised epoch in Redis refuses at once;
/// when Redis lacks the token entry or the epoch, Postgres answers (and Redis is
/// primed again); and when Redis is behind on revocations (its watermark, read in the
/// same round trip, is below this worker's), Postgres answers alone. With `touch`
/// (seconds), a live credential's last use is claimed in the same round trip at most
/// once per interval: [`PersonalCheck::touched`] tells the caller to record it.
pub async fn check_personal_at(
    pool: &Pool,
    redis: &Redis,
    hash: &TokenHash,
    kind: TokenKind,
    now: i64,
    touch: Option<i64>,
) -> Result<Option<PersonalCheck>, StoreError> {
    // Hashed once per process: the script's body is constant.
    static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CHECK_PERSONAL));
    if redis.guard().known_unknown(hash) {
        return Ok(None);
    }
    let mut invocation = SCRIPT.key(hot_key(redis, hash));
    invocation.key(revocations::partition_watermark_key(
        redis,
        revocations::token_partition(redis, hash),
    ));
    if touch.is_some() {
        invocation.key(used_key(redis, hash));
    }
    invocation.arg(TOMBSTONE).arg(touch.unwrap_or(1).max(1));
    // The token's owner never changes: once this worker has seen it, the user's epoch
    // is read at the same time as the entry (two commands, one round trip's wait).
    let owner = redis.guard().owner_of(hash);
    let mut conn = redis.conn();
    let (checked, prefetched) = match owner {
        Some((team_id, user_id)) => {
            let (checked, epoch) = tokio::join!(
                invocation.invoke_async::<(i64, Option<String>, i64, i64)>(&mut conn),
                read_user_epoch(redis, team_id, user_id)
            );
            (checked?, Some((team_id, user_id, epoch?)))
        }
        None => (invocation.invoke_async(&mut conn).await?, None),
    };
    let (state, entry, touched, rev): (i64, Option<String>, i64, i64) = checked;
    if redis.guard().behind(rev) {
        revocations::spawn_catch_up(pool, redis);
        return Ok(match truth(pool, redis, hash, now).await? {
            Some((record, None)) if record.kind == kind && record.user_id.is_some() => {
                Some(PersonalCheck {
                    record,
                    touched: touched == 1,
                })
            }
            _ => None,
        });
    }
    let record = match (state, entry) {
        (0, _) => return Ok(None),
        (1, Some(json)) => {
            let hot: HotRecord =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if hot.grant_id.is_some() {
                // Grant tokens are never personal credentials.
                return Ok(None);
            }
            hot.record
        }
        // No hot entry (a flushed or restarted Redis): the path that reads Postgres and
        // primes Redis again.
        _ => match lookup(pool, redis, hash, kind).await? {
            Some(record) => record,
            None => return Ok(None),
        },
    };
    if record.kind != kind || record.expired_at(now) {
        return Ok(None);
    }
    let Some(user_id) = record.user_id else {
        return Ok(None);
    };
    let epoch = match prefetched {
        Some((team_id, prefetched_user, hot))
            if team_id == record.team_id && prefetched_user == user_id =>
        {
            user_epoch_from(pool, redis, team_id, user_id, hot).await?
        }
        _ => {
            redis.guard().remember_owner(hash, record.team_id, user_id);
            user_epoch(pool, redis, record.team_id, user_id).await?
        }
    };
    match epoch {
        Some(current) if current <= record.user_epoch => Ok(Some(PersonalCheck {
            record,
            touched: touched == 1,
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hot entry as the code before typed kinds and scopes wrote it (strings).
    const OLD_ENTRY: &str = r#"{"team_id":"7f9c1f4e-3c55-4a70-9d0e-2f8f6b1f0a11","kind":"scim","scopes":["scim.read","entitlements.read"],"user_id":null,"user_epoch":0,"expires_at":1700000000,"grant_id":"0c7ed1e2-52d4-4c4a-8a39-7a3c8f1d2b33"}"#;

    #[test]
    fn hot_entries_keep_their_json_format() {
        let hot: HotRecord = serde_json::from_str(OLD_ENTRY).unwrap();
        assert_eq!(hot.record.kind, TokenKind::Scim);
        assert_eq!(
            hot.record.scopes,
            [Scope::ScimRead, Scope::EntitlementsRead]
        );
        assert!(hot.record.has_scope(Scope::ScimRead));
        assert!(!hot.record.has_scope(Scope::ScimWrite));
        assert!(hot.grant_id.is_some());
        // Written back, byte for byte what the old code wrote.
        assert_eq!(serde_json::to_string(&hot).unwrap(), OLD_ENTRY);
    }

    #[test]
    fn a_session_entry_without_grant_reads_back() {
        let old = r#"{"team_id":"7f9c1f4e-3c55-4a70-9d0e-2f8f6b1f0a11","kind":"ses","scopes":[],"user_id":"0c7ed1e2-52d4-4c4a-8a39-7a3c8f1d2b33","user_epoch":3,"expires_at":null}"#;
        let hot: HotRecord = serde_json::from_str(old).unwrap();
        assert_eq!(hot.record.kind, TokenKind::Session);
        assert!(hot.grant_id.is_none());
        assert!(!hot.record.expired_at(i64::MAX));
        assert_eq!(serde_json::to_string(&hot).unwrap(), old);
    }

    #[test]
    fn stored_codes_we_never_write_are_corruption() {
        assert!(matches!(parse_kind("bearer"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            parse_scopes(&["scim.read".into(), "admin".into()]),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            parse_scopes(&["scim.write".into()]).unwrap(),
            [Scope::ScimWrite]
        );
        assert_eq!(
            scope_names(&Scope::ALL),
            ["scim.read", "scim.write", "entitlements.read"]
        );
        let entry = r#"{"team_id":"7f9c1f4e-3c55-4a70-9d0e-2f8f6b1f0a11","kind":"scim","scopes":["scim.admin"],"user_id":null,"user_epoch":0,"expires_at":null}"#;
        assert!(serde_json::from_str::<HotRecord>(entry).is_err());
    }

    #[test]
    fn expiry_is_at_or_after_exp() {
        let record: HotRecord = serde_json::from_str(OLD_ENTRY).unwrap();
        assert!(!record.record.expired_at(1_699_999_999));
        assert!(record.record.expired_at(1_700_000_000));
    }
}
