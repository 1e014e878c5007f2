//! `GET {api}/api/okta/oidc/login?team_id=…`: the seed's Initiate login URI. Reached
//! from `/auth` (with `login_hint` and `return_to`) or from the Okta dashboard (with
//! `iss`, and possibly `login_hint` and `target_link_uri`, OKTA.md §8).
//!
//! It finds the workspace, checks that Okta sign-in is on, that an `iss` names the
//! workspace's own org and that the org is one the workspace may use (Okta's own
//! domain, or a custom domain an operator allows: [`settings::org_permitted`]), then
//! starts an authorization-code request with `state`, `nonce`
//! and PKCE S256, scopes `openid email profile` and the region's exact callback. The
//! browser is bound to the request by a host-only cookie on the API host whose hash the
//! parked request keeps, so a callback delivered to another browser is refused.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use shared::ids::TeamId;
use shared::token::TokenHash;

use super::failure::SignInFailure;
use super::pending::{self, PendingSignIn};
use super::{no_store, redirect_uri};
use crate::cookie::{self, SetCookie};
use crate::okta::oidc::{self, AuthorizeRequest};
use crate::okta::settings::{self, OktaSettings};
use crate::paths::api;
use crate::rate_limit::{self, ClientIp};
use crate::state::AppState;
use crate::store::workspaces;
use crate::web::PageError;
use crate::web::return_to::safe as safe_return_to;

/// The longest `login_hint` passed on to Okta (an email is at most 254 characters).
const MAX_LOGIN_HINT: usize = 254;

/// The name of the flow-binding cookie on the API host.
pub fn binding_cookie_name(state: &AppState) -> &'static str {
    if cookie::secure(&state.config.region.api_url) {
        "__Secure-clk_oidc"
    } else {
        "clk_oidc"
    }
}

/// The login request's parameters (first value of each; unknown ones ignored).
#[derive(Debug, Default)]
struct LoginParams {
    team_id: Option<String>,
    iss: Option<String>,
    login_hint: Option<String>,
    target_link_uri: Option<String>,
    return_to: Option<String>,
    /// SHA-256 (hex) of the app host's sign-in cookie, from `POST {app}/auth`.
    app_binding: Option<String>,
}

impl LoginParams {
    fn parse(query: &str) -> Self {
        let mut p = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "team_id" => &mut p.team_id,
                "iss" => &mut p.iss,
                "login_hint" => &mut p.login_hint,
                "target_link_uri" => &mut p.target_link_uri,
                "return_to" => &mut p.return_to,
                "app_binding" => &mut p.app_binding,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        p
    }
}

/// Whether `s` is a SHA-256 digest in lower-case hex (what `/auth` passes on).
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where to land after sign-in: a safe relative `return_to`, or a `target_link_uri` on
/// this region's app host (its path and query).
fn landing(state: &AppState, p: &LoginParams) -> Option<String> {
    if let Some(r) = p.return_to.as_deref().and_then(safe_return_to) {
        return Some(r.to_owned());
    }
    let target = p.target_link_uri.as_deref()?;
    if let Some(r) = safe_return_to(target) {
        return Some(r.to_owned());
    }
    let url = url::Url::parse(target).ok()?;
    let app = &state.config.region.app_url;
    if url.origin() != app.origin() {
        return None;
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    safe_return_to(&path).map(str::to_owned)
}

/// Finds the workspace and its settings from `team_id`, or from `iss` alone.
async fn workspace(
    state: &AppState,
    p: &LoginParams,
) -> Result<(TeamId, OktaSettings), SignInFailure> {
    let client = state
        .pg
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let team_id = match (&p.team_id, &p.iss) {
        (Some(t), _) => TeamId::parse(t).map_err(|_| SignInFailure::UnknownWorkspace)?,
        (None, Some(iss)) => {
            let found = settings::by_issuer(&client, iss.trim_end_matches('/')).await?;
            match found.as_slice() {
                [only] => only.team_id,
                _ => return Err(SignInFailure::UnknownWorkspace),
            }
        }
        (None, None) => return Err(SignInFailure::UnknownWorkspace),
    };
    match settings::get(&client, team_id).await? {
        Some(s) => Ok((team_id, s)),
        None if workspaces::exists(&state.pg, team_id).await? => Err(SignInFailure::NotConfigured),
        None => Err(SignInFailure::UnknownWorkspace),
    }
}

/// The login endpoint.
pub async fn login(
    State(state): State<AppState>,
    client: ClientIp,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(wait) = rate_limit::take_for_client(&state, "oidc-login", &client).await {
        return PageError::TooManyRequests { wait }.into_response();
    }
    let p = LoginParams::parse(query.as_deref().unwrap_or_default());
    let (team_id, settings) = match workspace(&state, &p).await {
        Ok(w) => {
            crate::telemetry::record_team(w.0);
            w
        }
        Err(f) => {
            let team = p.team_id.as_deref().and_then(|t| TeamId::parse(t).ok());
            return f.respond(&state, team, json!({ "step": "login" })).await;
        }
    };
    let refuse = |f: SignInFailure, detail: serde_json::Value| {
        let state = state.clone();
        async move { f.respond(&state, Some(team_id), detail).await }
    };
    if !settings.sign_in_enabled {
        return refuse(SignInFailure::Disabled, json!({ "step": "login" })).await;
    }
    if let Some(iss) = &p.iss
        && iss.trim_end_matches('/') != settings.issuer
    {
        return refuse(SignInFailure::IssuerMismatch, json!({ "step": "login" })).await;
    }
    // Only an org the workspace may use gets a sign-in request (and so, later, a code).
    let permitted = match state.pg.get().await {
        Ok(client) => settings::org_permitted(&client, &settings, state.config.development)
            .await
            .map_err(SignInFailure::from),
        Err(e) => Err(crate::store::StoreError::from(e).into()),
    };
    match permitted {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return refuse(
                SignInFailure::OrgNotAllowed(e),
                json!({ "step": "login", "okta_domain": settings.okta_domain }),
            )
            .await;
        }
        Err(f) => return f.page(&state),
    }
    let discovery = match state
        .okta
        .discovery
        .get(&state.okta.http, &settings.issuer)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(%team_id, error = %e, "Okta discovery failed at login");
            return refuse(
                SignInFailure::OktaUnreachable(e.to_string()),
                json!({ "step": "discovery" }),
            )
            .await;
        }
    };
    // A fresh binding for every sign-in, never one found in the browser: a value
    // planted there (a cookie tossed from a sibling host) must bind nothing. Of two
    // sign-ins started in two tabs, the later one wins.
    let cookie_name = binding_cookie_name(&state);
    let binding = oidc::random_value();
    let state_value = oidc::random_value();
    let nonce = oidc::random_value();
    let (verifier, challenge) = oidc::pkce_pair();
    let ttl = state.config.sign_in.state_ttl;
    let pending = PendingSignIn {
        team_id,
        issuer: settings.issuer.clone(),
        client_id: settings.client_id.clone(),
        nonce: nonce.clone(),
        code_verifier: verifier,
        return_to: landing(&state, &p),
        binding: TokenHash::of(&binding).to_hex(),
        app_binding: p.app_binding.filter(|h| is_sha256_hex(h)),
        expires_at: (state.config.clock.now() + ttl).unix_timestamp(),
    };
    let ttl_secs = ttl.whole_seconds().max(1) as u64;
    if let Err(e) = pending::save(&state.redis, &state_value, &pending, ttl_secs).await {
        return SignInFailure::Store(e).page(&state);
    }
    let login_hint = p
        .login_hint
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty() && h.len() <= MAX_LOGIN_HINT);
    let redirect = redirect_uri(&state);
    let target = oidc::authorize_url(
        &discovery.authorization_endpoint,
        &AuthorizeRequest {
            client_id: &settings.client_id,
            redirect_uri: &redirect,
            state: &state_value,
            nonce: &nonce,
            code_challenge: &challenge,
            login_hint,
        },
    );
    tracing::info!(%team_id, initiated_by_okta = p.iss.is_some(), "Okta sign-in started");
    let mut response = Redirect::to(target.as_str()).into_response();
    no_store(&mut response);
    // Sent only to the OIDC endpoints (the login and its callback), never the rest of
    // the API host.
    let cookie = SetCookie {
        name: cookie_name,
        value: &binding,
        path: api::OKTA_OIDC,
        max_age: ttl.whole_seconds().max(1),
        secure: cookie::secure(&state.config.region.api_url),
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie.header());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_take_their_first_value() {
        let p = LoginParams::parse(
            "team_id=a&team_id=b&iss=https%3A%2F%2Facme.okta.com&login_hint=j%40a.test&x=1",
        );
        assert_eq!(p.team_id.as_deref(), Some("a"));
        assert_eq!(p.iss.as_deref(), Some("https://acme.okta.com"));
        assert_eq!(p.login_hint.as_deref(), Some("j@a.test"));
        assert!(p.target_link_uri.is_none());
    }
}
