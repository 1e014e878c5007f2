//! The app host's pages that exist from the start: the home page, the sign-in page
//! ("Sign in with your work email", also the post-logout landing page) and the one-time
//! sign-in link of a workspace's first admin. Sign-in carries a
//! `return_to` (a relative path on this host, see [`crate::web::return_to`]) so that a
//! page that needs a session, such as the OAuth consent page, gets the browser back.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use shared::token::{self, TokenHash, TokenKind};
use uuid::Uuid;

use crate::paths::app;
use crate::rate_limit::{self, ClientIp};
use crate::session;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::{grants, workspaces};
use crate::web::return_to::{field as return_to_field, safe as safe_return_to};
use crate::web::{PageError, SignedIn, Text, csrf, page};

/// The home page; a signed-out browser goes to the sign-in page.
pub(crate) async fn home(
    State(state): State<AppState>,
    signed_in: Option<SignedIn>,
) -> Result<Response, PageError> {
    let Some(signed_in) = signed_in else {
        return Ok(Redirect::to(app::SIGN_IN).into_response());
    };
    // Who is signed in, and whether they administer the workspace (then the directory
    // pages are linked): the same reading as the admin pages' own gate.
    let Some(who) = grants::approver(&state.pg, signed_in.team_id(), signed_in.user_id()).await?
    else {
        return Ok(Redirect::to(app::SIGN_IN).into_response());
    };
    let (user, workspace, is_admin) = (who.user_name, who.workspace_name, who.is_admin);
    let body = html! {
        h1 { "ClosedLoop AI" }
        p {
            "Signed in as " strong { (Text(&user)) } " in workspace "
            strong { (Text(&workspace)) } " (region " (Text(state.config.region_id().as_str()))
            ", " code { (signed_in.team_id()) } ")."
        }
        nav aria-label="Workspace" { ul {
            li { a href=(app::OKTA_INTEGRATION) { "Integrations > Okta" } }
            li { a href=(app::TOKENS) { "API and MCP tokens" } }
            @if is_admin {
                li { a href=(app::PEOPLE) { "People" } }
                li { a href=(app::GROUPS) { "Groups" } }
                li { a href=(app::ACTIVITY) { "Activity" } }
            }
        } }
        (super::oidc::sign_out::button(&signed_in))
    };
    Ok(page("Home", body).into_response())
}

#[derive(Deserialize)]
pub(crate) struct AuthQuery {
    return_to: Option<String>,
    /// Set by Okta's logout on its way back (the Post-logout URI), and by our own
    /// sign-out when there was no Okta session to end.
    state: Option<String>,
    signed_out: Option<String>,
}

/// The sign-in page. With a `return_to`, a signed-in browser goes straight there, and
/// a signed-out one may paste its one-time sign-in link to continue.
pub(crate) async fn auth_page(
    State(state): State<AppState>,
    signed_in: Result<Option<SignedIn>, PageError>,
    Query(q): Query<AuthQuery>,
) -> Response {
    let return_to = q.return_to.as_deref().and_then(safe_return_to);
    if let Some(target) = return_to
        && let Ok(Some(_)) = signed_in
    {
        return Redirect::to(target).into_response();
    }
    let body = html! {
        @if q.state.is_some() || q.signed_out.is_some() {
            p role="status" { strong { "You are signed out." } }
        }
        (super::oidc::discover::email_form(&state, "", return_to, None))
        p { "You can also open ClosedLoop AI from your company's Okta dashboard." }
        @if return_to.is_some() {
            h2 { "Continue with a one-time sign-in link" }
            p {
                "Sign in to continue where you were. A workspace's first admin can paste \
                 the one-time sign-in link an operator gave them."
            }
            form method="post" action=(app::SIGN_IN_LINK) {
                p {
                    label for="code" { "One-time sign-in link" } br;
                    input id="code" name="code" type="text" size="60" required autocomplete="off";
                }
                (return_to_field(return_to))
                button type="submit" { "Sign in and continue" }
            }
        }
    };
    page("Sign in", body).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    code: Option<String>,
    return_to: Option<String>,
}

/// A GET only shows a button: mail scanners that prefetch links must not consume a
/// single-use link.
pub(crate) async fn link_confirm(Query(q): Query<LinkQuery>) -> Result<Markup, PageError> {
    let Some(code) = q.code.filter(|c| token::parse_prefix(c).is_some()) else {
        return Err(invalid_link());
    };
    let body = html! {
        h1 { "Sign in to ClosedLoop AI" }
        p { "This one-time link signs you in as the workspace's first admin." }
        form method="post" action=(app::SIGN_IN_LINK) {
            input type="hidden" name="code" value=(Text(&code));
            (return_to_field(q.return_to.as_deref()))
            button type="submit" { "Sign in" }
        }
    };
    Ok(page("Sign in", body))
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    code: String,
    return_to: Option<String>,
}

/// The code of a pasted sign-in link: the link itself or just its code.
fn link_code(pasted: &str) -> &str {
    let pasted = pasted.trim();
    match pasted.split_once("code=") {
        Some((_, rest)) => rest.split('&').next().unwrap_or(rest),
        None => pasted,
    }
}

pub(crate) async fn link_redeem(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LinkForm>,
) -> Result<Response, PageError> {
    // No session exists yet to bind a CSRF token to: the Origin check stops a foreign
    // page from signing the browser into someone else's workspace (login CSRF).
    csrf::check_origin(&state, &headers)?;
    if let Some(wait) = rate_limit::take_for_client(&state, "sign-in", &client).await {
        return Err(PageError::TooManyRequests { wait });
    }
    let code = link_code(&form.code);
    match token::parse_prefix(code) {
        Some(p)
            if p.kind == TokenKind::OneTime && p.region == state.config.region_id().as_str() => {}
        _ => return Err(invalid_link()),
    }
    let Some(redeemed) =
        workspaces::redeem_link(&state.pg, &TokenHash::of(code), state.config.clock.now()).await?
    else {
        return Err(invalid_link());
    };
    let cookie = session::start(
        &state,
        redeemed.team_id,
        redeemed.user_id,
        redeemed.user_epoch,
        "sign-in-link",
    )
    .await?;
    audit_sign_in(&state, redeemed.team_id, redeemed.user_id).await;
    let target = form
        .return_to
        .as_deref()
        .and_then(safe_return_to)
        .unwrap_or(app::HOME);
    let mut response = Redirect::to(target).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

async fn audit_sign_in(state: &AppState, team_id: shared::ids::TeamId, user_id: Uuid) {
    metrics::counter!(
        crate::metrics::SIGN_INS,
        "method" => "link", "outcome" => "signed_in", "reason" => "none"
    )
    .increment(1);
    let result = async {
        let client = state.pg.get().await?;
        let user = user_id.to_string();
        audit::record(
            &client,
            &AuditEvent {
                team_id: Some(team_id),
                actor: &user,
                action: AuditAction::SessionSignedInLink,
                target: Some(&user),
                detail: serde_json::json!({}),
            },
        )
        .await?;
        Ok::<(), StoreError>(())
    };
    if let Err(e) = result.await {
        tracing::error!(error = %e, "could not audit a sign-in");
    }
}

fn invalid_link() -> PageError {
    PageError::BadRequest {
        title: "This sign-in link cannot be used",
        explanation: "The link is invalid, has expired (links are valid for 24 hours) or was \
                      already used. Ask your ClosedLoop operator for a new link: they run \
                      `region-worker workspace sign-in-link --team <your workspace id> \
                      --email <your email>`, which makes a new one-time link for a workspace \
                      admin and stops any earlier unused link. Once Okta sign-in is set up, \
                      sign in with Okta instead.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_links_yield_their_code() {
        assert_eq!(
            link_code(" http://app.closedloop.localhost/auth/link?code=clk_us_otc_x&y=1 "),
            "clk_us_otc_x"
        );
        assert_eq!(link_code("clk_us_otc_x"), "clk_us_otc_x");
    }
}
