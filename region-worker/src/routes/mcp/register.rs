//! `POST {api}/api/mcp/oauth/register`: Dynamic Client Registration (RFC 7591) for MCP
//! clients that predate Client ID Metadata Documents. Anyone may register, so every
//! request counts against the caller's address, registrations are public clients only
//! (no secret: `token_endpoint_auth_method` is always `none`, whatever was asked, as
//! §3.2.1 allows), and a client unused for [`PRUNE_AFTER_DAYS`] is deleted by
//! [`run`].

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::Duration;

use super::clients::{self, MAX_REDIRECT_URIS};
use crate::body::{BodyError, MAX_SMALL_BODY, read_limited};
use crate::rate_limit::{self, ClientIp};
use crate::routes::oauth::error::{json_error, no_store};
use crate::state::AppState;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::mcp::{self, ClientInfo};

/// Registered clients unused for this long are deleted.
pub const PRUNE_AFTER_DAYS: i64 = 30;
/// How often the prune runs.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

fn invalid(code: &'static str, description: &'static str) -> Response {
    super::count("register", "refused");
    json_error(StatusCode::BAD_REQUEST, code, description)
}

/// The registration endpoint.
pub async fn register(
    State(state): State<AppState>,
    caller: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(wait) = rate_limit::take_for_client(&state, "mcp-register", &caller).await {
        super::count("register", "rate_limited");
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many registrations from this address; retry later",
        );
        crate::error::set_retry_after(r.headers_mut(), wait);
        return r;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return invalid(
            "invalid_client_metadata",
            "the body must be application/json",
        );
    }
    let body = match read_limited(body, MAX_SMALL_BODY).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_client_metadata",
                "the request body is too large",
            );
        }
        Err(BodyError::Unreadable) => {
            return invalid("invalid_client_metadata", "the body could not be read");
        }
    };
    let Ok(Value::Object(meta)) = serde_json::from_slice::<Value>(&body) else {
        return invalid(
            "invalid_client_metadata",
            "the body must be a JSON object of client metadata",
        );
    };
    let uris: Option<Vec<String>> = match meta.get("redirect_uris") {
        Some(Value::Array(list)) if list.len() <= MAX_REDIRECT_URIS => {
            list.iter().map(|u| u.as_str().map(str::to_owned)).collect()
        }
        _ => None,
    };
    let Some(Ok(redirect_uris)) = uris.map(|u| clients::valid_redirect_uris(&u)) else {
        return invalid(
            "invalid_redirect_uri",
            "redirect_uris must list 1 to 10 URIs, each https://, a loopback http:// \
             address, or a private-use scheme",
        );
    };
    let client_name = match meta.get("client_name") {
        None | Some(Value::Null) => "Unnamed MCP client".to_owned(),
        Some(Value::String(s)) => match clients::valid_name(s) {
            Some(n) => n.to_owned(),
            None => {
                return invalid(
                    "invalid_client_metadata",
                    "client_name must be 1 to 100 characters, without control characters",
                );
            }
        },
        Some(_) => return invalid("invalid_client_metadata", "client_name must be a string"),
    };
    if let Some(types) = meta.get("grant_types") {
        let ok = types.as_array().is_some_and(|t| {
            t.iter()
                .all(|g| matches!(g.as_str(), Some("authorization_code" | "refresh_token")))
        });
        if !ok {
            return invalid(
                "invalid_client_metadata",
                "grant_types may be authorization_code and refresh_token only",
            );
        }
    }
    let client = ClientInfo {
        client_id: format!("mcp_{}", uuid::Uuid::new_v4().simple()),
        client_name,
        redirect_uris,
    };
    let recorded = async {
        mcp::register(&state.pg, &client).await?;
        let pg = state.pg.get().await?;
        audit::record(
            &pg,
            &AuditEvent {
                team_id: None,
                actor: &format!("ip:{}", caller.0),
                action: AuditAction::McpClientRegistered,
                target: Some(&client.client_id),
                detail: json!({
                    "client_name": client.client_name,
                    "redirect_uris": client.redirect_uris,
                }),
            },
        )
        .await
    };
    if let Err(e) = recorded.await {
        super::count("register", "error");
        return crate::routes::oauth::error::OAuthError::Store(e).into_response();
    }
    super::count("register", "registered");
    tracing::info!(client_id = %client.client_id, "MCP client registered");
    let mut answer = json!({
        "client_id": client.client_id,
        "client_id_issued_at": state.config.clock.now().unix_timestamp(),
        "client_name": client.client_name,
        "redirect_uris": client.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let Some(t @ ("native" | "web")) = meta.get("application_type").and_then(Value::as_str) {
        answer["application_type"] = json!(t);
    }
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    no_store(response.headers_mut());
    response
}

/// Deletes registered clients unused for [`PRUNE_AFTER_DAYS`], every hour until `stop`
/// fires. Anyone can register, so what nobody uses must not accumulate.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let cutoff = state.config.clock.now() - Duration::days(PRUNE_AFTER_DAYS);
        match mcp::prune_clients(&state.pg, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned unused MCP client registrations"),
            Err(e) => tracing::warn!(error = %e, "could not prune MCP client registrations"),
        }
    }
}
