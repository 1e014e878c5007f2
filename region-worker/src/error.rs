//! Error policy. Handlers return typed errors; this module renders the JSON ones in one
//! place. A store failure is `503` with `Retry-After` and a body that names no internal
//! detail (the cause goes to the log with the request id). SCIM routes render their
//! own error body (`scim::ScimResponse`), OAuth routes theirs; pages render a page.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// Seconds a client should wait before retrying while a store is down.
pub const RETRY_AFTER_SECS: &str = "5";

/// An error on a JSON endpoint.
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

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Misdirected(_) => (StatusCode::MISDIRECTED_REQUEST, "misdirected_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store unavailable");
                "a backing store is unavailable; retry shortly".to_owned()
            }
            other => other.to_string(),
        };
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}
