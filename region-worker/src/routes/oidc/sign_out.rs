//! `POST {app}/auth/sign-out`: ends the browser's session (revoked in both stores) and,
//! for an Okta sign-in, sends the browser to the org's logout with the session's ID
//! token as `id_token_hint` and the region's Post-logout URI, so the Okta session ends
//! too and the browser lands on `/auth` ("You are signed out"). A session without Okta
//! goes straight to `/auth`. The form carries a CSRF token bound to the session.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::failure::record;
use super::{no_store, post_logout_uri};
use crate::csrf;
use crate::html::error_page;
use crate::okta::oidc;
use crate::routes::pages::unavailable;
use crate::session;
use crate::state::AppState;

/// The CSRF purpose of the sign-out forms.
pub const CSRF_PURPOSE: &str = "sign-out";

/// The sign-out form's fields.
#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// The HTML of a sign-out button for the request's session (empty without one).
pub fn button(state: &AppState, headers: &HeaderMap) -> String {
    match csrf::for_request(state, headers, CSRF_PURPOSE) {
        Some(token) => format!(
            "<form method=\"post\" action=\"{}\" class=\"inline\">\
             <input type=\"hidden\" name=\"{}\" value=\"{}\">\
             <button type=\"submit\">Sign out</button></form>",
            super::SIGN_OUT_PATH,
            csrf::FIELD,
            crate::html::escape(&token)
        ),
        None => String::new(),
    }
}

/// The sign-out endpoint.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignOutForm>,
) -> Response {
    let signed_out = |location: &str| {
        let mut r = Redirect::to(location).into_response();
        r.headers_mut()
            .insert(header::SET_COOKIE, session::clear_cookie(&state));
        no_store(&mut r);
        r
    };
    if csrf::session_secret(&state, &headers).is_none() {
        return signed_out("/auth?signed_out=1");
    }
    if csrf::check(&state, &headers, CSRF_PURPOSE, &form.csrf).is_err() {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "The sign-out form expired or did not come from this ClosedLoop AI page. Reload \
             the page and sign out again.",
        );
    }
    let ended = match session::end(&state, &headers).await {
        Ok(e) => e,
        Err(e) => return unavailable(e),
    };
    let Some(ended) = ended else {
        return signed_out("/auth?signed_out=1");
    };
    let actor = ended
        .user_id
        .map_or_else(|| "user".to_owned(), |u| format!("user:{u}"));
    record(
        &state,
        Some(ended.team_id),
        &actor,
        "session.signed_out",
        ended.user_id.map(|u| u.to_string()).as_deref(),
        json!({ "okta": ended.okta.is_some() }),
    )
    .await;
    let Some(okta) = ended.okta.filter(|o| !o.id_token.is_empty()) else {
        return signed_out("/auth?signed_out=1");
    };
    // The org's logout endpoint from its discovery document; Okta's fixed path when
    // Okta cannot be asked now (signing out must not fail because Okta is down).
    let endpoint = match state
        .okta
        .discovery
        .get(&state.okta.http, &okta.issuer)
        .await
    {
        Ok(d) => d.end_session_endpoint.clone(),
        Err(e) => {
            tracing::warn!(error = %e, "Okta discovery failed at sign-out");
            None
        }
    }
    .or_else(|| Url::parse(&format!("{}/oauth2/v1/logout", okta.issuer)).ok());
    match endpoint {
        Some(endpoint) => {
            let target = oidc::logout_url(
                &endpoint,
                &okta.id_token,
                &post_logout_uri(&state),
                &oidc::random_value(),
            );
            signed_out(target.as_str())
        }
        None => signed_out("/auth?signed_out=1"),
    }
}
