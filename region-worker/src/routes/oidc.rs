//! Okta sign-in (OIDC relying party, OKTA.md §8, the seed's Steps 2 and 3), across the
//! region's two hosts:
//!
//! 1. `POST {app}/auth` ([`discover`]): the work email finds the user's workspace in
//!    this region; a workspace with Okta sign-in on continues at step 2.
//! 2. `GET {api}/api/okta/oidc/login?team_id=…` ([`login`], the seed's Initiate login
//!    URI, also reached from the Okta dashboard with `iss`): parks `state`, `nonce` and
//!    the PKCE verifier in Redis ([`pending`]) and sends the browser to Okta.
//! 3. `GET {api}/api/okta/oidc/callback` ([`callback`]): takes the single-use state,
//!    exchanges the code, verifies the ID token, finds the user bound to Okta's subject
//!    or (just in time) creates them ([`provision`]), and hands the sign-in to the app
//!    host with a one-time code.
//! 4. `GET {app}/auth/complete?code=…` ([`handoff`]): redeems the code once and sets
//!    the host-only session cookie there, in the browser that began the sign-in at
//!    step 1 (a host-only cookie set there, whose hash travels with the sign-in);
//!    any other browser confirms on a page first (`POST {app}/auth/complete`). A new
//!    session ends the browser's previous one.
//! 5. `POST {app}/auth/sign-out` ([`sign_out`]): ends the session and sends the browser
//!    to the org's logout with `id_token_hint`, back to `{app}/auth`.
//!
//! Every refusal is a [`failure::SignInFailure`]: a page that says what happened and
//! what to do, and an audit event; none creates a session. No code, token, secret or
//! cookie reaches a log line.

pub mod callback;
pub mod discover;
pub mod failure;
pub mod handoff;
pub mod login;
pub mod pending;
pub mod provision;
pub mod sign_out;

use axum::http::HeaderValue;

use crate::paths::{api, app};
use crate::state::AppState;

/// The region's Redirect URI, exactly as Okta must have it.
pub fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}{}",
        state.config.region.api_base(),
        api::OKTA_OIDC_CALLBACK
    )
}

/// The region's Post-logout URI.
pub fn post_logout_uri(state: &AppState) -> String {
    format!("{}{}", state.config.region.app_base(), app::POST_LOGOUT)
}

/// The region's sign-in page, absolute (pages on the API host link back to it).
pub fn sign_in_page(state: &AppState) -> String {
    format!("{}{}", state.config.region.app_base(), app::SIGN_IN)
}

/// `Cache-Control: no-store` for every answer of the flow (they carry codes and state).
pub(crate) fn no_store(response: &mut axum::response::Response) {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
}
