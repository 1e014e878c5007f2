//! The worker's spans (issue 19), made only while traces are exported
//! ([`shared::telemetry::tracing_on`]): with traces off, each place below costs one
//! relaxed load and makes no span.
//!
//! - [`trace_route`]: the server span of a request, named by the matched route template
//!   (never the raw path), continuing the gateway's `traceparent`; for SCIM routes a
//!   child span for the SCIM operation.
//! - [`record_team`]: the workspace on the request's span, for routes that find it
//!   other than by a `{team_id}` path parameter.
//! - Postgres statements: `store/pg/traced.rs` wraps the pool and the connections and
//!   transactions it hands out; each statement is a span named by its verb and table
//!   ("SELECT users", never its text or parameters), and the wait for a connection a
//!   `postgres checkout` span.
//! - Redis commands: `store/redis.rs` wraps the connection it hands out; Okta calls:
//!   `okta/http.rs` spans each request.
//!
//! Attributes name the region, the workspace (`closedloop.team_id`), the status and an
//! error kind; never a token, secret, cookie, email address, query string, path or a
//! statement's parameters.

use axum::extract::{FromRequestParts as _, MatchedPath, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::{Method, StatusCode};
use shared::telemetry::{self, TRACE_TARGET, TraceParent};
use tracing::Instrument as _;
use tracing::field::Empty;

/// Middleware (a `route_layer`, so the route is matched): the request's server span.
/// With traces off it only loads one flag; a request its caller did not sample (or, at
/// the start of a trace, the ratio did not pick) gets no span either.
pub async fn trace_route(req: Request, next: Next) -> Response {
    if !telemetry::tracing_on() {
        return next.run(req).await;
    }
    let parent = req
        .headers()
        .get("traceparent")
        .and_then(|v| TraceParent::parse(v.as_bytes()));
    if !telemetry::should_trace(parent.as_ref()) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &()).await;
    let req = Request::from_parts(parts, body);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let team_id = params.ok().and_then(|params| {
        params
            .iter()
            .find(|(name, _)| *name == "team_id")
            .and_then(|(_, value)| uuid::Uuid::parse_str(value).ok())
    });
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok());
    let span = tracing::info_span!(
        target: TRACE_TARGET,
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.route = route.as_str(),
        http.request.method = method.as_str(),
        closedloop.region = telemetry::region(),
        closedloop.team_id = Empty,
        request_id = request_id.map(|r| r.to_string()),
        http.response.status_code = Empty,
    );
    if let Some(team_id) = team_id {
        span.record("closedloop.team_id", team_id.to_string());
    }
    if let Some(parent) = &parent {
        let state = req
            .headers()
            .get("tracestate")
            .and_then(|v| v.to_str().ok());
        telemetry::set_remote_parent(&span, parent, state);
    }
    let response = match scim_operation(&method, &route) {
        Some((operation, resource)) => {
            let scim = tracing::info_span!(
                target: TRACE_TARGET,
                parent: &span,
                "scim",
                otel.name = format!("SCIM {operation} {resource}"),
                scim.operation = operation,
                scim.resource = resource,
                closedloop.team_id = team_id.map(|t| t.to_string()),
                http.response.status_code = Empty,
            );
            let response = REQUEST_SPAN
                .scope(span.clone(), next.run(req).instrument(scim.clone()))
                .await;
            finish(&scim, response.status());
            response
        }
        None => {
            REQUEST_SPAN
                .scope(span.clone(), next.run(req).instrument(span.clone()))
                .await
        }
    };
    finish(&span, response.status());
    response
}

/// Records the status and, for a refusal or failure, its kind.
fn finish(span: &tracing::Span, status: StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if let Some(kind) = error_kind(status) {
        if status.is_server_error() {
            telemetry::set_error(span, kind);
        } else {
            telemetry::set_attribute(span, "error.type", kind);
        }
    }
}

/// The error kind of a status, in the words of the metrics' `result` label.
fn error_kind(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        0..=399 => return None,
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        429 => "rate_limited",
        400..=499 => "client_error",
        503 => "unavailable",
        _ => "server_error",
    })
}

/// The SCIM operation and resource type of a SCIM route, from its template.
fn scim_operation(method: &Method, route: &str) -> Option<(&'static str, &'static str)> {
    let (_, rest) = route.split_once("/scim/v2/")?;
    let resource = if rest.contains("/Users") {
        "User"
    } else if rest.contains("/Groups") {
        "Group"
    } else if rest.contains("/Roles") {
        "Role"
    } else if rest.contains("/Bulk") {
        "Bulk"
    } else {
        "Discovery"
    };
    let one = route.ends_with('}');
    let operation = match *method {
        Method::GET if one => "get",
        Method::GET => "list",
        Method::POST if route.ends_with("/.search") => "search",
        Method::POST => "create",
        Method::PUT => "replace",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    Some((operation, resource))
}

tokio::task_local! {
    /// The server span of the request this task serves, while it is traced: where
    /// [`record_team`] writes the workspace once a handler has found it.
    static REQUEST_SPAN: tracing::Span;
}

/// Records the request's workspace on its server span (`closedloop.team_id`), for
/// routes that find it other than by a `{team_id}` path parameter: the sign-in gate,
/// bearer-token checks, Universal Logout, the OIDC login and callback. With traces
/// off it costs one relaxed load; outside a traced request it does nothing.
pub fn record_team(team_id: shared::ids::TeamId) {
    if !telemetry::tracing_on() {
        return;
    }
    let _ = REQUEST_SPAN.try_with(|span| {
        span.record("closedloop.team_id", team_id.to_string());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_routes_name_their_operation() {
        let users = "/api/scim/v2/{team_id}/Users";
        let user = "/api/scim/v2/{team_id}/Users/{id}";
        assert_eq!(
            scim_operation(&Method::POST, users),
            Some(("create", "User"))
        );
        assert_eq!(scim_operation(&Method::GET, users), Some(("list", "User")));
        assert_eq!(scim_operation(&Method::GET, user), Some(("get", "User")));
        assert_eq!(
            scim_operation(&Method::PATCH, user),
            Some(("patch", "User"))
        );
        assert_eq!(
            scim_operation(&Method::DELETE, "/api/scim/v2/{team_id}/Groups/{id}"),
            Some(("delete", "Group"))
        );
        assert_eq!(scim_operation(&Method::GET, "/api/v1/me"), None);
    }

    #[test]
    fn refusals_and_failures_have_a_kind() {
        assert_eq!(error_kind(StatusCode::OK), None);
        assert_eq!(error_kind(StatusCode::UNAUTHORIZED), Some("unauthorized"));
        assert_eq!(error_kind(StatusCode::BAD_REQUEST), Some("client_error"));
        assert_eq!(
            error_kind(StatusCode::INTERNAL_SERVER_ERROR),
            Some("server_error")
        );
    }
}
