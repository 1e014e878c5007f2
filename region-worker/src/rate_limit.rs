//! Token buckets in Redis, so that every replica of a region shares one limit. Time is
//! Redis's own clock: replicas' clocks need not agree.
//!
//! [`take`] is the worker's one bucket script: SCIM's per-workspace limit, Universal
//! Logout's (with its own limits), the per-client limits of the credential endpoints and
//! the failed-authentication limit each call it with their own key and [`RateLimit`].
//! Each endpoint answers `429` in its own protocol's format.

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

/// The client a per-client limit counts against. The peer address itself, unless the
/// peer is one of the region's `trusted_proxies` (its gateways, which always *replace*
/// `X-Forwarded-For` with the address they saw): then the last address of that header.
/// A client that reaches a worker directly, from anywhere else, cannot choose its
/// bucket with the header, not even from a private network.
///
/// An IPv6 client is counted by its /64: one subscriber usually holds a whole /64, so
/// counting single addresses would give them 2^64 buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

impl ClientIp {
    /// The client of a request from `peer` carrying `forwarded` (the last
    /// `X-Forwarded-For` value), given the networks trusted to forward.
    pub fn of(
        peer: Option<std::net::IpAddr>,
        forwarded: Option<&str>,
        trusted: &[ipnet::IpNet],
    ) -> Self {
        let Some(peer) = peer else {
            return Self("unknown".to_owned());
        };
        let from_proxy = trusted.iter().any(|n| n.contains(&peer));
        let claimed = || {
            forwarded?
                .rsplit(',')
                .next()?
                .trim()
                .parse::<std::net::IpAddr>()
                .ok()
        };
        let ip = if from_proxy {
            claimed().unwrap_or(peer)
        } else {
            peer
        };
        Self(bucket_of(ip))
    }
}

/// The bucket name of an address: itself for IPv4 (and IPv4-mapped IPv6), its /64 for
/// IPv6.
fn bucket_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => ipnet::Ipv6Net::new(v6, 64)
                .map_or_else(|_| v6.to_string(), |n| n.trunc().to_string()),
        },
    }
}

impl axum::extract::FromRequestParts<crate::state::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok());
        Ok(Self::of(
            peer,
            forwarded,
            &state.config.region.trusted_proxies,
        ))
    }
}

/// Takes one token of `endpoint`'s bucket for `client` under the per-client limit of
/// the credential-checking endpoints ([`crate::config::WorkerConfig::auth_rate_limit`]).
/// A store failure lets the request through (logged): the endpoint itself then decides
/// how to answer the outage.
pub async fn take_for_client(
    state: &crate::state::AppState,
    endpoint: &str,
    client: &ClientIp,
) -> Option<u64> {
    let bucket = format!("rl:{endpoint}:{}", client.0);
    match take(&state.redis, &bucket, state.config.auth_rate_limit).await {
        Ok(wait) => wait,
        Err(e) => {
            tracing::warn!(error = %e, endpoint, "rate limit unavailable; request let through");
            None
        }
    }
}

/// For an endpoint that counts only refused requests and whose refusals cost work
/// (Universal Logout verifies a signature and audits): the seconds `client` is still
/// blocked because its refusals emptied the bucket ([`refused`]), if it is. One Redis
/// read; a store failure blocks nobody.
pub async fn blocked(
    state: &crate::state::AppState,
    endpoint: &str,
    client: &ClientIp,
) -> Option<u64> {
    let key = state
        .redis
        .key(&format!("rl-block:{endpoint}:{}", client.0));
    let left_ms: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut state.redis.conn())
        .await
        .unwrap_or(-2);
    (left_ms > 0).then(|| u64::try_from((left_ms + 999) / 1000).unwrap_or(1).max(1))
}

/// Counts one refused request of `client` on `endpoint`; when that empties its bucket,
/// blocks the client (see [`blocked`]) until the bucket has refilled enough, and
/// returns the seconds.
pub async fn refused(
    state: &crate::state::AppState,
    endpoint: &str,
    client: &ClientIp,
) -> Option<u64> {
    let wait = take_for_client(state, endpoint, client).await?;
    let key = state
        .redis
        .key(&format!("rl-block:{endpoint}:{}", client.0));
    let set: Result<(), _> = redis::cmd("SET")
        .arg(key)
        .arg(1)
        .arg("EX")
        .arg(wait)
        .query_async(&mut state.redis.conn())
        .await;
    if let Err(e) = set {
        tracing::warn!(error = %e, endpoint, "could not record a rate-limit block");
    }
    Some(wait)
}

/// `429` as a page of the sign-in flow, with an integer `Retry-After`.
pub fn page_too_many(wait: u64) -> axum::response::Response {
    use axum::response::IntoResponse;
    crate::web::PageError::TooManyRequests { wait }.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_of(peer: &str, forwarded: Option<&str>) -> ClientIp {
        let trusted: Vec<ipnet::IpNet> = ["127.0.0.0/8", "::1/128", "10.8.0.0/16"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let peer = peer.parse::<std::net::SocketAddr>().unwrap().ip();
        ClientIp::of(Some(peer), forwarded, &trusted)
    }

    #[test]
    fn only_trusted_proxies_may_name_the_client() {
        // Behind a gateway (a trusted proxy): its X-Forwarded-For, last entry.
        let c = client_of("10.8.2.3:4000", Some("203.0.113.9"));
        assert_eq!(c.0, "203.0.113.9");
        let c = client_of("127.0.0.1:4000", Some("6.6.6.6, 203.0.113.9"));
        assert_eq!(c.0, "203.0.113.9");
        let c = client_of("[::1]:4000", None);
        assert_eq!(c.0, "::/64");
        // A public peer, or a private one that is not a trusted proxy, cannot choose
        // its bucket.
        let c = client_of("198.51.100.1:4000", Some("203.0.113.9"));
        assert_eq!(c.0, "198.51.100.1");
        let c = client_of("10.9.0.1:4000", Some("203.0.113.9"));
        assert_eq!(c.0, "10.9.0.1");
        let c = client_of("192.168.1.5:4000", Some("203.0.113.9"));
        assert_eq!(c.0, "192.168.1.5");
        // Garbage in the header falls back to the peer.
        let c = client_of("10.8.0.1:1", Some("not-an-ip"));
        assert_eq!(c.0, "10.8.0.1");
        assert_eq!(ClientIp::of(None, Some("203.0.113.9"), &[]).0, "unknown");
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = client_of("127.0.0.1:1", Some("2001:db8:1:2:aaaa::1"));
        let b = client_of("127.0.0.1:1", Some("2001:db8:1:2:ffff:ffff:ffff:fffe"));
        let c = client_of("127.0.0.1:1", Some("2001:db8:1:3::1"));
        assert_eq!(a.0, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, c);
        // An IPv4-mapped address is its IPv4 client.
        let d = client_of("127.0.0.1:1", Some("::ffff:203.0.113.9"));
        assert_eq!(d.0, "203.0.113.9");
    }
}
