//! `GET {api}/api/mcp/oauth/authorize`: the start of an MCP client's authorization.
//!
//! The client (its metadata document or registration) and the redirect URI are checked
//! first; when either is wrong the browser gets a page and is never redirected, so this
//! endpoint cannot bounce users to a site no client listed. Every later error goes back
//! to the client with `error`, the echoed `state` and `iss` (RFC 9207). Only the
//! authorization code with PKCE S256 is supported, and `resource` (RFC 8707) must name
//! this region's MCP endpoint. A valid request is parked in Redis and the browser
//! continues on the app host, where the session cookie is.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::clients::{self, ClientError};
use super::{SCOPE, issuer, resource};
use crate::paths::app;
use crate::pkce;
use crate::rate_limit::ClientIp;
use crate::routes::oauth::authorize::MAX_STATE_LEN;
use crate::routes::oauth::error::{no_store, redirect_to_client};
use crate::routes::oauth::params::Params;
use crate::state::AppState;
use crate::store::mcp::{self, PendingRequest};
use crate::web::layout::error_page;

/// How long a user has to sign in and decide.
pub const PENDING_TTL_SECS: u64 = 600;

/// The page for a client that cannot be used: nothing is redirected.
fn client_page(explanation: &str) -> Response {
    super::count("authorize", "invalid_client");
    error_page(
        StatusCode::BAD_REQUEST,
        "This application cannot connect",
        &format!(
            "{explanation} Nothing was sent back to the application. Ask its publisher, or \
             connect it again from the application."
        ),
    )
}

/// The page for a redirect URI the client did not list: nothing is redirected.
fn redirect_page() -> Response {
    super::count("authorize", "invalid_redirect_uri");
    error_page(
        StatusCode::BAD_REQUEST,
        "Invalid redirect address",
        "The address this request asks to return to is missing or is not one the \
         application lists, so ClosedLoop AI will not send anything there.",
    )
}

/// An error sent back to the client at its (validated) redirect URI, with `iss`.
pub fn error_to_client(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    redirect_to_client(
        redirect_uri,
        &[
            ("error", Some(error)),
            ("error_description", Some(description)),
            ("state", client_state),
            ("iss", Some(&issuer(state))),
        ],
    )
}

/// The authorization endpoint.
pub async fn authorize(
    State(state): State<AppState>,
    caller: ClientIp,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.as_deref().unwrap_or_default().as_bytes());
    let Ok(Some(client_id)) = params.get("client_id") else {
        return client_page("The request names no application (client_id).");
    };
    let client = match clients::resolve(&state, client_id, &caller).await {
        Ok(c) => c,
        Err(ClientError::Unknown) => {
            return client_page(
                "The application is not registered with ClosedLoop AI in this region.",
            );
        }
        Err(ClientError::Document(why)) => return client_page(&why),
        Err(ClientError::Store(e)) => return crate::web::PageError::from(e).into_response(),
    };
    let redirect_uri = match params.get("redirect_uri") {
        Ok(Some(uri))
            if client
                .redirect_uris
                .iter()
                .any(|r| clients::redirect_matches(r, uri)) =>
        {
            uri
        }
        _ => return redirect_page(),
    };
    // From here on the client hears about errors at its redirect URI.
    let Ok(client_state) = params.get("state") else {
        return error_to_client(
            &state,
            redirect_uri,
            None,
            "invalid_request",
            "state is repeated",
        );
    };
    let fail = |error: &str, description: &str| {
        super::count("authorize", "refused");
        error_to_client(&state, redirect_uri, client_state, error, description)
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
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (Ok(Some(c)), Ok(Some(pkce::S256))) if pkce::valid_challenge(c) => c.to_owned(),
        (Ok(Some(_)), Ok(Some(pkce::S256))) => {
            return fail("invalid_request", "code_challenge is not an S256 challenge");
        }
        (Ok(None), _) => {
            return fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
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
    let ours = resource(&state);
    match params.get("resource") {
        Ok(Some(r)) if r == ours => {}
        Ok(None) => {
            return fail(
                "invalid_request",
                "resource is required: the MCP server's URL (RFC 8707)",
            );
        }
        _ => {
            return fail(
                "invalid_target",
                "resource must be this region's MCP server URL",
            );
        }
    }
    let scopes: Vec<String> = match params.get("scope") {
        Ok(None) => vec![SCOPE.to_owned()],
        Ok(Some(s)) if s.split(' ').filter(|p| !p.is_empty()).all(|p| p == SCOPE) => {
            vec![SCOPE.to_owned()]
        }
        _ => return fail("invalid_scope", "the only scope is mcp"),
    };
    let request = PendingRequest {
        client_id: client.client_id.clone(),
        client_name: client.client_name.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state: client_state.map(str::to_owned),
        code_challenge: challenge,
        resource: ours,
        scopes,
    };
    let id = Uuid::new_v4();
    if let Err(e) = mcp::save_pending(&state.redis, id, &request, PENDING_TTL_SECS).await {
        tracing::error!(error = %e, "store unavailable");
        return fail(
            "temporarily_unavailable",
            "ClosedLoop AI cannot reach its data store; try again shortly",
        );
    }
    super::count("authorize", "pending");
    let target = format!(
        "{}{}?request={id}",
        state.config.region.app_base(),
        app::MCP_CONSENT
    );
    let mut response = Redirect::to(&target).into_response();
    no_store(response.headers_mut());
    response
}
