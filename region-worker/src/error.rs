//! Error policy. Handlers return their protocol's typed error, and each protocol renders
//! its errors in one place: SCIM the RFC 7644 body (`routes::scim::ScimFailure`), the
//! OAuth token endpoint and introspection the RFC 6749 §5.2 body
//! (`routes::oauth::error`), Universal Logout and the token API `{"error", "message"}`
//! ([`json_error`]), pages a page (`web::PageError`). Every renderer says "too many
//! requests" (`429`, `Retry-After`) with a variant of its own error type.
//!
//! A store failure takes one path whatever the protocol: [`store_unavailable`] logs the
//! cause (with the request id; never in a body), counts it in
//! [`worker_store_unavailable_total`](crate::metrics::STORE_UNAVAILABLE) by protocol,
//! and gives the `Retry-After` the renderer sends with its own `503` (Universal Logout:
//! `422`, the status Okta reads as "unable to log out").

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// Seconds a client should wait before retrying while a store is down.
pub const RETRY_AFTER_SECS: &str = "5";

/// The message of a `503` in the `{"error", "message"}` format: it names no store and
/// no cause.
pub const STORE_UNAVAILABLE_MESSAGE: &str = "a backing store is unavailable; retry shortly";

/// The protocol whose renderer answered a store outage: the `protocol` label of
/// [`crate::metrics::STORE_UNAVAILABLE`], so that a dashboard shows which clients the
/// outage reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SCIM 2.0 (Okta's provisioning).
    Scim,
    /// The SCIM OAuth server (token endpoint, authorize and consent).
    OAuth,
    /// RFC 7662 introspection by the product's API and MCP servers.
    Introspection,
    /// The token API and the endpoints personal tokens reach (`/api/me`, …).
    TokenApi,
    /// Okta's Universal Logout.
    UniversalLogout,
    /// The web pages of the app host and the sign-in flow.
    Pages,
    /// Any other JSON endpoint ([`ApiError`]).
    Api,
}

impl Protocol {
    /// Every protocol, in the order above.
    pub const ALL: [Protocol; 7] = [
        Protocol::Scim,
        Protocol::OAuth,
        Protocol::Introspection,
        Protocol::TokenApi,
        Protocol::UniversalLogout,
        Protocol::Pages,
        Protocol::Api,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Scim => "scim",
            Protocol::OAuth => "oauth",
            Protocol::Introspection => "introspection",
            Protocol::TokenApi => "token_api",
            Protocol::UniversalLogout => "universal_logout",
            Protocol::Pages => "pages",
            Protocol::Api => "api",
        }
    }
}

/// A store outage already logged and counted ([`store_unavailable`]), on its way into
/// a protocol's answer. It holds nothing of the cause, so a renderer cannot leak it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the answer must carry the Retry-After"]
pub struct StoreUnavailable {
    /// Who answered (for the renderer's own use, e.g. a test).
    pub protocol: Protocol,
}

impl StoreUnavailable {
    /// Seconds the client should wait before retrying.
    pub const RETRY_AFTER: u64 = 5;

    /// The seconds of `Retry-After`, for a renderer that sets the header itself.
    pub fn retry_after_secs(self) -> u64 {
        Self::RETRY_AFTER
    }

    /// Sets `Retry-After` on the protocol's answer.
    pub fn set_retry_after(self, headers: &mut HeaderMap) {
        set_retry_after(headers, Self::RETRY_AFTER);
    }
}

/// Sets `Retry-After` to whole `seconds`, at least 1 (RFC 9110 §10.2.3 wants an
/// integer, and 0 would invite an immediate retry): every protocol's `429` and `503`.
pub fn set_retry_after(headers: &mut HeaderMap, seconds: u64) {
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
}

/// The one path of a store failure, for every protocol's renderer: logs the cause,
/// counts `worker_store_unavailable_total{protocol}`, and returns what the answer must
/// carry ([`StoreUnavailable::set_retry_after`]). Call it once per answer.
pub fn store_unavailable(protocol: Protocol, error: &StoreError) -> StoreUnavailable {
    tracing::error!(error = %error, protocol = protocol.label(), "store unavailable");
    metrics::counter!(crate::metrics::STORE_UNAVAILABLE, "protocol" => protocol.label())
        .increment(1);
    StoreUnavailable { protocol }
}

/// An answer in the `{"error": code, "message": message}` format of the token API,
/// Universal Logout and the API host's other JSON errors.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

/// An error on a JSON endpoint outside the protocols with their own error types.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request's host is not one of this region's.
    #[error("host {0:?} is not served by this region")]
    Misdirected(String),
    /// Nothing here.
    #[error("{0}")]
    NotFound(&'static str),
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A store is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Misdirected(_) => (StatusCode::MISDIRECTED_REQUEST, "misdirected_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Store(e) => {
                let outage = store_unavailable(Protocol::Api, e);
                let mut response = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    STORE_UNAVAILABLE_MESSAGE,
                );
                outage.set_retry_after(response.headers_mut());
                return response;
            }
        };
        json_error(status, code, &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_failure_answers_503_with_retry_after_and_no_cause() {
        let e = StoreError::Corrupt("row 42 of tokens at 10.0.0.7".to_owned());
        let response = ApiError::Store(e).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_SECS);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({ "error": "temporarily_unavailable", "message": STORE_UNAVAILABLE_MESSAGE })
        );
        assert_eq!(
            RETRY_AFTER_SECS,
            StoreUnavailable::RETRY_AFTER.to_string().as_str()
        );
    }

    #[test]
    fn protocols_have_distinct_labels() {
        let all = Protocol::ALL;
        let labels: std::collections::BTreeSet<_> = all.iter().map(|p| p.label()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
