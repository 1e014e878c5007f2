//! Personal API and MCP tokens, as their owners manage them and as the product's
//! protected endpoints accept them.
//!
//! - On the app host, [`page`] serves `/tokens`: a signed-in user lists, creates (the
//!   secret shown once) and revokes tokens; forms carry a CSRF token ([`crate::web::csrf`]).
//! - On the API host, [`api`] serves the same as JSON under `/api/tokens`, authenticated
//!   with a personal API token as a bearer (the first token is made on the page).
//! - [`auth`] authenticates a bearer personal token for those routes and for
//!   `routes::me`, and records its last use at most once a minute.
//!
//! Errors on the JSON routes are [`TokenApiError`], rendered once here as
//! `{"error", "message"}` ([`crate::error::json_error`]); a `401` carries
//! `WWW-Authenticate: Bearer` (RFC 6750 §3), a `429` and a `503` `Retry-After`.

pub mod api;
pub mod auth;
pub mod page;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{
    Protocol, STORE_UNAVAILABLE_MESSAGE, json_error, set_retry_after, store_unavailable,
};
use crate::store::StoreError;
use crate::store::personal_tokens::TokenSummary;

/// An error on a bearer-authenticated JSON route.
#[derive(Debug, thiserror::Error)]
pub enum TokenApiError {
    /// No bearer token, not one of ours, revoked, expired, of the wrong kind, or its
    /// user was logged out.
    #[error("a valid bearer token of this region is required")]
    Unauthenticated {
        /// The kind of token the route takes (`api`, `mcp`), for `WWW-Authenticate`.
        kind: &'static str,
    },
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(&'static str),
    /// No such token of the caller's.
    #[error("no such token")]
    NotFound,
    /// The body is over the endpoint's limit.
    #[error("the request body is too large")]
    TooLarge,
    /// The caller holds as many live tokens as allowed.
    #[error("too many live tokens: revoke some first")]
    TooMany,
    /// `429`: this client's refused credentials emptied its bucket, so its requests are
    /// turned away before any lookup ([`crate::failed_auth`]) until `retry_after`.
    #[error("too many requests with invalid credentials from this client; retry later")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A store is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for TokenApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            TokenApiError::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, "invalid_token"),
            TokenApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            TokenApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            TokenApiError::TooMany => (StatusCode::CONFLICT, "too_many_tokens"),
            TokenApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            TokenApiError::RateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            TokenApiError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        };
        let message = match &self {
            TokenApiError::Store(_) => STORE_UNAVAILABLE_MESSAGE.to_owned(),
            other => other.to_string(),
        };
        let mut response = json_error(status, code, &message);
        let headers = response.headers_mut();
        match self {
            TokenApiError::Unauthenticated { kind } => {
                let challenge =
                    format!("Bearer realm=\"closedloop {kind} token\", error=\"invalid_token\"");
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            TokenApiError::RateLimited { retry_after } => {
                set_retry_after(headers, retry_after);
            }
            TokenApiError::Store(e) => {
                store_unavailable(Protocol::TokenApi, &e).set_retry_after(headers);
            }
            _ => {}
        }
        response
    }
}

/// RFC 3339, or `null`.
fn rfc3339(t: Option<OffsetDateTime>) -> serde_json::Value {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// A token as the JSON API shows it (never its secret).
pub fn summary_json(t: &TokenSummary) -> serde_json::Value {
    json!({
        "id": t.id,
        "name": t.name,
        "kind": t.kind.code(),
        "created_at": rfc3339(Some(t.created_at)),
        "last_used_at": rfc3339(t.last_used_at),
        "expires_at": rfc3339(t.expires_at),
    })
}
