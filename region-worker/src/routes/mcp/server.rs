//! `{api}/api/mcp`: a minimal MCP server over the Streamable HTTP transport, standing in
//! for the product's MCP server the way `/api/me` stands in for its API, so that real
//! MCP clients can be tested end to end against the region's OAuth server.
//!
//! Stateless: every JSON-RPC request is answered with `application/json` on its own
//! `POST`, no session is created (an `Mcp-Session-Id` a client sends is accepted and
//! ignored), and there is no server-to-client stream, so `GET` is `405`. It answers
//! `initialize`, `ping`, `tools/list` and `tools/call` of its one tool, `whoami`.
//!
//! Every request needs an MCP token of this region: one issued by the region's MCP
//! OAuth server (its audience is this endpoint, the only resource the server issues
//! tokens for) or one pasted from `/tokens`. Tokens of other kinds (API, SCIM, session)
//! and other regions' tokens are for other audiences and are refused like a missing
//! one: `401` with `WWW-Authenticate` naming the resource's metadata (RFC 9728 §5.1),
//! which is how a client discovers where to authorize. A request whose `Origin` is
//! not one of the region's hosts is refused (the transport's DNS-rebinding rule).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth_header::bearer;
use crate::body::{BodyError, MAX_SMALL_BODY, read_limited};
use crate::paths::api;
use crate::routes::tokens::TokenApiError;
use crate::routes::tokens::auth::{Caller, caller};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::personal_tokens::PersonalKind;

/// The protocol revisions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"];

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    (
        status,
        Json(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })),
    )
        .into_response()
}

fn rpc_result(id: Value, result: Value) -> Response {
    Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
}

/// `401` naming where to authorize; `error="invalid_token"` when a token was sent.
fn unauthorized(state: &AppState, headers: &HeaderMap) -> Response {
    let metadata = format!(
        "{}{}",
        state.config.region.api_base(),
        api::MCP_RESOURCE_METADATA
    );
    let mut challenge = format!(
        "Bearer resource_metadata=\"{metadata}\", scope=\"{}\"",
        super::SCOPE
    );
    if bearer(headers).is_some() {
        challenge.push_str(", error=\"invalid_token\", error_description=\"the token is invalid, expired, revoked, or not for this resource\"");
    }
    let mut response = rpc_error(
        StatusCode::UNAUTHORIZED,
        Value::Null,
        INVALID_REQUEST,
        "a valid MCP token of this region is required",
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Whether the request's `Origin`, if any, is one of the region's hosts.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => true,
        Some(Ok(origin)) => [
            state.config.region.api_base(),
            state.config.region.app_base(),
        ]
        .iter()
        .any(|base| origin.eq_ignore_ascii_case(base)),
        Some(Err(_)) => false,
    }
}

/// `GET` (and any other method): no server-to-client stream is offered.
pub async fn not_allowed() -> Response {
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// `POST {api}/api/mcp`.
pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !origin_allowed(&state, &headers) {
        return rpc_error(
            StatusCode::FORBIDDEN,
            Value::Null,
            INVALID_REQUEST,
            "the request's Origin is not allowed",
        );
    }
    let who = match caller(&state, &headers, PersonalKind::Mcp).await {
        Ok(c) => c,
        Err(TokenApiError::Unauthenticated { .. }) => return unauthorized(&state, &headers),
        Err(e) => return e.into_response(),
    };
    if let Some(v) = headers.get("mcp-protocol-version")
        && !v.to_str().is_ok_and(|v| PROTOCOL_VERSIONS.contains(&v))
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "unsupported MCP-Protocol-Version",
        );
    }
    let body = match read_limited(body, MAX_SMALL_BODY).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                INVALID_REQUEST,
                "the request body is too large",
            );
        }
        Err(BodyError::Unreadable) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                PARSE_ERROR,
                "the body could not be read",
            );
        }
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            PARSE_ERROR,
            "the body is not JSON",
        );
    };
    let Some(object) = message.as_object() else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "send one JSON-RPC message per request (batches are not supported)",
        );
    };
    let id = object.get("id").cloned();
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        );
    }
    let method = object.get("method").and_then(Value::as_str);
    let (Some(id), Some(method)) = (id, method) else {
        // A notification, or a response to a request this server never sends.
        return StatusCode::ACCEPTED.into_response();
    };
    if !(id.is_string() || id.is_i64() || id.is_u64()) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "id must be a string or an integer",
        );
    }
    let params = object.get("params").cloned().unwrap_or(Value::Null);
    match method {
        "initialize" => rpc_result(id, initialize(&state, &params)),
        "ping" => rpc_result(id, json!({})),
        "tools/list" => rpc_result(id, json!({ "tools": [whoami_tool()] })),
        "tools/call" => match params.get("name").and_then(Value::as_str) {
            Some("whoami") => match whoami(&state, &who).await {
                Ok(result) => rpc_result(id, result),
                // As every protected endpoint answers an outage: 503 with Retry-After.
                Err(e) => TokenApiError::from(e).into_response(),
            },
            _ => rpc_error(StatusCode::OK, id, INVALID_PARAMS, "unknown tool"),
        },
        _ => rpc_error(StatusCode::OK, id, METHOD_NOT_FOUND, "method not found"),
    }
}

/// `initialize`: the client's protocol revision when this server speaks it, else the
/// newest this server speaks (the client then decides whether to continue).
fn initialize(state: &AppState, params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .and_then(|a| PROTOCOL_VERSIONS.iter().find(|v| **v == a))
        .copied()
        .unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": {} },
        "serverInfo": {
            "name": "closedloop",
            "title": "ClosedLoop AI",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": format!(
            "ClosedLoop AI's MCP server in region {}. The whoami tool says who the token acts for.",
            state.config.region_id().as_str().to_ascii_uppercase()
        ),
    })
}

fn whoami_tool() -> Value {
    json!({
        "name": "whoami",
        "title": "Who am I",
        "description": "Who this connection acts for: the user, their email, workspace and region.",
        "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false },
    })
}

/// The `whoami` tool: the user, email, workspace and region the token acts for.
async fn whoami(state: &AppState, who: &Caller) -> Result<Value, StoreError> {
    let pg = state.pg.get().await?;
    let row = pg
        .query_opt(
            "SELECT u.user_name, coalesce(u.email, u.user_name),
                    coalesce(u.display_name, nullif(concat_ws(' ', u.given_name, u.family_name), ''), u.user_name),
                    w.name
               FROM users u JOIN workspaces w USING (team_id)
              WHERE u.team_id = $1 AND u.id = $2",
            &[&who.owner.team_id.as_uuid(), &who.owner.user_id],
        )
        .await?;
    let region = state.config.region_id().as_str().to_ascii_uppercase();
    let Some(row) = row else {
        return Ok(json!({
            "content": [{ "type": "text", "text": "The user this token acted for no longer exists." }],
            "isError": true,
        }));
    };
    let (user_name, email, name, workspace): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let text = format!(
        "You are {name} ({email}) in the workspace {workspace} ({}), region {region}.",
        who.owner.team_id
    );
    Ok(json!({
        "content": [{ "type": "text", "text": text }],
        "structuredContent": {
            "user_id": who.owner.user_id,
            "user_name": user_name,
            "name": name,
            "email": email,
            "team_id": who.owner.team_id,
            "workspace": workspace,
            "region": state.config.region_id(),
        },
        "isError": false,
    }))
}
