//! The W3C trace context across the hop: every request leaves the gateway with a
//! `traceparent` the worker continues, so that the gateway's access log line, the
//! worker's spans and the client's own trace (when it sent one) share one trace id.
//!
//! With traces exported and the request sampled (by the client's `traceparent` flag,
//! else by the ratio), the gateway's server span is the worker's parent: it continues
//! the client's trace (and its `tracestate`, passed on unchanged) or starts one.
//! Otherwise no span is made at all; the client's `traceparent` goes on as it came (the
//! gateway takes no part in the trace), or a random unsampled one is made up so that
//! the log lines of both processes still share an id and the worker makes no spans
//! either.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use shared::telemetry::{self, TRACE_TARGET, TraceParent};
use tracing::field::Empty;

/// `traceparent` (W3C Trace Context §3.2).
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context §3.3).
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// One request's place in its trace.
#[derive(Debug)]
pub(crate) struct RequestTrace {
    /// The gateway's server span; `None` when traces are not exported.
    pub(crate) span: Option<tracing::Span>,
    /// What the worker receives as `traceparent`.
    traceparent: TraceParent,
    /// Whether the client's `tracestate` goes on (only with a valid `traceparent`).
    keep_tracestate: bool,
    /// The trace id, 32 hex digits, for the access log.
    pub(crate) trace_id: String,
}

impl RequestTrace {
    /// Continues the client's trace context or starts one.
    pub(crate) fn begin(headers: &HeaderMap, method: &Method) -> Self {
        let incoming = headers
            .get(TRACEPARENT)
            .and_then(|v| TraceParent::parse(v.as_bytes()));
        let keep_tracestate = incoming.is_some();
        if !telemetry::should_trace(incoming.as_ref()) {
            let traceparent = incoming.unwrap_or_else(TraceParent::random);
            return Self {
                span: None,
                trace_id: traceparent.trace_id_hex(),
                traceparent,
                keep_tracestate,
            };
        }
        // The method only: a raw path may carry identifiers, and the gateway knows no
        // route templates (the worker's span names the route).
        let span = tracing::info_span!(
            target: TRACE_TARGET,
            "gateway",
            otel.name = method.as_str(),
            otel.kind = "server",
            http.request.method = method.as_str(),
            closedloop.region = Empty,
            closedloop.worker = Empty,
            http.response.status_code = Empty,
        );
        if let Some(parent) = &incoming {
            let state = headers.get(TRACESTATE).and_then(|v| v.to_str().ok());
            telemetry::set_remote_parent(&span, parent, state);
        }
        let traceparent = TraceParent::of_span(&span)
            .or(incoming)
            .unwrap_or_else(TraceParent::random);
        Self {
            span: Some(span),
            trace_id: traceparent.trace_id_hex(),
            traceparent,
            keep_tracestate,
        }
    }

    /// Sets the worker's `traceparent` (replacing the client's) and drops a
    /// `tracestate` whose `traceparent` was not usable, as the spec asks.
    pub(crate) fn stamp(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.traceparent.header()) {
            headers.insert(TRACEPARENT, value);
        }
        if !self.keep_tracestate {
            headers.remove(TRACESTATE);
        }
    }

    /// Records how the request ended on the gateway's span.
    pub(crate) fn finish(&self, status: StatusCode, region: &str, worker: &str) {
        let Some(span) = &self.span else { return };
        span.record("http.response.status_code", status.as_u16());
        span.record("closedloop.region", region);
        if !worker.is_empty() {
            span.record("closedloop.worker", worker);
        }
        if status.is_server_error() {
            telemetry::set_error(span, "upstream");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_passed_on_and_a_bad_one_replaced_without_its_tracestate() {
        let mut headers = HeaderMap::new();
        let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(client));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        let trace = RequestTrace::begin(&headers, &Method::GET);
        assert_eq!(trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut out = headers.clone();
        trace.stamp(&mut out);
        assert_eq!(out.get(TRACEPARENT).unwrap(), client);
        assert_eq!(out.get(TRACESTATE).unwrap(), "vendor=x");

        headers.insert(TRACEPARENT, HeaderValue::from_static("00-zz-bad-01"));
        let trace = RequestTrace::begin(&headers, &Method::GET);
        let mut out = headers.clone();
        trace.stamp(&mut out);
        let sent = TraceParent::parse(out.get(TRACEPARENT).unwrap().as_bytes()).unwrap();
        assert_eq!(sent.trace_id_hex(), trace.trace_id);
        assert!(out.get(TRACESTATE).is_none());
    }
}
