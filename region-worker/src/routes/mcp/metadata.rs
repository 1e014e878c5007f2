//! Discovery documents: RFC 9728 Protected Resource Metadata for the MCP endpoint and
//! RFC 8414 Authorization Server Metadata for the region's MCP authorization server.
//! Each region names its own hosts only, so an EU client is never sent to the US.
//!
//! The authorization server is OAuth only, not an OpenID Provider (it issues no ID
//! tokens), so `/.well-known/openid-configuration` is not served: clients that try it
//! get `404` and use the RFC 8414 document.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{SCOPE, issuer, resource};
use crate::paths::api;
use crate::state::AppState;

/// Public, cacheable for a few minutes, readable by browser-based clients.
fn public_json(body: serde_json::Value) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// `GET {api}/.well-known/oauth-protected-resource/api/mcp` (and at the root).
pub async fn protected_resource(State(state): State<AppState>) -> Response {
    public_json(json!({
        "resource": resource(&state),
        "authorization_servers": [issuer(&state)],
        "bearer_methods_supported": ["header"],
        "scopes_supported": [SCOPE],
        "resource_name": format!(
            "ClosedLoop AI MCP ({})",
            state.config.region_id().as_str().to_ascii_uppercase()
        ),
    }))
}

/// `GET {api}/.well-known/oauth-authorization-server`.
pub async fn authorization_server(State(state): State<AppState>) -> Response {
    let base = state.config.region.api_base();
    public_json(json!({
        "issuer": issuer(&state),
        "authorization_endpoint": format!("{base}{}", api::MCP_OAUTH_AUTHORIZE),
        "token_endpoint": format!("{base}{}", api::MCP_OAUTH_TOKEN),
        "registration_endpoint": format!("{base}{}", api::MCP_OAUTH_REGISTER),
        "revocation_endpoint": format!("{base}{}", api::MCP_OAUTH_REVOKE),
        "scopes_supported": [SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    }))
}
