//! Browser sessions on the app host. A session is a token of kind `ses` (stored hashed
//! like every token) held in a host-only cookie: `__Host-` prefixed, `Secure`,
//! `HttpOnly`, `SameSite=Lax` under TLS; without the prefix and `Secure` only on a
//! plain-HTTP development stack. Every check honours the user's revocation epoch.

use axum::http::{HeaderMap, HeaderValue, header};
use shared::ids::TeamId;
use shared::token::{self, TokenHash, TokenKind};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::tokens::{self, NewTokenRecord, TokenRecord};

/// Absolute lifetime of a session.
pub const SESSION_LIFETIME_SECS: i64 = 12 * 3600;

/// The cookie name for this stack.
pub fn cookie_name(state: &AppState) -> &'static str {
    if state.config.region.app_url.scheme() == "https" {
        "__Host-clk_session"
    } else {
        "clk_session"
    }
}

/// Starts a session for a user and returns the `Set-Cookie` value.
pub async fn start(
    state: &AppState,
    team_id: TeamId,
    user_id: Uuid,
    user_epoch: i64,
    how: &str,
) -> Result<HeaderValue, StoreError> {
    let minted = token::mint(state.config.region_id(), TokenKind::Session);
    let expires = OffsetDateTime::now_utc().unix_timestamp() + SESSION_LIFETIME_SECS;
    tokens::insert(
        &state.pg,
        &state.redis,
        &NewTokenRecord {
            hash: minted.hash,
            record: TokenRecord {
                team_id,
                kind: TokenKind::Session.code().to_owned(),
                scopes: Vec::new(),
                user_id: Some(user_id),
                user_epoch,
                expires_at: Some(expires),
            },
            name: None,
            created_by: how,
        },
    )
    .await?;
    let secure = if state.config.region.app_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_LIFETIME_SECS}{secure}",
        cookie_name(state),
        minted.secret
    );
    Ok(HeaderValue::from_str(&cookie).expect("token characters are cookie-safe"))
}

/// The live session named by the request's cookie, if any.
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<TokenRecord>, StoreError> {
    let name = cookie_name(state);
    let Some(value) = cookie_value(headers, name) else {
        return Ok(None);
    };
    match token::parse_prefix(value) {
        Some(p)
            if p.kind == TokenKind::Session && p.region == state.config.region_id().as_str() => {}
        _ => return Ok(None),
    }
    tokens::check_personal(
        &state.pg,
        &state.redis,
        &TokenHash::of(value),
        TokenKind::Session,
    )
    .await
}

/// Finds a cookie's value among the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies_among_several_headers() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; clk_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&h, "clk_session"), Some("xyz"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
