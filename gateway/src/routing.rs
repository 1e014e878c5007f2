//! Routing: which region serves a host, and which of its workers gets a request.
//!
//! The table is built once from the region map at start and is read-only afterwards, so
//! the request path takes no lock. A request is only ever forwarded to a worker of the
//! region that serves its host: [`Upstreams`] holds one region's workers and nothing
//! else, and retries draw from the same `Upstreams`.
//!
//! Balancing is round-robin for now. Health checks, ejection and least-outstanding
//! balancing belong in [`Upstreams::candidates`]; callers only consume the order it
//! yields.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::uri::Authority;
use shared::ids::RegionId;
use shared::regions::{RegionMap, strip_port};

use crate::metrics::RegionMetrics;

/// The host → region → workers table.
#[derive(Debug)]
pub(crate) struct Routes {
    /// Lower-case host names (no port) and the index of their region in `regions`. A
    /// handful of entries (two per region), so a linear, case-insensitive scan beats
    /// hashing and needs no lower-cased copy of the request's host.
    hosts: Box<[(Box<str>, usize)]>,
    /// One entry per region, in file order.
    regions: Box<[Upstreams]>,
}

/// A region map whose worker addresses cannot be used as upstream authorities.
#[derive(Debug, thiserror::Error)]
#[error("region {region}: worker address {addr:?} is not a valid host:port")]
pub(crate) struct RoutesError {
    /// The region listing the address.
    region: RegionId,
    /// The offending address.
    addr: String,
}

impl Routes {
    /// Precomputes the table from a validated region map.
    pub(crate) fn new(map: &RegionMap) -> Result<Self, RoutesError> {
        let mut hosts = Vec::new();
        let mut regions = Vec::with_capacity(map.regions().len());
        for (index, region) in map.regions().iter().enumerate() {
            for host in [region.app_host(), region.api_host()] {
                hosts.push((host.to_ascii_lowercase().into_boxed_str(), index));
            }
            let mut workers = Vec::with_capacity(region.workers.len());
            for addr in &region.workers {
                workers.push(Worker::new(addr).ok_or_else(|| RoutesError {
                    region: region.id.clone(),
                    addr: addr.clone(),
                })?);
            }
            regions.push(Upstreams {
                metrics: RegionMetrics::new(&region.id),
                region: region.id.clone(),
                workers: workers.into_boxed_slice(),
                next: AtomicUsize::new(0),
            });
        }
        Ok(Self {
            hosts: hosts.into_boxed_slice(),
            regions: regions.into_boxed_slice(),
        })
    }

    /// The upstreams of the region serving `host` (a `Host` value or `:authority`:
    /// port ignored, any case, a trailing dot allowed).
    pub(crate) fn route(&self, host: &str) -> Option<&Upstreams> {
        let name = strip_port(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        self.hosts
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, index)| &self.regions[index])
    }
}

/// The worker replicas of one region, and the policy choosing among them.
#[derive(Debug)]
pub(crate) struct Upstreams {
    /// The region these workers serve, for logs.
    pub(crate) region: RegionId,
    /// The region's metric handles, registered once at start.
    pub(crate) metrics: RegionMetrics,
    /// The replicas, in file order; never empty (the region map refuses that).
    workers: Box<[Worker]>,
    /// Round-robin cursor. Relaxed ordering: it only spreads load, and a lost race
    /// sends two requests to the same worker, which is harmless. It starts at 0, so a
    /// fresh gateway's first request goes to the first listed worker.
    next: AtomicUsize,
}

impl Upstreams {
    /// Every worker of the region exactly once, in the order to try them: the
    /// balancer's choice first, then the others as fallbacks for a retry.
    pub(crate) fn candidates(&self) -> impl ExactSizeIterator<Item = &Worker> {
        let n = self.workers.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(move |i| &self.workers[(first + i) % n])
    }
}

/// One worker replica.
#[derive(Debug)]
pub(crate) struct Worker {
    /// The address as written in `regions.toml`, for logs.
    pub(crate) addr: Box<str>,
    /// The address parsed once as a URI authority; cloning it for each request's URI is
    /// a reference-count increment.
    pub(crate) authority: Authority,
}

impl Worker {
    fn new(addr: &str) -> Option<Self> {
        let authority = addr.parse::<Authority>().ok()?;
        authority.port_u16()?;
        Some(Self {
            addr: addr.into(),
            authority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"
development = true
[regions.us]
app_url = "http://app.closedloop.localhost"
api_url = "http://api.closedloop.localhost"
workers = ["127.0.0.1:1001", "127.0.0.1:1002"]
postgres = { env = "X" }
redis = { env = "Y" }
[regions.eu]
app_url = "http://eu.app.closedloop.localhost"
api_url = "http://eu.api.closedloop.localhost"
workers = ["127.0.0.1:2001"]
postgres = { env = "X" }
redis = { env = "Y" }
"#;

    fn routes() -> Routes {
        Routes::new(&RegionMap::parse(MAP).unwrap()).unwrap()
    }

    #[test]
    fn routes_by_host_ignoring_port_case_and_trailing_dot() {
        let routes = routes();
        for host in [
            "api.closedloop.localhost",
            "APP.Closedloop.Localhost:8080",
            "api.closedloop.localhost.",
        ] {
            assert_eq!(routes.route(host).unwrap().region.as_str(), "us", "{host}");
        }
        assert_eq!(
            routes
                .route("eu.api.closedloop.localhost:1")
                .unwrap()
                .region
                .as_str(),
            "eu"
        );
        for host in [
            "",
            "closedloop.localhost",
            "api.closedloop.localhost.evil",
            "[::1]:80",
        ] {
            assert!(routes.route(host).is_none(), "{host}");
        }
    }

    #[test]
    fn round_robin_starts_at_the_first_worker_and_tries_each_once() {
        let routes = routes();
        let us = routes.route("api.closedloop.localhost").unwrap();
        let order = |u: &Upstreams| {
            u.candidates()
                .map(|w| w.addr.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(us), ["127.0.0.1:1001", "127.0.0.1:1002"]);
        assert_eq!(order(us), ["127.0.0.1:1002", "127.0.0.1:1001"]);
        assert_eq!(order(us), ["127.0.0.1:1001", "127.0.0.1:1002"]);
        let eu = routes.route("eu.app.closedloop.localhost").unwrap();
        assert_eq!(order(eu), ["127.0.0.1:2001"]);
    }

    #[test]
    fn a_region_only_lists_its_own_workers() {
        let routes = routes();
        let eu = routes.route("eu.api.closedloop.localhost").unwrap();
        for _ in 0..4 {
            assert!(eu.candidates().all(|w| w.addr.ends_with(":2001")));
        }
    }
}
