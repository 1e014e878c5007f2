//! The gateway's configuration: the region map plus the timeouts and pool sizes that
//! `regions.toml` does not carry. Built once in `main` (or a test) and passed down.

use std::time::Duration;

use shared::regions::RegionMap;

/// Everything [`run`](crate::run) needs besides its listeners and shutdown signal.
///
/// Construct it with [`GatewayConfig::new`] and adjust the public fields; the struct is
/// `#[non_exhaustive]` so that later settings (TLS, limits, health checks) can be added
/// without breaking callers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Hosts → region → worker addresses. The only routing input the gateway has: a
    /// host not in it is answered `421`, never forwarded.
    pub map: RegionMap,
    /// How long to wait for a TCP connection to a worker. Short, because a worker that
    /// does not accept quickly is down, and a connect failure can be retried on another
    /// replica of the same region.
    pub upstream_connect_timeout: Duration,
    /// How long a worker may take to send its response head, counted from the moment
    /// the gateway starts forwarding (connect and retries included). Past it the client
    /// gets `504`. The response body then streams without this deadline.
    pub upstream_timeout: Duration,
    /// How long an idle pooled connection to a worker is kept. Workers close idle
    /// connections too; keeping ours shorter than theirs avoids sending on a socket
    /// that the worker is closing.
    pub pool_idle_timeout: Duration,
    /// How many idle connections to keep per worker. Large enough that a burst at
    /// 10k+ req/s reuses connections instead of opening new ones.
    pub pool_max_idle_per_host: usize,
    /// How long a client may take to send a request head (HTTP/1.1). Bounds the
    /// resources a slow or idle client holds.
    pub header_read_timeout: Duration,
    /// After shutdown is signalled, how long in-flight connections may take to finish
    /// before [`run`](crate::run) returns regardless.
    pub shutdown_grace: Duration,
}

impl GatewayConfig {
    /// A configuration with the defaults: connect timeout 2 s, upstream timeout 30 s,
    /// pool idle timeout 60 s with up to 1024 idle connections per worker, header read
    /// timeout 30 s, shutdown grace 10 s.
    pub fn new(map: RegionMap) -> Self {
        Self {
            map,
            upstream_connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 1024,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
