//! The gateway's per-request decisions about client-controlled text, as pure public
//! functions: which host a request names, which region that host routes to, whether it
//! agrees with SNI, where an HTTP request is redirected, and what headers go upstream.
//!
//! The proxy (`proxy.rs`) calls the crate-internal functions these wrap, so a fuzz
//! target (`fuzz/`, target `gateway_headers`) or a property test drives exactly the
//! code that runs on the request path, without a server, a socket or a runtime.

use std::net::IpAddr;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue};
use shared::ids::RegionId;
use shared::regions::RegionMap;

use crate::headers::{ClientInfo, ForwardedProto, prepare_upstream};
use crate::middleware::{redirect, sni};
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::routing::{Routes, RoutesError};

/// The host → region table the proxy routes by, built from a region map as on start
/// and reload.
#[derive(Debug)]
pub struct HostRouter {
    /// The proxy's own table (workers included, never contacted here).
    routes: Routes,
}

impl HostRouter {
    /// The table for `map`; fails as the gateway's start does on an unusable worker
    /// address.
    pub fn new(map: &RegionMap) -> Result<Self, RoutesError> {
        Ok(Self {
            routes: Routes::new(map, None)?,
        })
    }

    /// The region serving `host` (a `Host` value or `:authority`), as the proxy
    /// decides it; `None` is the proxy's `421`.
    pub fn route(&self, host: &str) -> Option<&RegionId> {
        self.routes.route(host).map(|upstreams| &upstreams.region)
    }
}

/// The host a request names: the URI's authority (HTTP/2 `:authority`, or an
/// absolute-form HTTP/1.1 target) without user info, else the `Host` header.
pub fn request_host(parts: &Parts) -> Option<HeaderValue> {
    crate::proxy::request_host(parts)
}

/// Whether `host` names the host of the TLS handshake's `sni` (else the proxy answers
/// `421`).
pub fn sni_agrees(sni: &str, host: &str) -> bool {
    sni::agrees(sni, host)
}

/// The `Location` of the redirect to HTTPS the proxy answers a cleartext request for
/// `host` with, when that policy is on; `None` when no valid `Location` can be made
/// (the request is then forwarded as is).
pub fn https_redirect(host: &str, path: &PathAndQuery, https_port: u16) -> Option<HeaderValue> {
    let response = redirect::to_https(host, path, https_port)?;
    response.headers().get(http::header::LOCATION).cloned()
}

/// Rewrites a routed request's headers as the proxy does before forwarding: strips
/// hop-by-hop headers (and those `Connection` names) and `Forwarded`, sets `Host` and
/// `X-Forwarded-Host` to `host`, `X-Forwarded-For` to `peer`, `X-Forwarded-Proto` from
/// `https`, and `X-Request-Id` to the client's well-formed id or a fresh one.
pub fn forward_headers(headers: &mut HeaderMap, host: &HeaderValue, peer: IpAddr, https: bool) {
    let request_id = RequestId::from_headers(headers);
    let proto = if https {
        ForwardedProto::Https
    } else {
        ForwardedProto::Http
    };
    prepare_upstream(headers, host, &ClientInfo::new(peer, proto));
    headers.insert(X_REQUEST_ID, request_id.header_value().clone());
}
