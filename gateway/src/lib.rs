//! The ClosedLoop gateway: the edge process that knows only `regions.toml`. It
//! terminates TLS (a certificate per host, chosen by SNI), speaks HTTP/1.1 and HTTP/2 to
//! clients, and routes every request by its host (`Host`, or `:authority` on HTTP/2) to
//! a worker replica of the region serving that host, and to no other region. It never
//! reads a body: request and response bodies stream through, upstream connections are
//! pooled, replicas are balanced by least outstanding requests, health-checked and
//! ejected on connection failures, and a request is retried on another replica of the
//! same region only when that is safe.
//!
//! [`run`] takes its listeners and its shutdown signal from the caller, so a test starts
//! a gateway in one line on port-0 listeners, and the binary is a thin shell around it.
//! [`Gateway`] is the longer form with a TLS listener and a [`GatewayHandle`] that
//! reloads the configuration while it runs.
//!
//! # Layout
//!
//! - [`GatewayConfig`] (`config.rs`): what a gateway needs to run: a
//!   [`RegionMap`](shared::regions::RegionMap), whose `[gateway]` table carries the
//!   listeners, certificates and limits, plus the upstream tuning.
//! - `server.rs`: [`Gateway`], [`run`]; the accept loops of the listeners (serving on
//!   the caller's runtime, or handing connections to one single-threaded runtime per
//!   core), the admin listener and health checks, and graceful shutdown.
//! - `connection.rs`: one client connection: admission, TLS handshake, protocol choice,
//!   the idle timeout.
//! - `middleware.rs` and `middleware/`: the limits and edge policies, each in its own
//!   file, with where each sits and why.
//! - `reload.rs`: `Live`, one generation of configuration, and [`GatewayHandle`].
//! - `tls.rs`: certificates by SNI, reloadable, and the rustls configuration.
//! - `routing.rs`: the host → region table and `Upstreams`, the worker replicas of one
//!   region with their health and the balancer.
//! - `health.rs`: active health checks.
//! - `upstream.rs`: the pooled HTTP/1.1 connections to the workers, one pool per
//!   serving thread.
//! - `proxy.rs`: one request's way through the gateway: limits, route, policies, rewrite
//!   headers, forward with the retry policy and the deadline, answer, count and log.
//! - `headers.rs`: hop-by-hop stripping and the `X-Forwarded-*` headers.
//! - [`edge`]: the request-path decisions about client-controlled text (host, route,
//!   SNI, redirect, upstream headers) as pure public functions, for fuzzing.
//! - `request_id.rs`: `RequestId`, kept from the client when well-formed, else generated.
//! - `trace.rs`: the W3C trace context handed to the worker, and the gateway's server
//!   span while traces are exported.
//! - `body.rs`: the request body sent upstream (counted against the body limit, and
//!   handed back for a retry when it was never sent) and the response body sent
//!   downstream.
//! - `error.rs`: `ProxyError`, the gateway's own failures, rendered to JSON in one place.
//! - `admin.rs`: the admin listener's `/healthz` and `/metrics`.
//! - `metrics.rs`: the gateway's metric handles, on the process-wide recorder of
//!   `shared::telemetry`.

#![forbid(unsafe_code)]

mod admin;
mod body;
mod config;
mod connection;
pub mod edge;
mod error;
mod headers;
mod health;
mod metrics;
mod middleware;
mod proxy;
mod reload;
mod request_id;
mod routing;
mod server;
mod tls;
mod trace;
mod upstream;

pub use config::GatewayConfig;
pub use reload::{GatewayHandle, ReloadError};
pub use routing::RoutesError;
pub use server::{Gateway, Listeners, run};
pub use tls::TlsError;
