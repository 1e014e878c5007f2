//! The gateway's configuration: the region map (whose `[gateway]` table carries the
//! listeners, certificates, limits and health-check interval) plus the upstream tuning
//! that `regions.toml` does not carry. Built once in `main` (or a test) and passed down.

use std::time::Duration;

use shared::regions::RegionMap;

/// Everything [`run`](crate::run) needs besides its listeners and shutdown signal.
///
/// Construct it with [`GatewayConfig::new`] and adjust the public fields; the struct is
/// `#[non_exhaustive]` so that later settings can be added without breaking callers.
///
/// Settings of the map's `[gateway]` table (limits, certificates, health-check
/// interval) are read from `map.gateway`; a test may change them there before start.
/// The three timeouts copied into fields below are the ones a reload re-derives from
/// the new map.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Hosts → region → worker addresses, and the `[gateway]` settings. The only routing
    /// input the gateway has: a host not in it is answered `421`, never forwarded.
    pub map: RegionMap,
    /// How long to wait for a TCP connection to a worker. Short, because a worker that
    /// does not accept quickly is down, and a connect failure can be retried on another
    /// replica of the same region.
    pub upstream_connect_timeout: Duration,
    /// How long a worker may take to send its response head, counted from the moment
    /// the gateway starts forwarding (connect and retries included). Past it the client
    /// gets `504`. The response body then streams without this deadline. From
    /// `request_timeout_secs`.
    pub upstream_timeout: Duration,
    /// How long an idle pooled connection to a worker is kept. Workers close idle
    /// connections too; keeping ours shorter than theirs avoids sending on a socket
    /// that the worker is closing.
    pub pool_idle_timeout: Duration,
    /// How many idle connections to keep per worker. Large enough that a burst at
    /// 10k+ req/s reuses connections instead of opening new ones.
    pub pool_max_idle_per_host: usize,
    /// How long a client may take for the TLS handshake and for each request head
    /// (slow-loris protection). From `header_read_timeout_secs`.
    pub header_read_timeout: Duration,
    /// After shutdown is signalled, how long in-flight connections may take to finish
    /// before [`run`](crate::run) returns regardless. From `shutdown_grace_secs`.
    pub shutdown_grace: Duration,
    /// Consecutive failed health checks that make a worker unhealthy. One failure may
    /// be a blip (a slow `/readyz` under load); two in a row is a trend.
    pub health_fall: u32,
}

impl GatewayConfig {
    /// A configuration for `map`: the `[gateway]` table's timeouts, a connect timeout
    /// of 2 s, and a pool keeping idle connections 60 s, up to 1024 per worker.
    pub fn new(map: RegionMap) -> Self {
        let mut config = Self {
            upstream_connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::ZERO,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 1024,
            header_read_timeout: Duration::ZERO,
            shutdown_grace: Duration::ZERO,
            health_fall: 2,
            map: map.clone(),
        };
        config.apply_map(map);
        config
    }

    /// This configuration with another map: the map-derived timeouts follow the new map,
    /// the upstream tuning stays. What a reload applies.
    pub(crate) fn with_map(&self, map: RegionMap) -> Self {
        let mut config = self.clone();
        config.apply_map(map);
        config
    }

    fn apply_map(&mut self, map: RegionMap) {
        let limits = &map.gateway.limits;
        self.upstream_timeout = limits.request_timeout;
        self.header_read_timeout = limits.header_read_timeout;
        self.shutdown_grace = map.gateway.shutdown_grace;
        self.map = map;
    }
}
