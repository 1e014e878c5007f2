//! CSRF protection for the app host's forms. A form carries a token derived from the
//! browser's session secret (the session cookie's value) and the form's purpose:
//! `SHA-256("clk-csrf-v1" ‖ session ‖ purpose)`. A cross-site page can neither read the
//! cookie nor a page that shows the token, so it cannot forge the field; the token needs
//! no storage and dies with the session. A POST whose `Origin` names another origin is
//! refused as well (defense in depth beside `SameSite=Lax` cookies).
//!
//! Purposes name the action and what it acts on (`oauth-consent:<request id>`,
//! `scim-oauth-grants:<team_id>`), so a token for one form is useless on another.
//!
//! Pages behind a session check their forms with one call on the extractor
//! ([`super::SignedIn::check_form`]); the forms that come before a session exists
//! check the origin alone ([`check_origin`]).

use axum::http::{HeaderMap, header};
use shared::token::TokenHash;
use subtle::ConstantTimeEq;

use crate::state::AppState;
use crate::{cookie, session};

/// The name of the hidden form field that carries the token.
pub const FIELD: &str = "csrf";

/// Why a form submission was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// The request has no session cookie to bind the token to.
    #[error("no session")]
    NoSession,
    /// The token is missing or does not match the session and purpose.
    #[error("the form's CSRF token does not match")]
    BadToken,
    /// The browser says the form was posted from another origin.
    #[error("the form was posted from another origin")]
    ForeignOrigin,
}

/// The token for `purpose` in the session whose secret is `session_secret`.
pub fn token(session_secret: &str, purpose: &str) -> String {
    // Fixed separators that occur in neither part: the session secret is base64url and
    // purposes are ours, so no two (session, purpose) pairs hash the same input.
    TokenHash::of(&format!("clk-csrf-v1\n{session_secret}\n{purpose}")).to_hex()
}

/// Whether `presented` is the token for `purpose` in the session, in constant time.
pub fn verify(session_secret: &str, purpose: &str, presented: &str) -> bool {
    let expected = token(session_secret, purpose);
    bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The session secret of the request (its session cookie's value), if any. The caller
/// is expected to have checked the session itself with [`session::current`].
pub fn session_secret<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    cookie::value(headers, session::cookie_name(state))
}

/// The token to embed in a form for `purpose`, for the request's session.
pub fn for_request(state: &AppState, headers: &HeaderMap, purpose: &str) -> Option<String> {
    session_secret(state, headers).map(|s| token(s, purpose))
}

/// Checks that a form was not posted from another origin: the `Origin` (when the
/// browser sends one) is the app host's. The only check for the forms that come
/// before a session exists (`/auth`, `/auth/link`).
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), CsrfError> {
    match headers.get(header::ORIGIN) {
        Some(origin) if origin.to_str().ok() != Some(state.config.region.app_base()) => {
            Err(CsrfError::ForeignOrigin)
        }
        _ => Ok(()),
    }
}

/// Checks a submitted form: the `Origin` (when the browser sends one) is the app
/// host's, and `presented` is the token for `purpose` in the request's session.
pub fn check(
    state: &AppState,
    headers: &HeaderMap,
    purpose: &str,
    presented: &str,
) -> Result<(), CsrfError> {
    check_origin(state, headers)?;
    let secret = session_secret(state, headers).ok_or(CsrfError::NoSession)?;
    if verify(secret, purpose, presented) {
        Ok(())
    } else {
        Err(CsrfError::BadToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_session_and_purpose() {
        let t = token("session-a", "oauth-consent:1");
        assert!(verify("session-a", "oauth-consent:1", &t));
        assert!(!verify("session-b", "oauth-consent:1", &t));
        assert!(!verify("session-a", "oauth-consent:2", &t));
        assert!(!verify("session-a", "oauth-consent:1", ""));
        assert!(!verify("session-a", "oauth-consent:1", &t[..63]));
        assert_eq!(t.len(), 64);
    }
}
