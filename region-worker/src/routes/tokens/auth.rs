//! Authenticating a request by a personal token in `Authorization: Bearer`: the
//! product's protected endpoints (`/api/me` takes an API token, `/api/mcp/whoami` an
//! MCP token) and the JSON token API.
//!
//! The token's visible prefix must name this region and the route's kind, so that
//! another region's token or a token of another kind is refused without a store
//! lookup. The check itself ([`tokens::check_personal_at`]) reads the token entry
//! (claiming its "last used" marker) and the user's revocation epoch, two commands sent
//! together once the worker knows the token's owner; Postgres is read only when Redis
//! lacks an entry or is behind on revocations.

use axum::http::HeaderMap;
use shared::token::{self, TokenHash};

use super::TokenApiError;
use crate::auth_header::bearer;
use crate::state::AppState;
use crate::store::StoreError;
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
    if kind_of(state, presented) != Some(kind) {
        count(kind, "invalid");
        return Err(refused);
    }
    match check(state, presented, kind).await {
        Ok(Some((owner, record))) => {
            count(kind, "valid");
            Ok(Caller {
                owner,
                record,
                kind,
            })
        }
        Ok(None) => {
            count(kind, "invalid");
            Err(refused)
        }
        Err(e) => {
            count(kind, "error");
            Err(e.into())
        }
    }
}

/// The kind of personal token `presented` is by its visible prefix, when the prefix
/// names this region and a personal kind: anything else is refused without a lookup.
pub fn kind_of(state: &AppState, presented: &str) -> Option<PersonalKind> {
    let prefix = token::parse_prefix(presented)?;
    if prefix.region != state.config.region_id().as_str() {
        return None;
    }
    PersonalKind::of(prefix.kind)
}

/// The one check of a presented personal token of `kind`, for the bearer routes
/// ([`caller`]) and introspection: live at the worker's clock, with an owner; its
/// last use recorded at most once per [`LAST_USED_RESOLUTION_SECS`]. `None` when it is
/// not a live token of `kind`.
pub async fn check(
    state: &AppState,
    presented: &str,
    kind: PersonalKind,
) -> Result<Option<(Owner, TokenRecord)>, StoreError> {
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
    .await?;
    let Some(checked) = checked else {
        return Ok(None);
    };
    let Some(owner) = Owner::of(&checked.record) else {
        return Ok(None);
    };
    crate::telemetry::record_team(owner.team_id);
    if checked.touched {
        personal_tokens::record_use(&state.pg, hash, now);
    }
    Ok(Some((owner, checked.record)))
}

fn count(kind: PersonalKind, outcome: &'static str) {
    metrics::counter!(crate::metrics::TOKEN_CHECKS, "kind" => kind.code(), "outcome" => outcome)
        .increment(1);
}
