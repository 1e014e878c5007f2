//! Token buckets in Redis, so that every replica of a region shares one limit. Time is
//! Redis's own clock: replicas' clocks need not agree.

use crate::config::RateLimit;
use crate::store::StoreError;
use crate::store::redis::Redis;

const BUCKET: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
if tokens < 1 then
  return math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return 0";

/// Takes one token from the bucket `name` (a key in the worker's key space). `None`
/// when the request may proceed; otherwise the whole seconds to wait (at least 1, as
/// an integer `Retry-After` wants). A limit of 0 per second never limits.
pub async fn take(redis: &Redis, name: &str, limit: RateLimit) -> Result<Option<u64>, StoreError> {
    if limit.per_second == 0 {
        return Ok(None);
    }
    let wait_ms: i64 = redis::Script::new(BUCKET)
        .key(redis.key(name))
        .arg(limit.per_second)
        .arg(limit.burst.max(1))
        .invoke_async(&mut redis.conn())
        .await?;
    if wait_ms <= 0 {
        return Ok(None);
    }
    Ok(Some(
        u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1),
    ))
}
