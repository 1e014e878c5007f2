//! Starting and stopping: [`Gateway`] validates the configuration and loads the
//! certificates; [`Gateway::serve`] runs the accept loops of the plain, TLS and admin
//! listeners until the shutdown signal, then stops accepting and gives open connections
//! the grace period to finish their requests. [`run`] is the one-line form for a plain
//! listener.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
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
    config: GatewayConfig,
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
    /// finish for up to the shutdown grace period, and returns.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let prometheus = crate::metrics::install();
        let tls = match (&listeners.tls, &self.swap.certificates) {
            (Some(_), Some(certificates)) => Some(TlsAcceptor::from(certificates.server_config()?)),
            (Some(_), None) => anyhow::bail!("a TLS listener needs certificates in the map"),
            (None, Some(_)) => {
                tracing::warn!("certificates are configured but no TLS listener is served");
                None
            }
            (None, None) => None,
        };
        let https_port = match &listeners.tls {
            Some(listener) => Some(listener.local_addr()?.port()),
            None => self.config.map.gateway.tls_listen.map(|a| a.port()),
        };
        let shared = Arc::new(Shared {
            swap: self.swap.clone(),
            proxy: Proxy::new(&self.config, https_port),
            admission: Admission::new(),
            tls,
            open_plain: crate::metrics::open_connections("http"),
            open_tls: crate::metrics::open_connections("https"),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let upkeep = tokio::spawn(upkeep(prometheus.clone()));
        let health = tokio::spawn(crate::health::run(
            self.swap.clone(),
            self.config.health_fall,
            stop_rx.clone(),
        ));

        let addr = |l: &Option<TcpListener>| -> io::Result<Option<SocketAddr>> {
            l.as_ref().map(TcpListener::local_addr).transpose()
        };
        tracing::info!(
            listen = ?addr(&listeners.plain)?,
            tls_listen = ?addr(&listeners.tls)?,
            admin_listen = %listeners.admin.local_addr()?,
            regions = self.config.map.regions().len(),
            "gateway started"
        );
        let Listeners { plain, tls, admin } = listeners;
        let mut connections = JoinSet::new();
        let mut admin_connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(plain.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve(
                            shared.clone(), stream, peer, ListenerKind::Plain, stop_rx.clone(),
                        ));
                    }
                    Err(err) => accept_failed(err).await,
                },
                accepted = accept(tls.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve(
                            shared.clone(), stream, peer, ListenerKind::Tls, stop_rx.clone(),
                        ));
                    }
                    Err(err) => accept_failed(err).await,
                },
                accepted = admin.accept() => match accepted {
                    Ok((stream, _)) => {
                        admin_connections.spawn(serve_admin(stream, prometheus.clone()));
                    }
                    Err(err) => accept_failed(err).await,
                },
                // Reap finished connection tasks so the sets do not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                Some(_) = admin_connections.join_next(), if !admin_connections.is_empty() => {}
            }
        }

        drop((plain, tls, admin));
        let _ = stop_tx.send(true);
        health.abort();
        upkeep.abort();
        admin_connections.shutdown().await;
        let grace = self.swap.live().config.shutdown_grace;
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
        tracing::info!("gateway stopped");
        Ok(())
    }
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
