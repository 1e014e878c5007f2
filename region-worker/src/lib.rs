//! The region worker: serves every endpoint of one region (SCIM, the SCIM OAuth server,
//! OIDC sign-in, Universal Logout, the token API and the web pages) from that region's
//! Postgres and Redis, and nothing of any other region.
//!
//! # Layout
//!
//! - [`config`]: typed configuration from `regions.toml` and the environment.
//! - [`store`]: Postgres and Redis access, grouped by aggregate; migrations and stamps.
//! - [`routes`]: the route tables (public, dispatched by host: API host vs app host;
//!   admin) and the handlers; [`paths`]: every path they serve, which pages link to.
//! - [`session`]: browser sessions (host-only cookies over hashed tokens, idle and
//!   absolute lifetimes); [`cookie`]: every cookie the worker sets or reads.
//! - [`web`]: what every page needs (layout, assets and CSP, `PageError`, the
//!   `SignedIn`/`WorkspaceAdmin` extractors, CSRF); the pages themselves are in `routes`.
//! - [`okta`]: the workspace's Okta org as OIDC relying party (domain, settings,
//!   discovery, keys, the code flow); [`crypto`]: sealing secrets under the region key;
//!   [`dns`]: the TXT lookups that prove a workspace's claim of an email domain.
//! - [`cli`]: the operator commands (`workspace create`, `token issue`, …);
//!   [`rekey`]: `keys reencrypt`, the last step of a region key rotation.
//! - [`audit_retention`]: the background pruning of audit events past the region's
//!   retention.
//! - [`telemetry`]: the spans of a request (route, SCIM operation) while traces are
//!   exported; Postgres statements, Redis commands and Okta calls are spanned where
//!   they are made (`store/pg/traced.rs`, `store/redis.rs`, `okta/http.rs`).
//! - [`error`], [`metrics`], [`state`], [`clock`], [`pkce`]: shared plumbing.
//!
//! [`connect`] prepares the stores (migrations, region stamps) and [`run`] serves on
//! listeners the caller binds, until the caller's shutdown future resolves.

#![forbid(unsafe_code)]

pub mod audit_retention;
pub mod auth_header;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cookie;
pub mod crypto;
pub mod dns;
pub mod error;
pub mod failed_auth;
pub mod metrics;
pub mod okta;
pub mod paths;
pub mod pkce;
pub mod rate_limit;
pub mod rekey;
pub mod resolver;
pub mod routes;
pub mod session;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::WorkerConfig;
use crate::state::AppState;
use crate::store::redis::Redis;

/// Connects to the region's stores, applies pending migrations and checks both region
/// stamps. Fails (and the process exits non-zero) when a store is stamped for another
/// region.
pub async fn connect(config: WorkerConfig) -> anyhow::Result<AppState> {
    let region = config.region_id().clone();
    // The Okta client passes the ring provider explicitly; installing it process-wide
    // as well keeps any other rustls user of this process off aws-lc. A second install
    // (several workers in one test process) is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pg = store::pg::pool(
        config.database_url.expose(),
        config.pg_pool_size,
        config.store_timeout,
    )?;
    {
        let mut client = pg
            .get()
            .await
            .with_context(|| format!("connecting to the Postgres of region {region}"))?;
        store::pg::migrate(client.as_driver_mut())
            .await
            .context("applying migrations")?;
        store::pg::check_stamp(client.as_driver_mut(), &region).await?;
    }
    let redis = Redis::connect(
        config.redis_url.expose(),
        &config.redis_prefix,
        config.store_timeout,
    )
    .await
    .with_context(|| format!("connecting to the Redis of region {region}"))?
    .with_guard(std::sync::Arc::new(store::revocations::CacheGuard::new(
        config.clock.clone(),
    )));
    redis.check_stamp(&region).await?;
    // Before serving: a Redis that lost revocations is recognised from the first check.
    store::revocations::load_watermark(&pg, &redis)
        .await
        .context("reading the revocation journal")?;
    Ok(AppState::new(config, pg, redis))
}

/// Serves the public router on `listener` and the admin router on `admin` until
/// `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    admin: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Install the recorder before the first request so that nothing is lost.
    let _ = crate::metrics::handle();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let public = axum::serve(
        listener,
        routes::public(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    // Follows the revocation journal (notifications, a poll, pruning) while serving.
    tokio::spawn(store::revocations::follow(
        state.pg.clone(),
        state.redis.clone(),
        state.config.database_url.clone(),
        stop_rx.clone(),
    ));
    // Keeps the metrics' histogram buffers drained between scrapes (bounded memory).
    tokio::spawn(crate::metrics::upkeep(stop_rx.clone()));
    // Prunes audit events past the region's retention (one replica at a time).
    tokio::spawn(audit_retention::run(state.clone(), stop_rx.clone()));
    tokio::spawn(routes::mcp::register::run(state.clone(), stop_rx.clone()));
    let admin =
        axum::serve(admin, routes::admin_router(state)).with_graceful_shutdown(stopped(stop_rx));
    tokio::try_join!(public.into_future(), admin.into_future())?;
    Ok(())
}
