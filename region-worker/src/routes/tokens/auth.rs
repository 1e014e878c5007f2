//! Authenticating a request by a personal token in `Authorization: Bearer`: the
//! product's protected endpoints (`/api/me` takes an API token, `/api/mcp/whoami` an
//! MCP token) and the JSON token API.
//!
//! The token's visible prefix must name this region and the route's kind, so that
//! another region's token or a token of another kind is refused without a store
//! lookup. The check itself ([`tokens::check_personal_at`]) reads the token entry and
//! the user's revocation epoch in one Redis round trip and claims the token's "last
//! used" marker in the same trip; Postgres is read only when Redis lacks an entry.

use axum::http::HeaderMap;
use shared::token::{self, TokenHash};

use super::TokenApiError;
use crate::auth_header::bearer;
use crate::state::AppState;
use crate::store::personal_tokens::{self, LAST_USED_RESOLUTION_SECS, Owner, PersonalKind};
use crate::store::tokens::{self, TokenRecord};

/// A request authenticated by a personal token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's owner, with the token's epoch.
    pub owner: Owner,
    /// The token's record (expiry, kind).
    pub record: TokenRecord,
    /// The token's kind.
    pub kind: PersonalKind,
}

/// Authenticates the request's bearer token as a live personal token of `kind`.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    kind: PersonalKind,
) -> Result<Caller, TokenApiError> {
    let refused = TokenApiError::Unauthenticated { kind: kind.code() };
    let Some(presented) = bearer(headers) else {
        count(kind, "missing");
        return Err(refused);
    };
    match token::parse_prefix(presented) {
        Some(p) if p.kind == kind.token_kind() && p.region == state.config.region_id().as_str() => {
        }
        _ => {
            count(kind, "invalid");
            return Err(refused);
        }
    }
    let hash = TokenHash::of(presented);
    let now = state.config.clock.now();
    let checked = tokens::check_personal_at(
        &state.pg,
        &state.redis,
        &hash,
        kind.token_kind(),
        now.unix_timestamp(),
        Some(LAST_USED_RESOLUTION_SECS),
    )
    .await;
    let checked = match checked {
        Ok(Some(c)) => c,
        Ok(None) => {
            count(kind, "invalid");
            return Err(refused);
        }
        Err(e) => {
            count(kind, "error");
            return Err(e.into());
        }
    };
    let Some(owner) = Owner::of(&checked.record) else {
        count(kind, "invalid");
        return Err(refused);
    };
    count(kind, "valid");
    if checked.touched {
        personal_tokens::record_use(&state.pg, hash, now);
    }
    Ok(Caller {
        owner,
        record: checked.record,
        kind,
    })
}

fn count(kind: PersonalKind, outcome: &'static str) {
    metrics::counter!(crate::metrics::TOKEN_CHECKS, "kind" => kind.code(), "outcome" => outcome)
        .increment(1);
}
