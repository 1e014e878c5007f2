//! `GET /api/okta/scim/oauth/authorize` on the API host: the start of the
//! authorization-code grant.
//!
//! The client id and the redirect URI are checked first; when either is wrong the
//! browser gets a page and is never redirected (RFC 6749 §4.1.2.1), so this endpoint
//! cannot be used to bounce users to arbitrary sites. Every later error goes back to the
//! client with `error` and the echoed `state`. A valid request is parked in Redis and
//! the browser continues on the app host, where the session cookie is.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use shared::scope::{self, Scope};
use uuid::Uuid;

use super::error::{
    error_to_client, invalid_client_page, invalid_redirect_page, no_store, not_configured_page,
};
use super::params::Params;
use crate::pkce;
use crate::state::AppState;
use crate::store::grants::{self, PendingRequest};

/// The longest `state` echoed back: generous for clients that pack data into it, small
/// enough that a pending request stays a small Redis value.
pub const MAX_STATE_LEN: usize = 2048;

/// The authorization endpoint.
pub async fn authorize(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(server) = state.config.scim_oauth.as_ref() else {
        return not_configured_page();
    };
    let params = Params::parse(query.as_deref().unwrap_or_default().as_bytes());
    match params.get("client_id") {
        Ok(Some(id)) if id == server.client_id => {}
        _ => return invalid_client_page(),
    }
    let redirect_uri = match params.get("redirect_uri") {
        Ok(Some(uri)) if server.allows_redirect(uri) => uri,
        _ => return invalid_redirect_page(),
    };
    // From here on the client hears about errors at its redirect URI.
    let Ok(client_state) = params.get("state") else {
        return error_to_client(redirect_uri, None, "invalid_request", "state is repeated");
    };
    let fail = |error: &'static str, description: &'static str| {
        error_to_client(redirect_uri, client_state, error, description)
    };
    if params.first_repeated().is_some() {
        return fail("invalid_request", "a parameter is repeated");
    }
    if client_state.is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return fail("invalid_request", "state is too long");
    }
    match params.get("response_type") {
        Ok(Some("code")) => {}
        Ok(None) => return fail("invalid_request", "response_type is required"),
        _ => {
            return fail(
                "unsupported_response_type",
                "only the authorization code grant (response_type=code) is supported",
            );
        }
    }
    let scopes = match params
        .get("scope")
        .map(|s| scope::parse_list(s.unwrap_or_default()))
    {
        Ok(Ok(s)) if s.is_empty() => Scope::ALL.to_vec(),
        Ok(Ok(s)) => s,
        _ => {
            return fail(
                "invalid_scope",
                "scopes are scim.read, scim.write and entitlements.read",
            );
        }
    };
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (Ok(None), Ok(None)) => None,
        (Ok(Some(c)), Ok(Some(pkce::S256))) if pkce::valid_challenge(c) => Some(c.to_owned()),
        (Ok(Some(_)), Ok(Some(pkce::S256))) => {
            return fail("invalid_request", "code_challenge is not an S256 challenge");
        }
        (Ok(None), Ok(Some(_))) => {
            return fail(
                "invalid_request",
                "code_challenge_method without code_challenge",
            );
        }
        // An absent method means "plain" (RFC 7636 §4.3), which is not supported.
        _ => {
            return fail(
                "invalid_request",
                "PKCE requires code_challenge_method=S256",
            );
        }
    };
    let request = PendingRequest {
        client_id: server.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scopes: scopes.clone(),
        state: client_state.map(str::to_owned),
        code_challenge: challenge,
    };
    let id = Uuid::new_v4();
    let ttl = server.pending_ttl.whole_seconds().unsigned_abs();
    if let Err(e) = grants::save_pending(&state.redis, id, &request, ttl).await {
        tracing::error!(error = %e, "store unavailable");
        return fail(
            "temporarily_unavailable",
            "ClosedLoop AI cannot reach its data store; try again shortly",
        );
    }
    let target = format!(
        "{}{}?request={id}",
        state.config.region.app_base(),
        crate::paths::app::OAUTH_CONSENT
    );
    let mut response = Redirect::to(&target).into_response();
    no_store(response.headers_mut());
    response
}
