//! Authenticating a request by a personal token in `Authorization: Bearer`: the
//! product's protected endpoints (`/api/me` takes an API token, `/api/mcp/whoami` an
//! MCP token) and the JSON token API.
//!
//! The token's visible prefix must name this region and the route's kind, so that
//! another region's token or a token of another kind is refused without a store
//! lookup. The check itself ([`tokens::check_personal_at`]) reads the token entry and
//! the user's revocation epoch in one Redis round trip and claims the token's "last
//! used" marker in the same trip; Postgres is read only when Redis lacks an entry.

use axum::http::{HeaderMap, header};
use shared::token::{self, TokenHash};

use super::TokenApiError;
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

/// The bearer token of a request with exactly one `Authorization` header; `None` when
/// there is none, several, or another scheme.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let value = all.next()?.to_str().ok()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn takes_exactly_one_bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer(&h), None);
    }
}
