//! The accept loops. [`run`] serves the public listener (HTTP/1.1 and h2c, detected per
//! connection) and the admin listener until `shutdown` resolves, then stops accepting
//! and gives open connections a grace period to finish their requests.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use metrics::Gauge;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};

use crate::admin;
use crate::config::GatewayConfig;
use crate::headers::{ClientInfo, ForwardedProto};
use crate::proxy::Proxy;

/// How often the Prometheus recorder drains its histogram buffers, so that memory stays
/// bounded between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Runs a gateway on `listener` (public traffic) and `admin` (`/healthz`, `/metrics`)
/// until `shutdown` resolves; then stops accepting, lets in-flight connections finish
/// for up to [`GatewayConfig::shutdown_grace`], and returns.
///
/// Fails only at start, when the region map's worker addresses are unusable.
pub async fn run(
    listener: TcpListener,
    admin: TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let prometheus = crate::metrics::install();
    let proxy = Arc::new(Proxy::new(&config)?);
    let open_connections = crate::metrics::open_connections();
    let public = public_builder(&config);
    let graceful = GracefulShutdown::new();
    let upkeep = tokio::spawn(upkeep(prometheus.clone()));

    tracing::info!(
        listen = %listener.local_addr()?,
        admin_listen = %admin.local_addr()?,
        regions = config.map.regions().len(),
        "gateway started"
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let client = ClientInfo::new(peer.ip().to_canonical(), ForwardedProto::Http);
                    let connection = Connection { proxy: proxy.clone(), client };
                    serve_public(&public, &graceful, &open_connections, stream, connection);
                }
                Err(err) => accept_failed(err).await,
            },
            accepted = admin.accept() => match accepted {
                Ok((stream, _)) => serve_admin(&graceful, stream, prometheus.clone()),
                Err(err) => accept_failed(err).await,
            },
        }
    }

    drop(listener);
    drop(admin);
    upkeep.abort();
    tracing::info!(
        open = graceful.count(),
        "shutting down; draining connections"
    );
    let grace = config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the grace period; closing"
        );
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// One public client connection: the shared proxy and what we know of the client.
struct Connection {
    /// The proxy, shared by every connection.
    proxy: Arc<Proxy>,
    /// The client's address and scheme, formatted once for all its requests.
    client: ClientInfo,
}

/// The HTTP/1.1 + HTTP/2 (h2c prior knowledge) connection builder of the public port.
fn public_builder(config: &GatewayConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

fn serve_public(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    open_connections: &Gauge,
    stream: TcpStream,
    connection: Connection,
) {
    // Small responses must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let connection = Arc::new(connection);
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let connection = connection.clone();
        async move {
            let response = connection.proxy.handle(&connection.client, request).await;
            Ok::<_, Infallible>(response)
        }
    });
    // `serve_connection` without upgrades: the gateway does not tunnel (no WebSocket yet).
    let served = graceful.watch(
        builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned(),
    );
    let open = OpenConnection::new(open_connections.clone());
    tokio::spawn(async move {
        if let Err(err) = served.await {
            tracing::debug!(error = %err, "client connection ended with an error");
        }
        drop(open);
    });
}

fn serve_admin(graceful: &GracefulShutdown, stream: TcpStream, prometheus: PrometheusHandle) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let response = admin::respond(&request, &prometheus);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = graceful.watch(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service),
    );
    tokio::spawn(async move {
        if let Err(err) = served.await {
            tracing::debug!(error = %err, "admin connection ended with an error");
        }
    });
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

/// Holds one unit of the `gateway_open_connections` gauge for as long as a connection
/// task lives, including when the task is cancelled.
struct OpenConnection(Gauge);

impl OpenConnection {
    fn new(gauge: Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
