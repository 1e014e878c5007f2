//! One generation of configuration ([`Live`]) and the [`GatewayHandle`] that replaces it
//! while the gateway runs (the binary calls it on SIGHUP; tests call it directly).
//!
//! A reload builds the whole new generation first: routing table, connection builders,
//! and, when the TLS listener runs, the certificates read again from their files. Only
//! when every part succeeded is it swapped in, in one step; on any error the running
//! generation stays and the error says why. Requests read the generation once, when they
//! start, so a request never sees half of one map and half of another; connections
//! pick up new limits from their next request (routing, body and header limits) or, for
//! per-connection settings (header read timeout, HTTP/2 settings), from the next
//! connection.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use shared::regions::RegionMap;

use crate::config::GatewayConfig;
use crate::routing::{Routes, RoutesError};
use crate::tls::{Certificates, TlsError};

/// Concurrent HTTP/2 streams per client connection: bounds what one connection can ask
/// of the workers at once (the connection limits bound the number of connections).
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// One generation of configuration, derived from one region map.
#[derive(Debug)]
pub(crate) struct Live {
    /// The configuration it was built from.
    pub(crate) config: GatewayConfig,
    /// Host → region → workers.
    pub(crate) routes: Routes,
    /// Connection builder for the plain listener: HTTP/1.1, or h2c with prior knowledge.
    pub(crate) plain: auto::Builder<TokioExecutor>,
    /// Connection builder for TLS connections that negotiated `h2`.
    pub(crate) h2: auto::Builder<TokioExecutor>,
    /// Connection builder for TLS connections that negotiated `http/1.1` or nothing.
    pub(crate) h1: auto::Builder<TokioExecutor>,
}

impl Live {
    /// Builds a generation; `previous` lends its knowledge of unchanged workers.
    pub(crate) fn new(config: GatewayConfig, previous: Option<&Live>) -> Result<Self, RoutesError> {
        let routes = Routes::new(&config.map, previous.map(|p| &p.routes))?;
        let plain = builder(&config);
        Ok(Self {
            h2: plain.clone().http2_only(),
            h1: plain.clone().http1_only(),
            plain,
            routes,
            config,
        })
    }

    /// The interval of active health checks; `None` when they are off.
    pub(crate) fn health_interval(&self) -> Option<Duration> {
        self.config.map.gateway.health_check_interval
    }
}

/// The connection builder, with the limits that apply below the request level: the
/// header size (hyper answers `431` when a head
/// does not fit its buffer; the exact limit is checked per request, see
/// `middleware::limits`), and HTTP/2's concurrency and header list size.
fn builder(config: &GatewayConfig) -> auto::Builder<TokioExecutor> {
    let limits = &config.map.gateway.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The header read timeout is the connection's own timer (`connection.rs`): one
        // timer per connection, re-armed once per idle period, instead of hyper's, which
        // is set and cleared for every request.
        .header_read_timeout(None)
        // hyper refuses buffers below 8 KiB; smaller limits are enforced per request.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // Detects dead peers on long-lived HTTP/2 connections.
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A worker address cannot be used.
    #[error(transparent)]
    Routes(#[from] RoutesError),
    /// A certificate could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Replaces the running configuration. Cheap to clone; every clone drives the same
/// gateway.
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    /// What a reload replaces, shared with the running gateway.
    pub(crate) inner: Arc<Swap>,
}

/// What a reload swaps.
#[derive(Debug)]
pub(crate) struct Swap {
    /// The current generation. Read once per request (a read lock and a
    /// reference-count increment), written only by a reload.
    live: RwLock<Arc<Live>>,
    /// The TLS listener's certificates, when it runs.
    pub(crate) certificates: Option<Arc<Certificates>>,
}

impl Swap {
    pub(crate) fn new(live: Live, certificates: Option<Arc<Certificates>>) -> Self {
        Self {
            live: RwLock::new(Arc::new(live)),
            certificates,
        }
    }

    /// The current generation.
    pub(crate) fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl GatewayHandle {
    /// Applies `map`: new hosts and workers, new limits, and (when the TLS listener runs)
    /// the certificates it names, read again from disk, so renewed files are picked up
    /// without dropping a connection. On error nothing changes.
    ///
    /// The listener addresses cannot change without a restart; a map that changes them
    /// is applied otherwise, with a warning.
    pub fn reload(&self, map: RegionMap) -> Result<(), ReloadError> {
        let current = self.inner.live();
        let before = &current.config.map.gateway;
        if map.gateway.listen != before.listen
            || map.gateway.tls_listen != before.tls_listen
            || map.gateway.admin_listen != before.admin_listen
        {
            tracing::warn!("listener addresses changed in the map: they apply after a restart");
        }
        let live = Live::new(current.config.with_map(map), Some(&current))?;
        if let Some(certificates) = &self.inner.certificates {
            certificates.reload(&live.config.map.gateway.certificates)?;
        }
        let regions = live.routes.regions().len();
        let workers: usize = live
            .routes
            .regions()
            .iter()
            .map(|u| u.workers().len())
            .sum();
        let hosts = live.routes.host_count();
        *self.inner.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
        tracing::info!(regions, workers, hosts, "configuration reloaded");
        Ok(())
    }
}
