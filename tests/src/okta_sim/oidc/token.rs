//! `/oauth2/v1/token`: the authorization-code grant with PKCE S256 (checked when the
//! authorize request carried a challenge) and client authentication by
//! `client_secret_basic` or `client_secret_post` (exactly one), and the ID tokens it
//! mints, defective on purpose when a fault says so.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AccessGrant, OAuthError, TOKEN_TTL_SECS, no_store, parse_params, profile_claims};
use crate::okta_sim::directory::{UserId, random_secret};
use crate::okta_sim::faults::{IdTokenFault, TokenFault};
use crate::okta_sim::{Org, lock};

/// `POST /oauth2/v1/token`.
pub(crate) async fn token(
    State(org): State<Arc<Org>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = lock(&org.faults).token.clone();
    match fault {
        TokenFault::None => {}
        TokenFault::Fail { status, error } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({ "error": error, "error_description": "The token endpoint failed (simulated fault)." });
            return (status, no_store(), axum::Json(body)).into_response();
        }
        TokenFault::Delay(d) => tokio::time::sleep(d).await,
        TokenFault::Hang => std::future::pending::<()>().await,
    }
    match exchange(&org, &headers, &body) {
        Ok(v) => (no_store(), axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Percent-decodes one `client_secret_basic` component (RFC 6749 §2.3.1 encodes them
/// form-style before base64).
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client id and secret of `Authorization: Basic …`; `Err` when the header is
/// there but is not valid Basic credentials.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, b64) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = STANDARD.decode(b64.trim()).map_err(|_| ())?;
    let text = String::from_utf8(decoded).map_err(|_| ())?;
    let (id, secret) = text.split_once(':').ok_or(())?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

/// Authenticates the client by exactly one method; returns its id.
fn authenticate(
    org: &Org,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<String, OAuthError> {
    let basic = basic_credentials(headers).map_err(|()| OAuthError::invalid_client(true))?;
    let posted = params.get("client_secret");
    let (client_id, secret, by_basic) = match (basic, posted) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "Cannot supply multiple client credentials. Use one of the following: credentials in the Authorization header, credentials in the post body, or a client_assertion in the post body.",
            ));
        }
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|c| c != &id) {
                return Err(OAuthError::invalid_client(true));
            }
            (id, secret, true)
        }
        (None, Some(secret)) => {
            let id = params
                .get("client_id")
                .cloned()
                .ok_or_else(|| OAuthError::invalid_client(false))?;
            (id, secret.clone(), false)
        }
        (None, None) => return Err(OAuthError::invalid_client(false)),
    };
    let ok = lock(&org.directory)
        .app(&client_id)
        .is_some_and(|a| a.client_secret.expose() == secret);
    if ok {
        Ok(client_id)
    } else {
        Err(OAuthError::invalid_client(by_basic))
    }
}

/// The PKCE S256 transform of a verifier (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn exchange(org: &Org, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(OAuthError::invalid_request(
            "The request must be sent as application/x-www-form-urlencoded.",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("The request body is not UTF-8."))?;
    let params = parse_params(text).map_err(|name| {
        OAuthError::invalid_request(format!("The '{name}' parameter was repeated."))
    })?;
    let client_id = authenticate(org, headers, &params)?;
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {}
        None => {
            return Err(OAuthError::invalid_request(
                "The 'grant_type' parameter is required.",
            ));
        }
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server. Configured grant types: [authorization_code].",
            ));
        }
    }
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("The 'code' parameter is required."))?;
    let now = org.clock.now();
    // A code works once, whatever the outcome of this request.
    let grant = lock(&org.grants)
        .codes
        .remove(code)
        .filter(|g| g.expires_at > now && g.client_id == client_id)
        .ok_or_else(|| {
            OAuthError::invalid_grant("The authorization code is invalid or has expired.")
        })?;
    if params.get("redirect_uri") != Some(&grant.redirect_uri) {
        return Err(OAuthError::invalid_grant(
            "The 'redirect_uri' does not match the redirection URI used in the authorization request.",
        ));
    }
    match (&grant.code_challenge, params.get("code_verifier")) {
        (None, None) => {}
        (Some(challenge), Some(verifier))
            if (43..=128).contains(&verifier.len()) && &s256(verifier) == challenge => {}
        (Some(_), None) => {
            return Err(OAuthError::invalid_request(
                "PKCE code verifier is required when the parameter code_challenge was sent in the authorization request.",
            ));
        }
        _ => return Err(OAuthError::invalid_grant("PKCE verification failed.")),
    }
    if !lock(&org.directory).may_sign_in(&grant.user, &client_id) {
        return Err(OAuthError::invalid_grant(
            "The user is not active or not assigned to the client application.",
        ));
    }

    let access_token = random_secret(64);
    lock(&org.grants).access_tokens.insert(
        access_token.clone(),
        AccessGrant {
            user: grant.user.clone(),
            scopes: grant.scopes.clone(),
            expires_at: now + TOKEN_TTL_SECS,
        },
    );
    let id_token = mint_id_token(
        org,
        &IdTokenRequest {
            client_id: &client_id,
            user: &grant.user,
            scopes: &grant.scopes,
            nonce: grant.nonce.as_deref(),
            access_token: &access_token,
            auth_time: grant.auth_time,
        },
    )?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL_SECS,
        "access_token": access_token,
        "scope": grant.scopes.join(" "),
        "id_token": id_token,
    }))
}

/// What an ID token is minted from.
#[derive(Debug)]
pub(crate) struct IdTokenRequest<'a> {
    /// The `aud`.
    pub(crate) client_id: &'a str,
    /// The `sub`.
    pub(crate) user: &'a UserId,
    /// Scopes deciding the profile claims.
    pub(crate) scopes: &'a [String],
    /// The authorize request's nonce.
    pub(crate) nonce: Option<&'a str>,
    /// The access token issued beside it (`at_hash`).
    pub(crate) access_token: &'a str,
    /// When the user authenticated.
    pub(crate) auth_time: i64,
}

/// Mints an ID token as Okta's org server does, then spoils it as the current
/// [`IdTokenFault`] says.
pub(crate) fn mint_id_token(org: &Org, req: &IdTokenRequest<'_>) -> Result<String, OAuthError> {
    let server_error = || {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The ID token could not be issued.",
        )
    };
    let now = org.clock.now();
    let mut claims = profile_claims(org, req.user, req.scopes).ok_or_else(server_error)?;
    let digest = Sha256::digest(req.access_token.as_bytes());
    claims["ver"] = json!(1);
    claims["iss"] = json!(org.issuer);
    claims["aud"] = json!(req.client_id);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + TOKEN_TTL_SECS);
    claims["jti"] = json!(format!("ID.{}", random_secret(43)));
    claims["amr"] = json!(["pwd"]);
    claims["idp"] = json!(org.org_id);
    claims["auth_time"] = json!(req.auth_time);
    claims["at_hash"] = json!(URL_SAFE_NO_PAD.encode(&digest[..16]));
    if let Some(nonce) = req.nonce {
        claims["nonce"] = json!(nonce);
    }
    let fault = lock(&org.faults).id_token;
    let key = match fault {
        Some(IdTokenFault::UnpublishedKey) => lock(&org.keys).unpublished(),
        _ => lock(&org.keys).signing(),
    };
    match fault {
        Some(IdTokenFault::WrongAudience) => {
            claims["aud"] = json!(crate::okta_sim::directory::okta_id("0oa"));
        }
        Some(IdTokenFault::WrongIssuer) => {
            claims["iss"] = json!(format!("{}/oauth2/default", org.issuer));
        }
        Some(IdTokenFault::WrongNonce) => {
            claims["nonce"] = json!(random_secret(22));
        }
        Some(IdTokenFault::Expired) => {
            claims["iat"] = json!(now - 2 * TOKEN_TTL_SECS);
            claims["exp"] = json!(now - TOKEN_TTL_SECS);
        }
        Some(IdTokenFault::UnpublishedKey) | None => {}
    }
    key.sign(None, &claims).map_err(|_| server_error())
}

/// The claims of an `id_token_hint` this org issued (signature by a published key,
/// issuer, an existing app as `aud`); expired hints are accepted, as Okta does.
pub(crate) fn check_id_token_hint(org: &Org, hint: &str) -> Option<Value> {
    let header = jsonwebtoken::decode_header(hint).ok()?;
    let key = lock(&org.keys).published(header.kid.as_deref()?)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[&org.issuer]);
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    let data = jsonwebtoken::decode::<Value>(hint, &key.decoding_key().ok()?, &validation).ok()?;
    let aud = data.claims.get("aud")?.as_str()?;
    lock(&org.directory).app(aud)?;
    Some(data.claims)
}
