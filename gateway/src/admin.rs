//! The admin listener: `GET /healthz` for liveness probes and `GET /metrics` for
//! Prometheus. It lives on its own port, never the public one, so metrics are not
//! exposed to the internet.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;

/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers one admin request.
pub(crate) fn respond<B>(
    request: &Request<B>,
    metrics: &PrometheusHandle,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn routes_admin_paths() {
        let handle = crate::metrics::install();
        assert_eq!(respond(&get("/healthz"), &handle).status(), StatusCode::OK);
        let metrics = respond(&get("/metrics"), &handle);
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(metrics.headers()[CONTENT_TYPE], PROMETHEUS_TEXT);
        assert_eq!(
            respond(&get("/nope"), &handle).status(),
            StatusCode::NOT_FOUND
        );
        let post = Request::post("/healthz").body(()).unwrap();
        assert_eq!(
            respond(&post, &handle).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
