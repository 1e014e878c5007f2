//! `POST {api}/api/mcp/oauth/revoke`: token revocation (RFC 7009) for MCP clients. A
//! refresh token ends its whole grant (§2.1: revoking a refresh token should revoke
//! the access tokens of the same grant); an access token ends itself. The client names
//! itself with `client_id` (public clients) and can revoke only its own tokens; an
//! unknown or foreign token is answered `200` like a revoked one (§2.2), so the answer
//! tells nothing about other clients' tokens.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use shared::token::{self, TokenHash, TokenKind};

use super::token::{TokenError, end_in, form};
use crate::routes::oauth::error::no_store;
use crate::state::AppState;
use crate::store::mcp::{self, EndReason};
use crate::store::tokens;

/// The revocation endpoint.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let done = async {
        let params = form(&headers, body).await?;
        let client_id = params
            .get("client_id")?
            .ok_or(TokenError::InvalidRequest("client_id is required"))?;
        let presented = params
            .get("token")?
            .ok_or(TokenError::InvalidRequest("token is required"))?;
        let Some(prefix) = token::parse_prefix(presented)
            .filter(|p| p.region == state.config.region_id().as_str())
        else {
            return Ok(());
        };
        let hash = TokenHash::of(presented);
        let mut pg = state.pg.get().await?;
        if prefix.kind == TokenKind::Refresh {
            let tx = pg.transaction().await?;
            if let Some(row) = mcp::lock_refresh(&tx, &hash).await?
                && row.grant.client_id == client_id
            {
                end_in(&tx, &state, &row.grant, EndReason::RevokedByClient).await?;
                tx.commit().await?;
            }
        } else if prefix.kind == TokenKind::Mcp
            && mcp::access_token_of_client(&pg, &hash, client_id).await?
        {
            tokens::revoke(&state.pg, &state.redis, &hash).await?;
        }
        Ok::<(), TokenError>(())
    };
    match done.await {
        Ok(()) => {
            super::count("revoke", "ok");
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => e.into_response(),
    }
}
