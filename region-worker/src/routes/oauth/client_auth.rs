//! Client authentication at the token endpoint: `client_secret_basic` (RFC 6749
//! §2.3.1, credentials form-encoded then base64) and `client_secret_post`; which one
//! Okta uses is unconfirmed (OKTA.md §6), so both work, but not both at once. The secret
//! is compared by hash in constant time.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use super::error::OAuthError;
use super::params::Params;
use crate::config::ScimOAuthConfig;

/// Credentials from an `Authorization: Basic` header, as sent.
struct Basic {
    id: String,
    secret: String,
}

/// The `Basic` credentials of the request, if it sends any. Other schemes are not
/// client authentication here and are ignored.
fn basic(headers: &HeaderMap) -> Result<Option<Basic>, OAuthError> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(OAuthError::InvalidRequest("send one Authorization header"));
    }
    let malformed = || OAuthError::InvalidClient("malformed HTTP Basic credentials");
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let encoded = encoded.trim();
    let bytes = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    Ok(Some(Basic {
        id: id.to_owned(),
        secret: secret.to_owned(),
    }))
}

/// Form-decoding of a Basic credential part (RFC 6749 §2.3.1). Many clients skip the
/// encoding, so callers accept the raw text as well.
fn form_decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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
    match (basic(headers)?, posted_secret) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two",
        )),
        (Some(b), None) => {
            let ids = [b.id.clone(), form_decoded(&b.id)];
            if posted_id.is_some_and(|p| !ids.iter().any(|i| i == p)) {
                return Err(OAuthError::InvalidRequest(
                    "client_id differs from the authenticated client",
                ));
            }
            let decoded = form_decoded(&b.secret);
            let secret_ok = server.secret_matches(&b.secret)
                || (decoded != b.secret && server.secret_matches(&decoded));
            if ids.contains(&server.client_id) && secret_ok {
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
