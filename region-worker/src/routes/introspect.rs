//! `POST /api/tokens/introspect` (RFC 7662): the product's API and MCP servers ask
//! whether a personal token is active, authenticating with the region's service
//! credential (`[regions.<id>.introspection]`) in HTTP Basic (§2.1), the secret compared
//! by hash in constant time.
//!
//! The request is a form with `token` (and an optional `token_type_hint`, ignored: the
//! token's prefix says its kind). An active API or MCP token answers `active: true`
//! with its user (`sub`, `user_id`), workspace (`team_id`), `kind` and expiry (`exp`);
//! anything else, including another region's token, a revoked one or one whose user
//! was logged out, answers `{"active": false}` and nothing more (§2.2). The check is
//! the same one-round-trip check the protected endpoints use, and it records the
//! token's last use.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth_header;
use crate::body::BodyError;
use crate::config::IntrospectionConfig;
use crate::error::{Protocol, set_retry_after, store_unavailable};
use crate::rate_limit::{self, ClientIp};
use crate::routes::oauth;
use crate::routes::tokens::auth;
use crate::state::AppState;

/// Why an introspection request was refused. Every refusal answers in one shape, RFC
/// 6749 §5.2's `{"error", "error_description"}` with `no-store` (RFC 7662 §2.3 points
/// there), through the OAuth renderer ([`oauth::error::json_error`]).
#[derive(Debug, thiserror::Error)]
pub enum IntrospectError {
    /// The region has no introspection credential configured.
    #[error("token introspection is not configured in this region")]
    NotConfigured,
    /// Missing or wrong client credentials.
    #[error("client authentication failed")]
    InvalidClient,
    /// The form is malformed or lacks `token`.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The body is over the endpoint's limit.
    #[error("the request body is too large")]
    TooLarge,
    /// The client's failed attempts emptied its bucket (`429`, with `Retry-After`).
    #[error("too many requests from this client; retry later")]
    TooManyRequests {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A store is unavailable.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl IntoResponse for IntrospectError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            IntrospectError::NotConfigured => (StatusCode::NOT_FOUND, "not_found"),
            IntrospectError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            IntrospectError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            IntrospectError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
            IntrospectError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            IntrospectError::Store(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
        };
        let description = match &self {
            IntrospectError::Store(_) => oauth::error::STORE_UNAVAILABLE_DESCRIPTION.to_owned(),
            other => other.to_string(),
        };
        let mut response = oauth::error::json_error(status, code, &description);
        let headers = response.headers_mut();
        match self {
            IntrospectError::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"closedloop token introspection\""),
                );
            }
            IntrospectError::TooManyRequests { retry_after } => {
                set_retry_after(headers, retry_after);
            }
            IntrospectError::Store(e) => {
                store_unavailable(Protocol::Introspection, &e).set_retry_after(headers);
            }
            _ => {}
        }
        response
    }
}

/// Whether the request's HTTP Basic credentials are the region's introspection
/// credential, each part as sent or form-decoded ([`auth_header::basic`]).
fn authenticate(config: &IntrospectionConfig, headers: &HeaderMap) -> bool {
    let Ok(Some(b)) = auth_header::basic(headers) else {
        return false;
    };
    b.id.forms()
        .any(|id| b.secret.forms().any(|secret| config.matches(id, secret)))
}

/// The `token` parameter of the form; each parameter at most once (RFC 6749 §3.2).
fn token_param(body: &[u8]) -> Result<String, IntrospectError> {
    let mut token = None;
    let mut hint = false;
    for (k, v) in url::form_urlencoded::parse(body) {
        let seen = match k.as_ref() {
            "token" => token.replace(v.into_owned()).is_some(),
            "token_type_hint" => std::mem::replace(&mut hint, true),
            _ => false,
        };
        if seen {
            return Err(IntrospectError::InvalidRequest(
                "each parameter may be sent once",
            ));
        }
    }
    token
        .filter(|t| !t.is_empty())
        .ok_or(IntrospectError::InvalidRequest(
            "the token parameter is required",
        ))
}

/// `POST /api/tokens/introspect`.
pub async fn introspect(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntrospectError> {
    let body = crate::body::read_limited(body, crate::body::MAX_SMALL_BODY)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => IntrospectError::TooLarge,
            BodyError::Unreadable => IntrospectError::InvalidRequest("the body could not be read"),
        })?;
    let config = state
        .config
        .introspection
        .as_ref()
        .ok_or(IntrospectError::NotConfigured)?;
    if !authenticate(config, &headers) {
        // Only failed attempts count: the product's API servers introspect at high
        // rates from few addresses, and a guess of the (32+ character) secret is what
        // the limit slows down.
        if let Some(wait) = rate_limit::take_for_client(&state, "introspect", &client).await {
            return Err(IntrospectError::TooManyRequests { retry_after: wait });
        }
        return Err(IntrospectError::InvalidClient);
    }
    let presented = token_param(&body)?;
    let inactive = || {
        let mut r = Json(json!({ "active": false })).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    let Some(kind) = auth::kind_of(&state, &presented) else {
        return Ok(inactive());
    };
    let checked = auth::check(&state, &presented, kind).await?;
    let outcome = if checked.is_some() {
        "active"
    } else {
        "inactive"
    };
    metrics::counter!(crate::metrics::TOKEN_CHECKS, "kind" => kind.code(), "outcome" => outcome)
        .increment(1);
    let Some((owner, record)) = checked else {
        return Ok(inactive());
    };
    let mut response = Json(json!({
        "active": true,
        "token_type": "Bearer",
        "kind": kind.code(),
        "sub": owner.user_id,
        "user_id": owner.user_id,
        "team_id": record.team_id,
        "region": state.config.region_id(),
        "exp": record.expires_at,
        "iss": state.config.region.api_base(),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_parameter_once() {
        assert_eq!(token_param(b"token=abc").unwrap(), "abc");
        assert_eq!(
            token_param(b"token=a%2Bb&token_type_hint=access_token").unwrap(),
            "a+b"
        );
        assert!(token_param(b"").is_err());
        assert!(token_param(b"token=").is_err());
        assert!(token_param(b"token=a&token=b").is_err());
        assert!(token_param(b"token=a&token_type_hint=x&token_type_hint=y").is_err());
    }

    /// Every refusal, a store outage and the rate limit included, answers RFC 6749
    /// §5.2's shape with `no-store`.
    #[tokio::test]
    async fn every_error_has_one_shape() {
        let errors = [
            (IntrospectError::NotConfigured, 404, None),
            (IntrospectError::InvalidClient, 401, None),
            (IntrospectError::InvalidRequest("x"), 400, None),
            (IntrospectError::TooLarge, 413, None),
            (
                IntrospectError::TooManyRequests { retry_after: 7 },
                429,
                Some("7"),
            ),
            (
                IntrospectError::Store(crate::store::StoreError::Timeout),
                503,
                Some(crate::error::RETRY_AFTER_SECS),
            ),
        ];
        for (error, status, retry_after) in errors {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            let headers = response.headers().clone();
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            assert_eq!(
                headers
                    .get(header::RETRY_AFTER)
                    .map(|v| v.to_str().unwrap()),
                retry_after
            );
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys, ["error", "error_description"], "{status}");
        }
    }
}
