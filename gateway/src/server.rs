//! Starting and stopping: [`Gateway`] validates the configuration and loads the
//! certificates; [`Gateway::serve`] runs the accept loops of the plain, TLS and admin
//! listeners until the shutdown signal, then stops accepting and gives open connections
//! the grace period to finish their requests. [`run`] is the one-line form for a plain
//! listener.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::Gauge;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::config::GatewayConfig;
use crate::connection::{self, ListenerKind};
use crate::middleware::admission::Admission;
use crate::proxy::Proxy;
use crate::reload::{GatewayHandle, Live, ReloadError, Swap};
use crate::tls::Certificates;

/// How often the Prometheus recorder drains its histogram buffers, so that memory stays
/// bounded between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The listeners a gateway serves; bound by the caller (port 0 in tests).
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP (HTTP/1.1 and h2c); optional behind a TLS listener.
    pub plain: Option<TcpListener>,
    /// HTTPS; requires certificates in the map.
    pub tls: Option<TcpListener>,
    /// `/healthz` and `/metrics`.
    pub admin: TcpListener,
}

/// A gateway ready to serve: configuration validated, certificates loaded.
#[derive(Debug)]
pub struct Gateway {
    /// The configuration it started with (the upstream tuning, which reloads keep).
    config: GatewayConfig,
    /// The live configuration and certificates, shared with every [`GatewayHandle`].
    swap: Arc<Swap>,
}

/// What every connection task shares.
pub(crate) struct Shared {
    /// The current configuration generation.
    pub(crate) swap: Arc<Swap>,
    /// The upstream client.
    pub(crate) proxy: Proxy,
    /// The connection limits' counters.
    pub(crate) admission: Arc<Admission>,
    /// The TLS acceptor, when the TLS listener runs.
    pub(crate) tls: Option<TlsAcceptor>,
    /// `gateway_open_connections{listener="http"}`.
    pub(crate) open_plain: Gauge,
    /// `gateway_open_connections{listener="https"}`.
    pub(crate) open_tls: Gauge,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `TlsAcceptor` has no `Debug`; whether TLS is on is what matters.
        f.debug_struct("Shared")
            .field("swap", &self.swap)
            .field("proxy", &self.proxy)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the routing table and, when the map names certificates, loads them.
    pub fn new(config: GatewayConfig) -> Result<Self, ReloadError> {
        // Before the certificates load: they set their expiry gauge.
        crate::metrics::install();
        let certificates = if config.map.gateway.certificates.is_empty() {
            None
        } else {
            Some(Arc::new(Certificates::load(
                &config.map.gateway.certificates,
            )?))
        };
        let live = Live::new(config.clone(), None)?;
        Ok(Self {
            config,
            swap: Arc::new(Swap::new(live, certificates)),
        })
    }

    /// The handle that reloads this gateway's configuration while it runs.
    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            inner: self.swap.clone(),
        }
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests
    /// finish for up to the shutdown grace period, and returns. Everything runs on the
    /// caller's runtime: the form tests use.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let https_port = match &listeners.tls {
            Some(listener) => Some(listener.local_addr()?.port()),
            None => self.config.map.gateway.tls_listen.map(|a| a.port()),
        };
        let common = self.common(listeners.tls.is_some(), https_port)?;
        tracing::info!(
            listen = ?local(&listeners.plain)?,
            tls_listen = ?local(&listeners.tls)?,
            admin_listen = %listeners.admin.local_addr()?,
            regions = self.config.map.regions().len(),
            "gateway started"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let control = tokio::spawn(control(
            self.swap.clone(),
            listeners.admin,
            self.config.health_fall,
            stop_rx.clone(),
        ));
        let shard = common.shard(&self.config);
        let accepting = tokio::spawn(accept_loop(shard, listeners.plain, listeners.tls, stop_rx));
        shutdown.await;
        let _ = stop_tx.send(true);
        accepting.await?;
        control.await?;
        tracing::info!("gateway stopped");
        Ok(())
    }

    /// Serves client connections on `threads` threads, each with its own
    /// single-threaded runtime and its own upstream connection pool, like nginx's worker
    /// processes: a connection lives on one thread from accept to close, so a request
    /// crosses no thread and wakes no other core. The caller's runtime accepts (and
    /// hands each connection to the thread with the fewest open connections, which
    /// spreads a few long-lived connections evenly, as `SO_REUSEPORT` hashing does not),
    /// and runs the admin listener, the health checks and the caller's own tasks.
    pub async fn serve_on_threads(
        self,
        listeners: Listeners,
        threads: NonZeroUsize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let https_port = match &listeners.tls {
            Some(listener) => Some(listener.local_addr()?.port()),
            None => self.config.map.gateway.tls_listen.map(|a| a.port()),
        };
        let common = self.common(listeners.tls.is_some(), https_port)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut shards = Vec::with_capacity(threads.get());
        for index in 0..threads.get() {
            let shared = common.shard(&self.config);
            let stop = stop_rx.clone();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let counter = open.clone();
            let thread = std::thread::Builder::new()
                .name(format!("gateway-{index}"))
                .spawn(move || run_shard(shared, rx, counter, stop))
                .context("starting a gateway thread")?;
            shards.push(ShardHandle { tx, open, thread });
        }
        tracing::info!(
            listen = ?local(&listeners.plain)?,
            tls_listen = ?local(&listeners.tls)?,
            admin_listen = %listeners.admin.local_addr()?,
            threads = threads.get(),
            regions = self.config.map.regions().len(),
            "gateway started"
        );
        let control = tokio::spawn(control(
            self.swap.clone(),
            listeners.admin,
            self.config.health_fall,
            stop_rx,
        ));
        let (plain, tls) = (listeners.plain, listeners.tls);
        let mut next = 0;
        tokio::pin!(shutdown);
        loop {
            let (accepted, kind) = tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(plain.as_ref()) => (accepted, ListenerKind::Plain),
                accepted = accept(tls.as_ref()) => (accepted, ListenerKind::Tls),
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            };
            // The least busy thread; ties go round-robin.
            next = (next + 1) % shards.len();
            let shard = (0..shards.len())
                .map(|i| &shards[(next + i) % shards.len()])
                .min_by_key(|s| s.open.load(Ordering::Relaxed))
                .expect("at least one thread");
            match stream.into_std() {
                Ok(stream) => {
                    shard.open.fetch_add(1, Ordering::Relaxed);
                    if shard.tx.send((stream, peer, kind)).is_err() {
                        shard.open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                Err(err) => tracing::debug!(error = %err, "cannot hand a connection over"),
            }
        }
        drop((plain, tls));
        let _ = stop_tx.send(true);
        for shard in shards {
            drop(shard.tx);
            let thread = shard.thread;
            tokio::task::spawn_blocking(move || thread.join())
                .await?
                .map_err(|_| anyhow::anyhow!("a gateway thread panicked"))?;
        }
        control.await?;
        tracing::info!("gateway stopped");
        Ok(())
    }

    /// What every thread shares: the configuration, the admission counters, TLS.
    fn common(&self, tls_served: bool, https_port: Option<u16>) -> anyhow::Result<Common> {
        crate::metrics::install();
        let tls = match (tls_served, &self.swap.certificates) {
            (true, Some(certificates)) => Some(TlsAcceptor::from(certificates.server_config()?)),
            (true, None) => anyhow::bail!("a TLS listener needs certificates in the map"),
            (false, Some(_)) => {
                tracing::warn!("certificates are configured but no TLS listener is served");
                None
            }
            (false, None) => None,
        };
        Ok(Common {
            swap: self.swap.clone(),
            admission: Admission::new(),
            tls,
            https_port,
        })
    }
}

/// A connection handed to a serving thread.
type Handoff = (std::net::TcpStream, SocketAddr, ListenerKind);

/// The accepting side's view of one serving thread.
struct ShardHandle {
    /// Where accepted connections go.
    tx: tokio::sync::mpsc::UnboundedSender<Handoff>,
    /// Its open connections, for choosing the least busy thread.
    open: Arc<AtomicUsize>,
    /// Joined at shutdown, once it has drained its connections.
    thread: std::thread::JoinHandle<()>,
}

/// The parts of [`Shared`] common to every thread.
struct Common {
    /// The configuration, swapped by reloads.
    swap: Arc<Swap>,
    /// The connection limits count across threads.
    admission: Arc<Admission>,
    /// The TLS acceptor (its certificate table is shared and reloadable).
    tls: Option<TlsAcceptor>,
    /// Where redirects to HTTPS point.
    https_port: Option<u16>,
}

impl Common {
    /// One thread's [`Shared`]: the common parts and an upstream pool of its own, so
    /// that its upstream connections are driven on its own thread.
    fn shard(&self, config: &GatewayConfig) -> Arc<Shared> {
        Arc::new(Shared {
            swap: self.swap.clone(),
            proxy: Proxy::new(config, self.https_port),
            admission: self.admission.clone(),
            tls: self.tls.clone(),
            open_plain: crate::metrics::open_connections("http"),
            open_tls: crate::metrics::open_connections("https"),
        })
    }
}

/// One thread of [`Gateway::serve_on_threads`]: serves the connections handed to it
/// until `stop`, then drains them like [`accept_loop`].
fn run_shard(
    shared: Arc<Shared>,
    mut handoffs: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot build a gateway thread's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                handoff = handoffs.recv() => {
                    let Some((stream, peer, kind)) = handoff else { break };
                    let open = open.clone();
                    let shared = shared.clone();
                    let stop = stop.clone();
                    connections.spawn(async move {
                        if let Ok(stream) = TcpStream::from_std(stream) {
                            connection::serve(shared, stream, peer, kind, stop).await;
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drain(&shared, connections).await;
    });
}

/// Accepts on the public listeners until `stop`, then stops accepting, lets open
/// connections finish for the grace period, and returns.
async fn accept_loop(
    shared: Arc<Shared>,
    plain: Option<TcpListener>,
    tls: Option<TcpListener>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = accept(plain.as_ref()) => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection::serve(
                        shared.clone(), stream, peer, ListenerKind::Plain, stop.clone(),
                    ));
                }
                Err(err) => accept_failed(err).await,
            },
            accepted = accept(tls.as_ref()) => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection::serve(
                        shared.clone(), stream, peer, ListenerKind::Tls, stop.clone(),
                    ));
                }
                Err(err) => accept_failed(err).await,
            },
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop((plain, tls));
    drain(&shared, connections).await;
}

/// Lets open connections finish for the grace period (they were told to close, see
/// `connection.rs`), then cuts the rest.
async fn drain(shared: &Shared, mut connections: JoinSet<()>) {
    let grace = shared.swap.live().config.shutdown_grace;
    tracing::info!(
        open = connections.len(),
        ?grace,
        "shutting down; draining connections"
    );
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            ?grace,
            "connections still open after the grace period; closing"
        );
        connections.shutdown().await;
    }
}

/// The admin listener, the health checks and the metrics upkeep, until `stop`.
async fn control(swap: Arc<Swap>, admin: TcpListener, fall: u32, mut stop: watch::Receiver<bool>) {
    let prometheus = crate::metrics::install();
    let upkeep = tokio::spawn(upkeep(prometheus.clone()));
    let health = tokio::spawn(crate::health::run(swap, fall, stop.clone()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = admin.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_admin(stream, prometheus.clone()));
                }
                Err(err) => accept_failed(err).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    upkeep.abort();
    let _ = health.await;
    connections.shutdown().await;
}

fn local(listener: &Option<TcpListener>) -> io::Result<Option<SocketAddr>> {
    listener.as_ref().map(TcpListener::local_addr).transpose()
}

/// Runs a gateway on a plain `listener` (public traffic) and `admin` (`/healthz`,
/// `/metrics`) until `shutdown` resolves; then stops accepting, lets in-flight
/// connections finish for up to [`GatewayConfig::shutdown_grace`], and returns.
///
/// Fails only at start, when the region map's worker addresses or certificates are
/// unusable.
pub async fn run(
    listener: TcpListener,
    admin: TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let gateway = Gateway::new(config).context("starting the gateway")?;
    let listeners = Listeners {
        plain: Some(listener),
        tls: None,
        admin,
    };
    gateway.serve(listeners, shutdown).await
}

/// Accepts on `listener`, or never when there is none.
async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve_admin(stream: TcpStream, prometheus: PrometheusHandle) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let response = admin::respond(&request, &prometheus);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = served.await {
        tracing::debug!(error = %err, "admin connection ended with an error");
    }
}

/// Logs a failed `accept` and pauses briefly: the usual cause is running out of file
/// descriptors, and retrying at once would spin.
async fn accept_failed(err: io::Error) {
    tracing::warn!(error = %err, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Drains the recorder's histogram buffers periodically.
async fn upkeep(prometheus: PrometheusHandle) {
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        interval.tick().await;
        prometheus.run_upkeep();
    }
}
