//! One request's way through the gateway: find the region by host, rewrite the headers,
//! forward to a worker of that region under the upstream deadline (retrying on another
//! replica only when the request never reached a worker and resending it is safe), then
//! answer, count and log.
//!
//! Bodies are never read here: the client's `Incoming` body is what the upstream client
//! sends, and the worker's `Incoming` body is what the client receives.

use std::time::{Duration, Instant};

use http::request::Parts;
use http::uri::{self, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header::HOST};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{ResponseBody, UpstreamBody};
use crate::config::GatewayConfig;
use crate::error::{Chain, ProxyError, UpstreamErrorKind};
use crate::headers::{ClientInfo, prepare_upstream, strip_hop_by_hop};
use crate::metrics::RegionMetrics;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::routing::{Routes, RoutesError, Upstreams, Worker};

/// The proxy: the routing table, the pooled upstream client and the deadline. Built once
/// and shared by every connection.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Host → region → workers, precomputed at start.
    routes: Routes,
    /// Pooled HTTP/1.1 keep-alive client to the workers. Cheap to share: it is a handle
    /// to one pool.
    client: Client<HttpConnector, UpstreamBody>,
    /// Deadline for a worker's response head; see [`GatewayConfig::upstream_timeout`].
    upstream_timeout: Duration,
    /// Metrics of requests that no region serves (`region="none"`).
    unrouted: RegionMetrics,
}

/// What the access log and the metrics need about a finished request.
struct Exchange<'a> {
    /// When the request arrived, for `duration_us` and the latency histogram.
    started: Instant,
    /// Ties the log line to the worker's and to the client's `X-Request-Id`.
    request_id: &'a RequestId,
    /// The client's method.
    method: &'a Method,
    /// The path only: the query string may carry codes or tokens and is never logged.
    path: &'a str,
    /// The host the request was for, as the client sent it.
    host: Option<&'a HeaderValue>,
    /// The region's upstreams; `None` when no region serves the host.
    upstreams: Option<&'a Upstreams>,
    /// The last worker tried, if any.
    worker: Option<&'a Worker>,
}

impl Proxy {
    /// Builds the routing table and the upstream client.
    pub(crate) fn new(config: &GatewayConfig) -> Result<Self, RoutesError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.upstream_connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // We always set `Host` ourselves, to the host the request was routed by.
            .set_host(false)
            .build(connector);
        Ok(Self {
            routes: Routes::new(&config.map)?,
            client,
            upstream_timeout: config.upstream_timeout,
            unrouted: RegionMetrics::unrouted(),
        })
    }

    /// Answers one client request. Never fails: the gateway's own failures become JSON
    /// error responses.
    pub(crate) async fn handle(
        &self,
        client: &ClientInfo,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        let request_id = RequestId::from_headers(&parts.headers);
        let host = request_host(&parts);
        let version = parts.version;
        let method = parts.method.clone();
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut exchange = Exchange {
            started,
            request_id: &request_id,
            method: &method,
            path: path_and_query.path(),
            host: host.as_ref(),
            upstreams: None,
            worker: None,
        };

        let routed = host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(|h| self.routes.route(h));
        let (Some(upstreams), Some(host)) = (routed, host.as_ref()) else {
            let host = host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned);
            let response = ProxyError::Misdirected { host }.to_response();
            return self.finish(response, &exchange);
        };
        exchange.upstreams = Some(upstreams);
        if method == Method::CONNECT {
            return self.finish(ProxyError::ConnectMethod.to_response(), &exchange);
        }

        prepare_upstream(&mut parts.headers, host, client);
        parts
            .headers
            .insert(X_REQUEST_ID, request_id.header_value().clone());
        let outgoing = Outgoing {
            method: parts.method,
            path_and_query: path_and_query.clone(),
            headers: parts.headers,
        };

        let mut tried = None;
        let forwarded = tokio::time::timeout(
            self.upstream_timeout,
            self.forward(upstreams, outgoing, body, &request_id, &mut tried),
        )
        .await
        .unwrap_or(Err(ProxyError::Timeout(self.upstream_timeout)));
        exchange.worker = tried;

        let response = match forwarded {
            Ok(response) => relay(response, version),
            Err(err) => upstream_failed(&err, upstreams, &exchange),
        };
        self.finish(response, &exchange)
    }

    /// Sends the request to the region's workers in the balancer's order. Every attempt
    /// but the last may be retried, and only when the request is safe to resend: it is
    /// idempotent or has no body (and its body, if any, comes back untouched). A retry
    /// happens only after a connect failure, when the request provably reached no worker.
    async fn forward<'s>(
        &'s self,
        upstreams: &'s Upstreams,
        outgoing: Outgoing,
        body: Incoming,
        request_id: &RequestId,
        tried: &mut Option<&'s Worker>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let mut candidates = upstreams.candidates();
        let n = candidates.len();
        let empty = body.is_end_stream();
        let mut body = if n > 1 && (empty || is_idempotent(&outgoing.method)) {
            (!empty).then_some(body)
        } else {
            // Not retryable: one attempt, the body streams straight through.
            let worker = candidates.next().expect("a region has at least one worker");
            *tried = Some(worker);
            let request = outgoing.into_request(worker, UpstreamBody::streaming(body));
            return self
                .client
                .request(request)
                .await
                .map_err(ProxyError::from_client);
        };

        for worker in candidates.by_ref().take(n - 1) {
            *tried = Some(worker);
            let (upstream_body, giveback) = match body.take() {
                Some(body) => {
                    let (body, giveback) = UpstreamBody::returnable(body);
                    (body, Some(giveback))
                }
                None => (UpstreamBody::empty(), None),
            };
            let err = match self
                .client
                .request(outgoing.to_request(worker, upstream_body))
                .await
            {
                Ok(response) => return Ok(response),
                Err(err) if err.is_connect() => err,
                Err(err) => return Err(ProxyError::from_client(err)),
            };
            upstreams.metrics.upstream_error(UpstreamErrorKind::Connect);
            tracing::warn!(
                request_id = request_id.as_str(),
                region = upstreams.region.as_str(),
                worker = &*worker.addr,
                error = %Chain(&err),
                "worker unreachable; retrying on another replica"
            );
            if let Some(mut giveback) = giveback {
                // The client drops the request before reporting a connect failure, so an
                // unread body is already back; if it is not, it may have been sent.
                match giveback.try_recv() {
                    Ok(returned) => body = Some(returned),
                    Err(_) => return Err(ProxyError::Connect(err)),
                }
            }
        }

        let worker = candidates.next().expect("n > 1 candidates, n - 1 taken");
        *tried = Some(worker);
        let body = body.map_or_else(UpstreamBody::empty, UpstreamBody::streaming);
        let request = outgoing.into_request(worker, body);
        self.client
            .request(request)
            .await
            .map_err(ProxyError::from_client)
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
        tracing::info!(
            target: "gateway::access",
            method = %exchange.method,
            path = exchange.path,
            host = exchange.host.and_then(|h| h.to_str().ok()).unwrap_or(""),
            region = exchange.upstreams.map_or("none", |u| u.region.as_str()),
            worker = exchange.worker.map_or("", |w| &*w.addr),
            status = status.as_u16(),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            request_id = exchange.request_id.as_str(),
        );
        response
    }
}

/// Turns a worker's response into the client's: the body streams through, hop-by-hop
/// headers go, and the version is the one the client spoke.
fn relay(response: Response<Incoming>, version: Version) -> Response<ResponseBody> {
    let mut response = response.map(ResponseBody::Upstream);
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
    if let Some(kind) = err.upstream_kind() {
        upstreams.metrics.upstream_error(kind);
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
    /// A request to `worker`, copying the parts (for an attempt that may be retried).
    /// The copy (one header map) is the price of being able to retry: the upstream
    /// client consumes the request even when it never reaches a worker. It is paid only
    /// when a retry is allowed and another replica exists.
    fn to_request(&self, worker: &Worker, body: UpstreamBody) -> Request<UpstreamBody> {
        build_request(
            self.method.clone(),
            self.path_and_query.clone(),
            self.headers.clone(),
            worker,
            body,
        )
    }

    /// A request to `worker`, moving the parts (for the final attempt).
    fn into_request(self, worker: &Worker, body: UpstreamBody) -> Request<UpstreamBody> {
        build_request(self.method, self.path_and_query, self.headers, worker, body)
    }
}

fn build_request(
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    worker: &Worker,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let mut uri = uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(worker.authority.clone());
    uri.path_and_query = Some(path_and_query);
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from_parts(uri).expect("scheme, authority and path form a URI");
    *request.headers_mut() = headers;
    // `Request::new` is HTTP/1.1, the upstream protocol, whatever the client spoke.
    request
}

/// The host a request is for: the URI's authority when present (HTTP/2 `:authority`,
/// or an HTTP/1.1 absolute-form target, which RFC 9112 §3.2.2 says wins over `Host`),
/// else the `Host` header.
fn request_host(parts: &Parts) -> Option<HeaderValue> {
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
