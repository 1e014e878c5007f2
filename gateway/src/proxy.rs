//! One request's way through the gateway: check its size, find the region by host,
//! apply the edge policies (SNI agreement, redirect to HTTPS), rewrite the headers,
//! forward to a worker of that region under the request deadline (retrying on another
//! replica only when that is safe), then answer, count and log.
//!
//! Bodies are never read here: the client's `Incoming` body is what the upstream client
//! sends (counted against the body limit as it streams), and the worker's `Incoming`
//! body is what the client receives.
//!
//! # Retry policy
//!
//! A request is retried on another replica of the same region, each replica tried at
//! most once, only when resending it is safe:
//! - the connection to the worker could not be made (the request reached no worker),
//!   and the request is idempotent or has no body (whose body, if any, came back
//!   untouched: see `body.rs`); or
//! - the connection failed before any response arrived and the request is idempotent
//!   with no body (RFC 9110 §9.2.2: such a request may be repeated; this is what keeps
//!   `GET`s from failing when a worker is killed with requests in flight).
//!
//! A timeout is never retried: the worker may still be working on the request.

use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header::HOST};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::{BodyProgress, ResponseBody, UpstreamBody};
use crate::config::GatewayConfig;
use crate::connection::ConnInfo;
use crate::error::{Chain, ProxyError, UpstreamErrorKind};
use crate::headers::{ForwardedProto, prepare_upstream, strip_hop_by_hop};
use crate::metrics::RegionMetrics;
use crate::middleware::{limits, redirect, sni};
use crate::reload::Live;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::routing::{Outstanding, Upstreams, Worker};
use crate::trace::RequestTrace;
use crate::upstream::{Checkin, Pools};

/// The proxy: the pooled connections to the workers. One per serving thread, shared by
/// its connections; the routing table and limits come with each request's [`Live`]
/// generation.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Pooled HTTP/1.1 keep-alive connections to the workers; they outlive reloads.
    pools: Arc<Pools>,
    /// Metrics of requests that no region serves (`region="none"`).
    unrouted: RegionMetrics,
    /// The HTTPS port that redirects point to; `None` without a TLS listener.
    https_port: Option<u16>,
}

/// What the access log and the metrics need about a finished request.
struct Exchange<'a> {
    /// When the request arrived, for `duration_us` and the latency histogram.
    started: Instant,
    /// Ties the log line to the worker's and to the client's `X-Request-Id`.
    request_id: &'a RequestId,
    /// The request's trace: its id in the log line, the span to finish.
    trace: &'a RequestTrace,
    /// The client's method.
    method: &'a Method,
    /// The path only: the query string may carry codes or tokens and is never logged.
    path: &'a str,
    /// The host the request was for, as the client sent it.
    host: Option<&'a HeaderValue>,
    /// The protocol the client spoke.
    version: Version,
    /// The client connection.
    conn: &'a ConnInfo,
    /// The region's upstreams; `None` when no region serves the host.
    upstreams: Option<&'a Upstreams>,
    /// The last worker tried, if any.
    worker: Option<&'a Worker>,
}

impl Proxy {
    /// Builds the upstream pools.
    pub(crate) fn new(config: &GatewayConfig, https_port: Option<u16>) -> Self {
        Self {
            pools: Pools::new(
                config.upstream_connect_timeout,
                config.pool_max_idle_per_host,
                config.pool_idle_timeout,
            ),
            unrouted: RegionMetrics::unrouted(),
            https_port,
        }
    }

    /// Answers one client request. Never fails: the gateway's own failures become JSON
    /// error responses. With traces exported, all of it runs in the gateway's server
    /// span (see `trace.rs`).
    pub(crate) async fn handle(
        &self,
        live: &Live,
        conn: &ConnInfo,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        use tracing::Instrument as _;
        let trace = RequestTrace::begin(request.headers(), request.method());
        match trace.span.clone() {
            Some(span) => {
                self.answer(live, conn, request, &trace)
                    .instrument(span)
                    .await
            }
            None => self.answer(live, conn, request, &trace).await,
        }
    }

    async fn answer(
        &self,
        live: &Live,
        conn: &ConnInfo,
        request: Request<Incoming>,
        trace: &RequestTrace,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        let request_id = RequestId::from_headers(&parts.headers);
        let host = request_host(&parts);
        let method = parts.method.clone();
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let host_text = host.as_ref().and_then(|h| h.to_str().ok());
        let routed = host_text.and_then(|h| live.routes.route(h));
        let mut exchange = Exchange {
            started,
            request_id: &request_id,
            trace,
            method: &method,
            path: path_and_query.path(),
            host: host.as_ref(),
            version: parts.version,
            conn,
            upstreams: routed,
            worker: None,
        };

        let gateway = &live.config.map.gateway;
        if let Err(err) = limits::check(
            &parts,
            gateway.limits.max_header_bytes,
            gateway.limits.max_body_bytes,
        ) {
            return self.finish(err.to_response(), &exchange);
        }
        let (Some(upstreams), Some(host), Some(host_text)) = (routed, host.as_ref(), host_text)
        else {
            let host = host_text.map(str::to_owned);
            let response = ProxyError::Misdirected { host }.to_response();
            return self.finish(response, &exchange);
        };
        match (conn.client.proto, &conn.sni) {
            (ForwardedProto::Https, sni) => {
                if !sni.as_deref().is_some_and(|s| sni::agrees(s, host_text)) {
                    let err = ProxyError::SniMismatch {
                        host: host_text.to_owned(),
                    };
                    return self.finish(err.to_response(), &exchange);
                }
            }
            (ForwardedProto::Http, _) => {
                if let (true, Some(port)) = (gateway.redirect_http_to_https, self.https_port)
                    && let Some(response) = redirect::to_https(host_text, &path_and_query, port)
                {
                    return self.finish(response, &exchange);
                }
            }
        }
        if method == Method::CONNECT {
            return self.finish(ProxyError::ConnectMethod.to_response(), &exchange);
        }

        prepare_upstream(&mut parts.headers, host, &conn.client);
        parts
            .headers
            .insert(X_REQUEST_ID, request_id.header_value().clone());
        trace.stamp(&mut parts.headers);
        let outgoing = Outgoing {
            method: parts.method,
            // A reference-count increment: the log line still needs the path.
            path_and_query: path_and_query.clone(),
            headers: parts.headers,
        };

        let timeout = live.config.upstream_timeout;
        let max_body = gateway.limits.max_body_bytes;
        let mut tried = None;
        let progress = (!body.is_end_stream()).then(|| Arc::new(BodyProgress::new()));
        let forwarded = tokio::time::timeout(
            timeout,
            self.forward(
                upstreams,
                outgoing,
                body,
                max_body,
                progress.as_ref(),
                &mut tried,
            ),
        )
        .await
        .unwrap_or_else(|_| {
            // A client still sending its body is the slow party, not the worker.
            if progress.as_ref().is_some_and(|p| !p.is_complete()) {
                Err(ProxyError::ClientTimeout)
            } else {
                if let Some(worker) = tried {
                    worker.metrics.failed(UpstreamErrorKind::Timeout);
                }
                Err(ProxyError::Timeout(timeout))
            }
        });
        exchange.worker = tried.map(|w| &**w);

        let response = match forwarded {
            Ok((response, outstanding, checkin)) => {
                relay(response, exchange.version, outstanding, checkin)
            }
            Err(err) => upstream_failed(&err, upstreams, &exchange),
        };
        self.finish(response, &exchange)
    }

    /// Sends the request to the region's available workers in the balancer's order,
    /// retrying as the module documentation says. Returns the response head and the
    /// guard that counts the request against its worker until the body ends.
    async fn forward<'s>(
        &self,
        upstreams: &'s Upstreams,
        outgoing: Outgoing,
        body: Incoming,
        max_body: u64,
        progress: Option<&Arc<BodyProgress>>,
        tried: &mut Option<&'s Arc<Worker>>,
    ) -> Result<(Response<Incoming>, Outstanding, Checkin), ProxyError> {
        let mut candidates = upstreams.candidates();
        if candidates.remaining() == 0 {
            return Err(ProxyError::Unavailable);
        }
        let idempotent = is_idempotent(&outgoing.method);
        let retry_allowed = candidates.remaining() > 1 && (progress.is_none() || idempotent);
        let mut body = progress.map(|p| (body, p.clone()));
        let mut outgoing = Some(outgoing);
        let mut all_refused = true;
        let mut last_err = None;
        let mut attempt = 0;
        while let Some(worker) = candidates.next() {
            let last = !retry_allowed || candidates.remaining() == 0;
            attempt += 1;
            if attempt > 1 {
                upstreams.metrics.retried();
            }
            *tried = Some(worker);
            let (upstream_body, giveback) = match body.take() {
                None => (UpstreamBody::empty(), None),
                Some((b, p)) if last => (UpstreamBody::streaming(b, max_body, p), None),
                Some((b, p)) => {
                    let (upstream_body, rx) = UpstreamBody::returnable(b, max_body, p.clone());
                    (upstream_body, Some((rx, p)))
                }
            };
            let request = match (last, outgoing.take()) {
                (true, Some(o)) => o.into_request(upstream_body),
                (false, Some(o)) => {
                    let request = o.to_request(upstream_body);
                    outgoing = Some(o);
                    request
                }
                // `outgoing` is only moved out on the last attempt, after which the loop
                // returns.
                (_, None) => return Err(ProxyError::Unavailable),
            };
            let outstanding = worker.begin();
            let sent = Instant::now();
            let err = match self.pools.send(worker, request).await {
                Ok((response, checkin)) => {
                    worker.metrics.answered(sent.elapsed());
                    worker.succeeded();
                    return Ok((response, outstanding, checkin));
                }
                Err(err) => err,
            };
            drop(outstanding);
            if progress.is_some_and(|p| p.is_too_large()) {
                return Err(ProxyError::BodyTooLarge);
            }
            let connect = err.is_connect();
            let kind = if connect {
                UpstreamErrorKind::Connect
            } else {
                UpstreamErrorKind::Request
            };
            worker.metrics.failed(kind);
            upstreams.metrics.upstream_error(kind);
            all_refused &= connect;
            if connect {
                let pause = worker.eject();
                tracing::warn!(
                    region = upstreams.region.as_str(),
                    worker = &*worker.addr,
                    ejected_ms = pause.as_millis() as u64,
                    error = %Chain(&err),
                    "worker unreachable; ejected"
                );
            }
            // A failed connect drops the request unsent, so an unread body is already
            // back; if it is not, it may have been sent.
            let mut intact = true;
            if let Some((mut rx, p)) = giveback {
                match rx.try_recv() {
                    Ok(returned) => body = Some((returned, p)),
                    Err(_) => intact = false,
                }
            }
            let safe = intact && (connect || (idempotent && progress.is_none()));
            if last || !safe {
                return Err(if connect && candidates.remaining() == 0 && all_refused {
                    ProxyError::Unavailable
                } else {
                    ProxyError::from_client(err)
                });
            }
            tracing::warn!(
                region = upstreams.region.as_str(),
                worker = &*worker.addr,
                error = %Chain(&err),
                "retrying on another replica"
            );
            last_err = Some(err);
        }
        // Every candidate failed with a retriable error (one may have become unavailable
        // while we tried the others).
        Err(match last_err {
            Some(err) if !all_refused => ProxyError::from_client(err),
            _ => ProxyError::Unavailable,
        })
    }

    /// Stamps the request id on the response, records metrics and writes the access log
    /// line. The log never includes the query string or any header but the host: a query
    /// may carry codes or tokens. `duration_us` is the time to the response head; the
    /// body streams on afterwards.
    fn finish(
        &self,
        mut response: Response<ResponseBody>,
        exchange: &Exchange<'_>,
    ) -> Response<ResponseBody> {
        let elapsed = exchange.started.elapsed();
        let status = response.status();
        response
            .headers_mut()
            .insert(X_REQUEST_ID, exchange.request_id.header_value().clone());
        let metrics = exchange.upstreams.map_or(&self.unrouted, |u| &u.metrics);
        metrics.record(status, elapsed);
        let region = exchange.upstreams.map_or("none", |u| u.region.as_str());
        let worker = exchange.worker.map_or("", |w| &*w.addr);
        exchange.trace.finish(status, region, worker);
        tracing::info!(
            target: "gateway::access",
            method = %exchange.method,
            path = exchange.path,
            host = exchange.host.and_then(|h| h.to_str().ok()).unwrap_or(""),
            region,
            worker,
            status = status.as_u16(),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            client = exchange.conn.client.forwarded_for.to_str().unwrap_or(""),
            proto = exchange.conn.client.proto.as_str(),
            version = ?exchange.version,
            request_id = exchange.request_id.as_str(),
            trace_id = exchange.trace.trace_id.as_str(),
        );
        response
    }
}

/// Turns a worker's response into the client's: the body streams through, hop-by-hop
/// headers go, and the version is the one the client spoke.
fn relay(
    response: Response<Incoming>,
    version: Version,
    outstanding: Outstanding,
    checkin: Checkin,
) -> Response<ResponseBody> {
    let mut response = response.map(|body| ResponseBody::upstream(body, outstanding, checkin));
    strip_hop_by_hop(response.headers_mut());
    *response.version_mut() = version;
    response
}

/// Counts and logs a failed forward, and renders the client's error response. The
/// cause chain goes to the log with the request id, never into the response.
fn upstream_failed(
    err: &ProxyError,
    upstreams: &Upstreams,
    exchange: &Exchange<'_>,
) -> Response<ResponseBody> {
    if let Some(UpstreamErrorKind::Timeout) = err.upstream_kind() {
        upstreams.metrics.upstream_error(UpstreamErrorKind::Timeout);
    }
    tracing::warn!(
        request_id = exchange.request_id.as_str(),
        region = upstreams.region.as_str(),
        worker = exchange.worker.map_or("", |w| &*w.addr),
        error = %Chain(err),
        "upstream request failed"
    );
    err.to_response()
}

/// The parts of a request that are sent upstream, kept apart so that a retryable
/// request can be rebuilt for another worker.
struct Outgoing {
    /// The client's method, unchanged.
    method: Method,
    /// The client's path and query, unchanged; the authority is the worker's.
    path_and_query: PathAndQuery,
    /// The client's headers after [`prepare_upstream`].
    headers: HeaderMap,
}

impl Outgoing {
    /// A request, copying the parts (for an attempt that may be retried).
    /// The copy (one header map) is the price of being able to retry: a failed attempt
    /// consumes the request even when it never reaches a worker. It is paid only
    /// when a retry is allowed and another replica is available.
    fn to_request(&self, body: UpstreamBody) -> Request<UpstreamBody> {
        build_request(
            self.method.clone(),
            self.path_and_query.clone(),
            self.headers.clone(),
            body,
        )
    }

    /// A request, moving the parts (for the final attempt).
    fn into_request(self, body: UpstreamBody) -> Request<UpstreamBody> {
        build_request(self.method, self.path_and_query, self.headers, body)
    }
}

fn build_request(
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    // Origin form (`/path?query`) on the wire: the connection already names the worker.
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from(path_and_query);
    *request.headers_mut() = headers;
    // `Request::new` is HTTP/1.1, the upstream protocol, whatever the client spoke.
    request
}

/// The host a request is for: the URI's authority when present (HTTP/2 `:authority`,
/// or an HTTP/1.1 absolute-form target, which RFC 9112 §3.2.2 says wins over `Host`),
/// else the `Host` header.
pub(crate) fn request_host(parts: &Parts) -> Option<HeaderValue> {
    match parts.uri.authority() {
        Some(authority) => {
            let text = authority.as_str();
            let text = text.rsplit_once('@').map_or(text, |(_, host)| host);
            HeaderValue::from_str(text).ok()
        }
        None => parts.headers.get(HOST).cloned(),
    }
}

/// Methods that may be resent after a failure (RFC 9110 §9.2.2), as the retry policy
/// allows.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, host: Option<&'static str>) -> Parts {
        let mut request = Request::builder().uri(uri);
        if let Some(host) = host {
            request = request.header(HOST, host);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn host_comes_from_the_authority_first_then_the_host_header() {
        let host = |p: &Parts| request_host(p).map(|h| h.to_str().unwrap().to_owned());
        assert_eq!(
            host(&parts("/x", Some("a.example:80"))).as_deref(),
            Some("a.example:80")
        );
        assert_eq!(
            host(&parts("http://b.example/x", Some("a.example"))).as_deref(),
            Some("b.example")
        );
        assert_eq!(
            host(&parts("http://u@c.example:8/", None)).as_deref(),
            Some("c.example:8")
        );
        assert_eq!(host(&parts("/x", None)), None);
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(is_idempotent(&m), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!is_idempotent(&m), "{m}");
        }
    }
}
