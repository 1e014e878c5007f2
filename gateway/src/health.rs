//! Active health checks: every `health_check_interval_ms`, each worker of the current
//! routing table is probed once, all of them concurrently, on a fresh connection (a
//! pooled one would hide a worker that stopped accepting). A worker's admin `/readyz`
//! when its admin address is known (ready means both its stores answer), else
//! `GET /api/ping` on its public address; any `2xx` within the timeout passes.
//!
//! `health_fall` consecutive failures take a worker out of balancing; one success
//! brings it back and also ends a passive ejection (a worker that answers its checks
//! accepts connections again). Checks read the table anew each round, so workers added
//! by a reload are checked from the next round on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{Method, Request};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::watch;

use crate::reload::Swap;
use crate::routing::{HealthTarget, Upstreams, Worker};

/// How often the loop looks again at the configuration while checks are off.
const OFF_RECHECK: Duration = Duration::from_secs(1);

/// Runs the checks until `stop` changes.
pub(crate) async fn run(swap: Arc<Swap>, fall: u32, mut stop: watch::Receiver<bool>) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector);
    loop {
        let wait = swap.live().health_interval().unwrap_or(OFF_RECHECK);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let live = swap.live();
        let Some(interval) = live.health_interval() else {
            continue;
        };
        // Long enough not to fail a worker that is merely busy, and never so long that
        // one hung worker stalls the rounds.
        let timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(5));
        let client = &client;
        let checks = live.routes.regions().iter().flat_map(|upstreams| {
            upstreams
                .workers()
                .iter()
                .map(move |worker| check(client, upstreams, worker, timeout, fall))
        });
        futures_util::future::join_all(checks).await;
    }
}

/// Probes one worker and records the verdict.
async fn check(
    client: &Client<HttpConnector, Empty<Bytes>>,
    upstreams: &Upstreams,
    worker: &Worker,
    timeout: Duration,
    fall: u32,
) {
    let mut request = Request::new(Empty::new());
    *request.method_mut() = Method::GET;
    match &worker.health {
        HealthTarget::Readyz(uri) => *request.uri_mut() = uri.clone(),
        HealthTarget::Ping { uri, host } => {
            *request.uri_mut() = uri.clone();
            request.headers_mut().insert(HOST, host.clone());
        }
    }
    let outcome = tokio::time::timeout(timeout, client.request(request)).await;
    let ok = matches!(&outcome, Ok(Ok(response)) if response.status().is_success());
    match worker.checked(ok, fall) {
        Some(true) => tracing::info!(
            region = upstreams.region.as_str(),
            worker = &*worker.addr,
            "worker passes its health checks again"
        ),
        Some(false) => {
            let why = match outcome {
                Ok(Ok(response)) => format!("status {}", response.status()),
                Ok(Err(err)) => crate::error::Chain(&err).to_string(),
                Err(_) => format!("no answer within {timeout:?}"),
            };
            tracing::warn!(
                region = upstreams.region.as_str(),
                worker = &*worker.addr,
                why,
                "worker fails its health checks; ejected"
            );
        }
        None => {}
    }
}
