//! The ClosedLoop gateway: the edge process that knows only `regions.toml`. It routes
//! every request by its host (`Host`, or `:authority` on HTTP/2) to a worker replica of
//! the region serving that host, and to no other region. It never reads a body: request
//! and response bodies stream through, upstream connections are pooled, and a request is
//! retried on another replica of the same region only when it provably never reached a
//! worker.
//!
//! [`run`] takes its listeners and its shutdown signal from the caller, so a test starts
//! a gateway in one line on port-0 listeners, and the binary is a thin shell around it.
//!
//! # Layout
//!
//! - [`GatewayConfig`] (`config.rs`): what a gateway needs to run, built from a
//!   [`RegionMap`](shared::regions::RegionMap) with defaults for every timeout.
//! - `server.rs`: [`run`]; the accept loops of the public and admin listeners, the
//!   HTTP/1.1 + h2c connection builder, and graceful shutdown.
//! - `routing.rs`: the host → region table, precomputed at start, and `Upstreams`, the
//!   worker replicas of one region with the balancing policy (`pick`).
//! - `proxy.rs`: one request's way through the gateway: route, rewrite headers, forward
//!   with the retry policy and the deadline, answer, count and log.
//! - `headers.rs`: hop-by-hop stripping and the `X-Forwarded-*` headers.
//! - `request_id.rs`: `RequestId`, kept from the client when well-formed, else generated.
//! - `body.rs`: the request body sent upstream (which can be handed back for a retry
//!   when it was never sent) and the response body sent downstream.
//! - `error.rs`: `ProxyError`, the gateway's own failures, rendered to JSON in one place.
//! - `admin.rs`: the admin listener's `/healthz` and `/metrics`.
//! - `metrics.rs`: the gateway's metric handles, registered once at start, on the
//!   process-wide recorder of `shared::telemetry`.

#![forbid(unsafe_code)]

mod admin;
mod body;
mod config;
mod error;
mod headers;
mod metrics;
mod proxy;
mod request_id;
mod routing;
mod server;

pub use config::GatewayConfig;
pub use server::run;
