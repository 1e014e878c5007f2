//! `POST /api/okta/scim/oauth/token` on the API host: parses the form, authenticates
//! the client, and hands the grant to [`super::code_grant`] or [`super::refresh_grant`].
//! Every answer carries `Cache-Control: no-store`; every error is an
//! [`OAuthError`](super::error::OAuthError).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::error::OAuthError;
use super::issue::TokenResponse;
use super::params::Params;
use super::{client_auth, code_grant, refresh_grant};
use crate::body::BodyError;
use crate::rate_limit::{self, ClientIp};
use crate::state::AppState;

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match crate::body::read_limited(body, crate::body::MAX_SMALL_BODY).await {
        Ok(body) => exchange(&state, &headers, &body).await,
        Err(BodyError::TooLarge) => Err(OAuthError::PayloadTooLarge),
        Err(BodyError::Unreadable) => Err(OAuthError::InvalidRequest("the body could not be read")),
    };
    match result {
        Ok(tokens) => tokens.into_response(),
        // Only refused requests count against the client's address: Okta refreshes
        // for every tenant from shared addresses, and what the limit slows down is
        // guessing a client secret, code or refresh token.
        Err(e) if e.is_client_error() => {
            match rate_limit::take_for_client(&state, "oauth-token", &client).await {
                Some(wait) => OAuthError::TooManyRequests { retry_after: wait }.into_response(),
                None => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, OAuthError> {
    let server = state
        .config
        .scim_oauth
        .as_ref()
        .ok_or(OAuthError::NotConfigured)?;
    if !crate::body::is_form(headers) {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body);
    if params.first_repeated().is_some() {
        return Err(OAuthError::InvalidRequest("a parameter is repeated"));
    }
    client_auth::authenticate(server, headers, &params)?;
    match params.get("grant_type")? {
        Some("authorization_code") => code_grant::redeem(state, server, &params).await,
        Some("refresh_token") => refresh_grant::rotate(state, server, &params).await,
        Some(_) => Err(OAuthError::UnsupportedGrantType(
            "grant_type must be authorization_code or refresh_token",
        )),
        None => Err(OAuthError::InvalidRequest("grant_type is required")),
    }
}
