//! How the SCIM OAuth server says no. Three audiences:
//! - the client at the token endpoint: [`OAuthError`], RFC 6749 §5.2 JSON, rendered here
//!   and nowhere else;
//! - the client after `/authorize` accepted its redirect URI: [`redirect_to_client`]
//!   with `error` and `state` (RFC 6749 §4.1.2.1);
//! - a person in a browser, before the redirect URI is trusted or on the app host: a
//!   page that explains, never a redirect.
//!
//! Store failures are `503` with `Retry-After` ([`crate::error::store_unavailable`]);
//! nothing internal reaches a body, and no token, code, secret or `Authorization` header
//! reaches a log line. Introspection answers its errors with [`json_error`] too.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use crate::error::Protocol;
use crate::store::StoreError;
use crate::web::layout::error_page;

/// The realm named in `WWW-Authenticate` when client authentication fails.
pub const REALM: &str = "Basic realm=\"ClosedLoop SCIM OAuth\", charset=\"UTF-8\"";

/// An error at the token endpoint. Descriptions are fixed text: they never echo input.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A parameter is missing, repeated or malformed, or the request is not a form.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The client is unknown or its secret is wrong (`401` with `WWW-Authenticate`).
    #[error("{0}")]
    InvalidClient(&'static str),
    /// The code or refresh token is invalid, expired, used, revoked, or bound to
    /// something else (client, redirect URI, PKCE verifier).
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// An unknown scope, or a refresh asking for more than the grant holds.
    #[error("{0}")]
    InvalidScope(&'static str),
    /// A grant type other than `authorization_code` and `refresh_token`.
    #[error("{0}")]
    UnsupportedGrantType(&'static str),
    /// The body is over the endpoint's limit (`413`).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The client's refused requests emptied its bucket (`429`, with `Retry-After`).
    #[error("too many requests from this client; retry later")]
    TooManyRequests {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// This region's map has no `scim_oauth` table.
    #[error("the SCIM OAuth server is not configured in this region")]
    NotConfigured,
    /// A store is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OAuthError {
    /// The RFC 6749 error code and HTTP status.
    fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            OAuthError::InvalidRequest(_) => ("invalid_request", StatusCode::BAD_REQUEST),
            OAuthError::InvalidClient(_) => ("invalid_client", StatusCode::UNAUTHORIZED),
            OAuthError::InvalidGrant(_) => ("invalid_grant", StatusCode::BAD_REQUEST),
            OAuthError::InvalidScope(_) => ("invalid_scope", StatusCode::BAD_REQUEST),
            OAuthError::PayloadTooLarge => ("invalid_request", StatusCode::PAYLOAD_TOO_LARGE),
            OAuthError::TooManyRequests { .. } => {
                ("too_many_requests", StatusCode::TOO_MANY_REQUESTS)
            }
            OAuthError::UnsupportedGrantType(_) => {
                ("unsupported_grant_type", StatusCode::BAD_REQUEST)
            }
            OAuthError::NotConfigured | OAuthError::Store(_) => {
                ("temporarily_unavailable", StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }
}

impl From<super::params::Repeated> for OAuthError {
    fn from(_: super::params::Repeated) -> Self {
        OAuthError::InvalidRequest("a parameter is repeated")
    }
}

impl From<tokio_postgres::Error> for OAuthError {
    fn from(e: tokio_postgres::Error) -> Self {
        OAuthError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for OAuthError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        OAuthError::Store(e.into())
    }
}

impl OAuthError {
    /// Whether the client is to blame (a `4xx`), as opposed to this server.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, OAuthError::NotConfigured | OAuthError::Store(_))
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let outage = match &self {
            OAuthError::Store(e) => Some(crate::error::store_unavailable(Protocol::OAuth, e)),
            other => {
                tracing::info!(error = code, reason = %other, "token request refused");
                None
            }
        };
        let description = match &self {
            OAuthError::Store(_) => STORE_UNAVAILABLE_DESCRIPTION.to_owned(),
            other => other.to_string(),
        };
        let mut response = json_error(status, code, &description);
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        if let Some(outage) = outage {
            outage.set_retry_after(headers);
        }
        if let OAuthError::TooManyRequests { retry_after } = self {
            crate::error::set_retry_after(headers, retry_after);
        }
        response
    }
}

/// The `error_description` of a `503` for a store outage: it names no store and no
/// cause.
pub const STORE_UNAVAILABLE_DESCRIPTION: &str = "A backing store is unavailable; retry shortly.";

/// An error answer in the RFC 6749 §5.2 format, `{"error", "error_description"}`, not
/// to be cached (§5.1): the one renderer of the token endpoint's errors and of
/// introspection's (RFC 7662 §2.3 answers as §5.2 does).
pub fn json_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response();
    no_store(response.headers_mut());
    response
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1): token responses
/// and redirects carrying codes must not be cached anywhere.
pub fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Redirects the browser to the (already validated) `redirect_uri` with `params` added
/// to its query: the code and state on success, `error` and state otherwise.
pub fn redirect_to_client(redirect_uri: &str, params: &[(&str, Option<&str>)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        // Unreachable for a URI that matched the allow-list; refuse rather than guess.
        return invalid_redirect_page();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            if let Some(v) = value {
                query.append_pair(name, v);
            }
        }
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    no_store(response.headers_mut());
    response
}

/// An error sent back to the client per RFC 6749 §4.1.2.1.
pub fn error_to_client(
    redirect_uri: &str,
    state: Option<&str>,
    error: &'static str,
    description: &'static str,
) -> Response {
    redirect_to_client(
        redirect_uri,
        &[
            ("error", Some(error)),
            ("error_description", Some(description)),
            ("state", state),
        ],
    )
}

/// The page for a request whose client is not ours: nothing is redirected.
pub fn invalid_client_page() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Unknown application",
        "The application that sent you here is not registered with ClosedLoop AI in this \
         region, so it cannot be authorized. Check the authorize URL configured in Okta \
         (the seed's Step 5) and start again from Okta.",
    )
}

/// The page for a redirect URI that is missing or not allowed: nothing is redirected.
pub fn invalid_redirect_page() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Invalid redirect address",
        "The address this request asks to return to is missing or is not an Okta \
         provisioning callback, so ClosedLoop AI will not send anything there. Start again \
         from the Provisioning tab of the ClosedLoop AI app in Okta.",
    )
}

/// The page when the region has no SCIM OAuth server configured.
pub fn not_configured_page() -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Okta provisioning is not available",
        "The SCIM OAuth server is not configured in this region. Operators: add a \
         [regions.<id>.scim_oauth] table to regions.toml (see the README).",
    )
}
