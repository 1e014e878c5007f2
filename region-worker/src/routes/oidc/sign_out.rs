//! `POST {app}/auth/sign-out`: ends the browser's session (revoked in both stores) and,
//! for an Okta sign-in, sends the browser to the org's logout with the session's ID
//! token as `id_token_hint` and the region's Post-logout URI, so the Okta session ends
//! too and the browser lands on `/auth` ("You are signed out"). A session without Okta
//! goes straight to `/auth`. The form carries a CSRF token bound to the session.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::failure::record;
use super::{no_store, post_logout_uri};
use crate::okta::oidc;
use crate::paths::app;
use crate::session;
use crate::state::AppState;
use crate::store::audit::AuditAction;
use crate::web::{PageError, SignedIn, Text, csrf};

/// The CSRF purpose of the sign-out forms.
pub const CSRF_PURPOSE: &str = "sign-out";

/// The sign-out form's fields.
#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// The sign-out button of a signed-in page.
pub fn button(signed_in: &SignedIn) -> Markup {
    html! {
        form method="post" action=(app::SIGN_OUT) class="inline" {
            input type="hidden" name=(csrf::FIELD) value=(Text(&signed_in.csrf_token(CSRF_PURPOSE)));
            button type="submit" { "Sign out" }
        }
    }
}

/// The sign-out endpoint.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignOutForm>,
) -> Result<Response, PageError> {
    let signed_out = |location: &str| {
        let mut r = Redirect::to(location).into_response();
        r.headers_mut()
            .insert(header::SET_COOKIE, session::clear_cookie(&state));
        no_store(&mut r);
        r
    };
    if csrf::session_secret(&state, &headers).is_none() {
        return Ok(signed_out(app::SIGNED_OUT));
    }
    csrf::check(&state, &headers, CSRF_PURPOSE, &form.csrf)?;
    let Some(ended) = session::end(&state, &headers).await? else {
        return Ok(signed_out(app::SIGNED_OUT));
    };
    let actor = ended
        .user_id
        .map_or_else(|| "user".to_owned(), |u| format!("user:{u}"));
    record(
        &state,
        Some(ended.team_id),
        &actor,
        AuditAction::SessionSignedOut,
        ended.user_id.map(|u| u.to_string()).as_deref(),
        json!({ "okta": ended.okta.is_some() }),
    )
    .await;
    let Some(okta) = ended.okta.filter(|o| !o.id_token.is_empty()) else {
        return Ok(signed_out(app::SIGNED_OUT));
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
    Ok(match endpoint {
        Some(endpoint) => {
            let target = oidc::logout_url(
                &endpoint,
                &okta.id_token,
                &post_logout_uri(&state),
                &oidc::random_value(),
            );
            signed_out(target.as_str())
        }
        None => signed_out(app::SIGNED_OUT),
    })
}
