//! Routing: which region serves a host, and which of its workers gets a request.
//!
//! The table is built from the region map at start and on every reload, and is
//! read-only in between, so the request path takes no lock for it. A request is only
//! ever forwarded to a worker of the region that serves its host: [`Upstreams`] holds
//! one region's workers and nothing else, and retries draw from the same `Upstreams`.
//!
//! Balancing is *least outstanding requests*: among the workers that are available
//! (healthy by the active checks and not passively ejected), the one with the fewest
//! requests in flight, ties broken round-robin. With the handful of replicas a region
//! has, scanning them all costs less than the two random draws of power-of-two-choices
//! and is never worse at spreading load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{HeaderValue, Uri};
use shared::ids::RegionId;
use shared::regions::{Region, RegionMap, strip_port};

use crate::metrics::{EjectReason, RegionMetrics, WorkerMetrics};

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
pub struct RoutesError {
    /// The region listing the address.
    region: RegionId,
    /// The offending address.
    addr: String,
}

impl Routes {
    /// Precomputes the table from a validated region map. Workers already known to
    /// `previous` (same region, address and health target) are carried over with their
    /// health, ejection and in-flight count, so a reload does not reset what the gateway
    /// has learnt about them.
    pub(crate) fn new(map: &RegionMap, previous: Option<&Routes>) -> Result<Self, RoutesError> {
        let mut hosts = Vec::new();
        let mut regions = Vec::with_capacity(map.regions().len());
        for (index, region) in map.regions().iter().enumerate() {
            for host in [region.app_host(), region.api_host()] {
                hosts.push((host.to_ascii_lowercase().into_boxed_str(), index));
            }
            let mut workers = Vec::with_capacity(region.workers.len());
            for (i, addr) in region.workers.iter().enumerate() {
                let health = HealthTarget::new(region, i);
                let known = previous.and_then(|p| p.find_worker(&region.id, addr, &health));
                let worker = match known {
                    Some(worker) => worker,
                    None => Arc::new(Worker::new(&region.id, addr, health).ok_or_else(|| {
                        RoutesError {
                            region: region.id.clone(),
                            addr: addr.clone(),
                        }
                    })?),
                };
                workers.push(worker);
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
        let name = host_name(host);
        self.hosts
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, index)| &self.regions[index])
    }

    /// Every region's upstreams.
    pub(crate) fn regions(&self) -> &[Upstreams] {
        &self.regions
    }

    /// The number of host names routed.
    pub(crate) fn host_count(&self) -> usize {
        self.hosts.len()
    }

    fn find_worker(
        &self,
        region: &RegionId,
        addr: &str,
        health: &HealthTarget,
    ) -> Option<Arc<Worker>> {
        self.regions
            .iter()
            .filter(|u| &u.region == region)
            .flat_map(|u| u.workers.iter())
            .find(|w| &*w.addr == addr && &w.health == health)
            .cloned()
    }
}

/// A host without port or trailing dot: how routing, SNI and certificates compare names.
pub(crate) fn host_name(host: &str) -> &str {
    let name = strip_port(host);
    name.strip_suffix('.').unwrap_or(name)
}

/// The worker replicas of one region, and the policy choosing among them.
#[derive(Debug)]
pub(crate) struct Upstreams {
    /// The region these workers serve, for logs.
    pub(crate) region: RegionId,
    /// The region's metric handles, registered once per table.
    pub(crate) metrics: RegionMetrics,
    /// The replicas, in file order; never empty (the region map refuses that).
    workers: Box<[Arc<Worker>]>,
    /// Round-robin cursor for ties. Relaxed ordering: it only spreads load, and a lost
    /// race sends two requests to the same worker, which is harmless. It starts at 0, so
    /// a fresh gateway's first request goes to the first listed worker.
    next: AtomicUsize,
}

impl Upstreams {
    /// The available workers in the order to try them: the least loaded first, then the
    /// others (in round-robin order) as fallbacks for a retry. Empty when every worker of
    /// the region is unhealthy or ejected.
    pub(crate) fn candidates(&self) -> Candidates<'_> {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut first = None;
        let mut least = usize::MAX;
        let mut available = 0;
        for i in 0..n {
            let index = (start + i) % n;
            let worker = &self.workers[index];
            if !worker.is_available() {
                continue;
            }
            available += 1;
            let load = worker.outstanding();
            if load < least {
                least = load;
                first = Some(index);
            }
        }
        Candidates {
            workers: &self.workers,
            first,
            first_done: false,
            start,
            step: 0,
            remaining: available,
        }
    }

    /// Every worker, available or not (for health checks and the admin view).
    pub(crate) fn workers(&self) -> &[Arc<Worker>] {
        &self.workers
    }
}

/// The try order of one request; see [`Upstreams::candidates`].
#[derive(Debug)]
pub(crate) struct Candidates<'a> {
    /// The region's workers.
    workers: &'a [Arc<Worker>],
    /// The balancer's choice, yielded first; `None` when no worker is available.
    first: Option<usize>,
    /// Whether `first` has been yielded.
    first_done: bool,
    /// Where the round-robin scan of the fallbacks starts.
    start: usize,
    /// Position of the fallback scan.
    step: usize,
    /// Available workers not yet yielded.
    remaining: usize,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a Arc<Worker>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        if !self.first_done {
            self.first_done = true;
            let index = self.first?;
            self.remaining -= 1;
            return Some(&self.workers[index]);
        }
        let n = self.workers.len();
        while self.step < n {
            let index = (self.start + self.step) % n;
            self.step += 1;
            if Some(index) != self.first && self.workers[index].is_available() {
                self.remaining -= 1;
                return Some(&self.workers[index]);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl Candidates<'_> {
    /// How many workers may still be yielded (an upper bound: one may become unavailable
    /// meanwhile).
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }
}

/// How the health checker probes one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HealthTarget {
    /// `GET /readyz` on the worker's admin listener: ready means both stores answer.
    Readyz(Uri),
    /// `GET /api/ping` on the public address with the region's API host, when no admin
    /// address is known: liveness only.
    Ping {
        /// `http://worker/api/ping`.
        uri: Uri,
        /// The region's API host, so the worker's host check accepts the probe.
        host: HeaderValue,
    },
}

impl HealthTarget {
    fn new(region: &Region, index: usize) -> Self {
        let readyz = region
            .worker_admin(index)
            .and_then(|admin| format!("http://{admin}/readyz").parse::<Uri>().ok());
        match readyz {
            Some(uri) => HealthTarget::Readyz(uri),
            None => HealthTarget::Ping {
                uri: format!("http://{}/api/ping", region.workers[index])
                    .parse()
                    .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1:9/api/ping")),
                host: HeaderValue::from_str(region.api_host())
                    .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            },
        }
    }
}

/// One worker replica and what the gateway knows about it.
#[derive(Debug)]
pub(crate) struct Worker {
    /// The address as written in `regions.toml`, for logs and metric labels.
    pub(crate) addr: Box<str>,
    /// The address parsed once as a URI authority; cloning it for each request's URI is
    /// a reference-count increment.
    pub(crate) authority: Authority,
    /// How the health checker probes it.
    pub(crate) health: HealthTarget,
    /// Its metric handles.
    pub(crate) metrics: WorkerMetrics,
    /// Requests sent to it whose response has not finished; the balancer's load signal.
    outstanding: AtomicUsize,
    /// Verdict of the active health checks. Starts `true`: a new worker gets traffic at
    /// once, and a dead one is ejected passively by its first connection failure.
    healthy: AtomicBool,
    /// Consecutive failed health checks.
    failed_checks: AtomicU32,
    /// Passive ejection: milliseconds since `epoch` until which the worker gets no
    /// traffic; 0 when not ejected.
    ejected_until_ms: AtomicU64,
    /// Consecutive passive ejections, for the back-off.
    ejections: AtomicU32,
    /// Time origin of `ejected_until_ms`.
    epoch: Instant,
}

/// First passive ejection; doubled for each consecutive one.
const EJECTION_BASE: Duration = Duration::from_millis(500);
/// Longest passive ejection; an active health check success ends it sooner.
const EJECTION_MAX: Duration = Duration::from_secs(30);

impl Worker {
    fn new(region: &RegionId, addr: &str, health: HealthTarget) -> Option<Self> {
        let authority = addr.parse::<Authority>().ok()?;
        authority.port_u16()?;
        Some(Self {
            metrics: WorkerMetrics::new(region, addr),
            addr: addr.into(),
            authority,
            health,
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            failed_checks: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            epoch: Instant::now(),
        })
    }

    /// Whether the balancer may send it a request.
    pub(crate) fn is_available(&self) -> bool {
        if !self.healthy.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until == 0 || self.now_ms() >= until
    }

    /// Requests in flight.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts a request sent to this worker until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> Outstanding {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding(self.clone())
    }

    /// Passive ejection after a connection failure: no traffic for a back-off that
    /// doubles with each consecutive ejection. Returns how long.
    pub(crate) fn eject(&self) -> Duration {
        let n = self.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let pause = EJECTION_BASE.saturating_mul(1 << n).min(EJECTION_MAX);
        let until = self.now_ms() + pause.as_millis() as u64;
        self.ejected_until_ms.store(until.max(1), Ordering::Relaxed);
        self.metrics.ejected(EjectReason::Connect);
        pause
    }

    /// A request succeeded: the back-off starts over.
    pub(crate) fn succeeded(&self) {
        if self.ejections.load(Ordering::Relaxed) != 0 {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Records a health check result; returns the change of verdict, if any. `fall`
    /// consecutive failures make it unhealthy; one success makes it healthy again and
    /// ends a passive ejection.
    pub(crate) fn checked(&self, ok: bool, fall: u32) -> Option<bool> {
        if ok {
            self.failed_checks.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(0, Ordering::Relaxed);
            self.ejections.store(0, Ordering::Relaxed);
            let was = self.healthy.swap(true, Ordering::Relaxed);
            self.metrics.set_healthy(true);
            return (!was).then_some(true);
        }
        let failed = self.failed_checks.fetch_add(1, Ordering::Relaxed) + 1;
        if failed >= fall && self.healthy.swap(false, Ordering::Relaxed) {
            self.metrics.set_healthy(false);
            self.metrics.ejected(EjectReason::Health);
            return Some(false);
        }
        None
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// One request in flight to a worker; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct Outstanding(Arc<Worker>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
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
workers = ["127.0.0.1:1001", "127.0.0.1:1002", { addr = "127.0.0.1:1003", admin = "127.0.0.1:2003" }]
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
        Routes::new(&RegionMap::parse(MAP).unwrap(), None).unwrap()
    }

    fn order(u: &Upstreams) -> Vec<String> {
        u.candidates().map(|w| w.addr.to_string()).collect()
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
    fn ties_go_round_robin_and_each_worker_is_tried_once() {
        let routes = routes();
        let us = routes.route("api.closedloop.localhost").unwrap();
        assert_eq!(
            order(us),
            ["127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"]
        );
        assert_eq!(
            order(us),
            ["127.0.0.1:1002", "127.0.0.1:1003", "127.0.0.1:1001"]
        );
        let eu = routes.route("eu.app.closedloop.localhost").unwrap();
        assert_eq!(order(eu), ["127.0.0.1:2001"]);
    }

    #[test]
    fn the_least_loaded_worker_goes_first() {
        let routes = routes();
        let us = routes.route("api.closedloop.localhost").unwrap();
        let busy0 = us.workers()[0].begin();
        let busy1 = us.workers()[1].begin();
        for _ in 0..3 {
            assert_eq!(order(us)[0], "127.0.0.1:1003");
        }
        drop((busy0, busy1));
        let _busy2 = us.workers()[2].begin();
        let firsts: Vec<String> = (0..4).map(|_| order(us)[0].clone()).collect();
        assert!(!firsts.contains(&"127.0.0.1:1003".to_owned()), "{firsts:?}");
        assert!(firsts.contains(&"127.0.0.1:1001".to_owned()));
        assert!(firsts.contains(&"127.0.0.1:1002".to_owned()));
    }

    #[test]
    fn ejected_and_unhealthy_workers_are_skipped_until_they_return() {
        let routes = routes();
        let us = routes.route("api.closedloop.localhost").unwrap();
        us.workers()[0].eject();
        assert_eq!(us.workers()[1].checked(false, 2), None);
        assert_eq!(us.workers()[1].checked(false, 2), Some(false));
        for _ in 0..3 {
            assert_eq!(order(us), ["127.0.0.1:1003"]);
        }
        us.workers()[2].eject();
        assert!(us.candidates().next().is_none(), "every worker is out");
        // A passing check ends an ejection as well as an unhealthy verdict.
        assert_eq!(us.workers()[1].checked(true, 2), Some(true));
        assert_eq!(us.workers()[0].checked(true, 2), None);
        assert_eq!(order(us).len(), 2);
    }

    #[test]
    fn health_targets_follow_the_map() {
        let routes = routes();
        let us = routes.route("api.closedloop.localhost").unwrap();
        match &us.workers()[0].health {
            HealthTarget::Ping { uri, host } => {
                assert_eq!(uri, "http://127.0.0.1:1001/api/ping");
                assert_eq!(host, "api.closedloop.localhost");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            us.workers()[2].health,
            HealthTarget::Readyz(Uri::from_static("http://127.0.0.1:2003/readyz"))
        );
    }

    #[test]
    fn a_reload_keeps_what_is_known_about_unchanged_workers() {
        let old = routes();
        old.route("api.closedloop.localhost").unwrap().workers()[1].eject();
        let text = MAP.replace("\"127.0.0.1:1001\", ", "");
        let new = Routes::new(&RegionMap::parse(&text).unwrap(), Some(&old)).unwrap();
        let us = new.route("api.closedloop.localhost").unwrap();
        assert_eq!(us.workers().len(), 2);
        assert!(Arc::ptr_eq(
            &us.workers()[0],
            &old.route("api.closedloop.localhost").unwrap().workers()[1]
        ));
        assert!(!us.workers()[0].is_available());
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
