//! Client authentication at the token endpoint: `client_secret_basic` (RFC 6749
//! §2.3.1, credentials form-encoded then base64) and `client_secret_post`; which one
//! Okta uses is unconfirmed (OKTA.md §6), so both work, but not both at once. The secret
//! is compared by hash in constant time. The header is read by [`crate::auth_header`],
//! which also tries each part form-decoded.

use axum::http::HeaderMap;

use super::error::OAuthError;
use super::params::Params;
use crate::auth_header::{self, BasicError};
use crate::config::ScimOAuthConfig;

impl From<BasicError> for OAuthError {
    fn from(e: BasicError) -> Self {
        match e {
            BasicError::Repeated => OAuthError::InvalidRequest("send one Authorization header"),
            BasicError::Malformed => OAuthError::InvalidClient("malformed HTTP Basic credentials"),
        }
    }
}

/// Authenticates the client, or says why not.
pub fn authenticate(
    server: &ScimOAuthConfig,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(), OAuthError> {
    let failed = || OAuthError::InvalidClient("client authentication failed");
    let posted_id = params.get("client_id")?;
    let posted_secret = params.get("client_secret")?;
    match (auth_header::basic(headers)?, posted_secret) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two",
        )),
        (Some(b), None) => {
            if posted_id.is_some_and(|p| !b.id.is(p)) {
                return Err(OAuthError::InvalidRequest(
                    "client_id differs from the authenticated client",
                ));
            }
            let secret_ok = b.secret.forms().any(|s| server.secret_matches(s));
            if b.id.is(&server.client_id) && secret_ok {
                Ok(())
            } else {
                Err(failed())
            }
        }
        (None, Some(secret)) => {
            if posted_id == Some(server.client_id.as_str()) && server.secret_matches(secret) {
                Ok(())
            } else {
                Err(failed())
            }
        }
        (None, None) => Err(OAuthError::InvalidClient(
            "client authentication is required (HTTP Basic or client_secret_post)",
        )),
    }
}
