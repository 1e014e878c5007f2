//! `POST {app}/auth`: "Sign in with your work email". The email finds the workspaces of
//! this region that know it (case-insensitively); one with Okta sign-in on continues
//! at the Initiate login URI with the email as `login_hint`, several let the user pick,
//! and the page says why when there is nothing to continue with. Continuing sets the
//! app host's fresh sign-in cookie that binds the hand-off to this browser
//! ([`handoff`]).
//!
//! Home realm discovery (issue 16): when no workspace has the person as an active
//! user, the workspace that verified the email's domain by DNS
//! ([`crate::store::domains`]) and signs in with Okta takes them to its Okta, where
//! just-in-time provisioning can create them. A claim never hides or overrides a
//! membership: whoever already knows the email is found first, as before; and a
//! pending (unproven) claim routes nothing, so no tenant can send another company's
//! people to its own login page.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use shared::ids::TeamId;
use uuid::Uuid;

use super::{handoff, no_store};
use crate::paths::{api, app};
use crate::rate_limit::{self, ClientIp};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::domains::{self, EmailDomain, HomeRealm};
use crate::store::users::looks_like_email;
use crate::web::return_to::{field as return_to_field, safe as safe_return_to};
use crate::web::{PageError, Text, csrf, page};

/// The email form's fields.
#[derive(Debug, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
    /// Set when the user picked one of several workspaces.
    team_id: Option<String>,
    return_to: Option<String>,
}

/// A workspace that knows the email.
#[derive(Debug)]
struct Found {
    team_id: TeamId,
    name: String,
    /// `None`: Okta not configured; `Some(false)`: sign-in turned off.
    sign_in: Option<bool>,
    /// Whether the workspace has the email as an active user (not only deactivated
    /// ones): only then does it count as knowing the person for home realm discovery.
    active: bool,
}

async fn lookup(state: &AppState, email: &str) -> Result<Vec<Found>, StoreError> {
    let client = state.pg.get().await?;
    let rows = client
        .query(
            "SELECT w.team_id, w.name, o.sign_in_enabled, bool_or(u.active)
               FROM users u
               JOIN workspaces w ON w.team_id = u.team_id
               LEFT JOIN okta_settings o ON o.team_id = u.team_id
              WHERE lower(u.email) = lower($1)
              GROUP BY w.team_id, w.name, o.sign_in_enabled
              ORDER BY w.name, w.team_id
              LIMIT 20",
            &[&email],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Found {
            team_id: TeamId::from(r.get::<_, Uuid>(0)),
            name: r.get(1),
            sign_in: r.get(2),
            active: r.get(3),
        })
        .collect())
}

/// The workspace that verified the email's domain, when it signs in with Okta.
async fn home_realm(state: &AppState, email: &str) -> Result<Option<HomeRealm>, StoreError> {
    let Some(domain) = EmailDomain::of_email(email) else {
        return Ok(None);
    };
    let client = state.pg.get().await?;
    Ok(domains::home_realm(&client, &domain)
        .await?
        .filter(|realm| realm.sign_in == Some(true)))
}

/// Continues at `team_id`'s Initiate login URI, the sign-in bound to this browser by a
/// fresh cookie.
fn continue_at(
    state: &AppState,
    team_id: TeamId,
    email: &str,
    return_to: Option<&str>,
) -> Response {
    let (cookie, binding) = handoff::mint_signin_cookie(state);
    let url = login_url(state, team_id, email, return_to, &binding);
    let mut response = Redirect::to(&url).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    no_store(&mut response);
    response
}

/// The Initiate login URI for `team_id` with the email as hint and the hash of the
/// browser's fresh sign-in cookie (never the cookie itself: only its holder completes).
fn login_url(
    state: &AppState,
    team_id: TeamId,
    email: &str,
    return_to: Option<&str>,
    app_binding: &str,
) -> String {
    let mut url = format!(
        "{}{}?team_id={team_id}&login_hint={}&app_binding={app_binding}",
        state.config.region.api_base(),
        api::OKTA_OIDC_LOGIN,
        url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
    );
    if let Some(r) = return_to {
        url.push_str("&return_to=");
        url.extend(url::form_urlencoded::byte_serialize(r.as_bytes()));
    }
    url
}

fn region_label(state: &AppState) -> String {
    state.config.region_id().as_str().to_ascii_uppercase()
}

/// The email form, with `message` above it; used by the `/auth` page too.
pub fn email_form(
    state: &AppState,
    email: &str,
    return_to: Option<&str>,
    message: Option<&str>,
) -> Markup {
    let described = if message.is_some() {
        "email-hint email-error"
    } else {
        "email-hint"
    };
    html! {
        h1 { "Sign in with your work email" }
        @if let Some(m) = message {
            p.error role="alert" id="email-error" { (Text(m)) }
        }
        form method="post" action=(app::SIGN_IN) {
            p {
                label for="email" { "Work email" } br;
                input id="email" name="email" type="email" size="40" required
                    autocomplete="email" value=(Text(email)) aria-describedby=(described);
            }
            p id="email-hint" {
                small {
                    "Your workspace in the " (Text(&region_label(state)))
                    " region signs you in with Okta."
                }
            }
            (return_to_field(return_to))
            button type="submit" { "Continue" }
        }
    }
}

fn form_page(
    state: &AppState,
    status: StatusCode,
    email: &str,
    return_to: Option<&str>,
    message: &str,
) -> Response {
    (
        status,
        page(
            "Sign in",
            email_form(state, email, return_to, Some(message)),
        ),
    )
        .into_response()
}

/// The email form's handler.
pub async fn submit(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<EmailForm>,
) -> Result<Response, PageError> {
    csrf::check_origin(&state, &headers)?;
    if let Some(wait) = rate_limit::take_for_client(&state, "sign-in", &client).await {
        return Err(PageError::TooManyRequests { wait });
    }
    let email = form.email.trim();
    let return_to = form.return_to.as_deref().and_then(safe_return_to);
    if email.len() > 254 || !looks_like_email(email) {
        return Ok(form_page(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            email,
            return_to,
            "Enter your work email address, for example jane@acme.com.",
        ));
    }
    let found = lookup(&state, email).await?;
    let picked = form.team_id.as_deref().and_then(|t| TeamId::parse(t).ok());
    if picked.is_none()
        && !found.iter().any(|f| f.active)
        && let Some(realm) = home_realm(&state, email).await?
    {
        tracing::info!(team_id = %realm.team_id, "sign-in routed by verified email domain");
        return Ok(continue_at(&state, realm.team_id, email, return_to));
    }
    let candidates: Vec<&Found> = match picked {
        Some(t) => found.iter().filter(|f| f.team_id == t).collect(),
        None => found.iter().collect(),
    };
    Ok(match candidates.as_slice() {
        [] => form_page(
            &state,
            StatusCode::NOT_FOUND,
            email,
            return_to,
            &format!(
                "No ClosedLoop AI workspace in the {} region knows this email address. Check \
                 the address, use the sign-in page of your workspace's region, or open \
                 ClosedLoop AI from your Okta dashboard.",
                region_label(&state)
            ),
        ),
        [one] => match one.sign_in {
            // The sign-in begins in this browser: a fresh cookie binds its hand-off.
            Some(true) => continue_at(&state, one.team_id, email, return_to),
            Some(false) => form_page(
                &state,
                StatusCode::FORBIDDEN,
                email,
                return_to,
                &format!(
                    "Okta sign-in is turned off for the workspace {}. A workspace admin can \
                     turn on Enable Okta sign-in under Integrations > Okta.",
                    one.name
                ),
            ),
            None => form_page(
                &state,
                StatusCode::FORBIDDEN,
                email,
                return_to,
                &format!(
                    "The workspace {} has not set up Okta sign-in yet. Ask a workspace admin \
                     to connect Okta under Integrations > Okta.",
                    one.name
                ),
            ),
        },
        several => page("Choose a workspace", choose(email, return_to, several)).into_response(),
    })
}

/// The list of workspaces to pick from.
fn choose(email: &str, return_to: Option<&str>, found: &[&Found]) -> Markup {
    html! {
        h1 { "Choose a workspace" }
        p { (Text(email)) " belongs to several workspaces in this region." }
        ul.plain {
            @for f in found {
                @if f.sign_in == Some(true) {
                    li { form method="post" action=(app::SIGN_IN) {
                        input type="hidden" name="email" value=(Text(email));
                        input type="hidden" name="team_id" value=(f.team_id);
                        (return_to_field(return_to))
                        button type="submit" { "Sign in to " (Text(&f.name)) }
                    } }
                } @else {
                    li { (Text(&f.name)) " " small { "(Okta sign-in is not enabled)" } }
                }
            }
        }
        p { a href=(app::SIGN_IN) { "Use another email" } }
    }
}
