//! The app host's pages that exist from the start: the home page, the sign-in page
//! ("Sign in with your work email", also the post-logout landing page) and the one-time
//! sign-in link of a workspace's first admin. Sign-in carries a
//! `return_to` (a relative path on this host, see [`safe_return_to`]) so that a page
//! that needs a session, such as the OAuth consent page, gets the browser back.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use shared::token::{self, TokenHash, TokenKind};
use uuid::Uuid;

use crate::csrf;
use crate::html::{error_page, escape, page};
use crate::rate_limit::{self, ClientIp};
use crate::session;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::workspaces;

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/auth", get(auth_page).post(super::oidc::discover::submit))
        .route("/auth/link", get(link_confirm).post(link_redeem))
}

/// The page a signed-out browser is sent to, coming back to `path` after sign-in.
pub fn sign_in_redirect(path: &str) -> Response {
    let target = match safe_return_to(path) {
        Some(p) => format!(
            "/auth?return_to={}",
            url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
        ),
        None => "/auth".to_owned(),
    };
    Redirect::to(&target).into_response()
}

/// `return_to` if it is safe to redirect to after sign-in: a relative path on this
/// host. It must start with `/` but not `//` or `/\` (browsers read both as another
/// host), contain no backslash and no control or space characters (browsers strip tabs
/// and newlines, which could turn `/\t/evil` into `//evil`), and stay short.
pub fn safe_return_to(s: &str) -> Option<&str> {
    let ok = s.len() <= 2048
        && s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.bytes().any(|b| b <= b' ' || b == 0x7f);
    ok.then_some(s)
}

/// The page answering a store failure: `503` with `Retry-After`, no internals.
pub(crate) fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "store unavailable");
    let mut r = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "ClosedLoop AI cannot reach its data store right now. Please try again in a few seconds.",
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static(crate::error::RETRY_AFTER_SECS),
    );
    r
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match session::current(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Redirect::to("/auth").into_response(),
        Err(e) => return unavailable(e),
    };
    let who = async {
        let client = state.pg.get().await?;
        let row = client
            .query_one(
                "SELECT u.user_name, w.name FROM users u JOIN workspaces w USING (team_id)
                  WHERE u.team_id = $1 AND u.id = $2",
                &[
                    &session.team_id.as_uuid(),
                    &session.user_id.unwrap_or_default(),
                ],
            )
            .await?;
        Ok::<(String, String), StoreError>((row.get(0), row.get(1)))
    };
    match who.await {
        Ok((user, workspace)) => page(
            StatusCode::OK,
            "Home",
            &format!(
                "<h1>ClosedLoop AI</h1><p>Signed in as <strong>{}</strong> in workspace \
                 <strong>{}</strong> (region {}, <code>{}</code>).</p>\
                 <nav><ul><li><a href=\"{}\">Integrations &gt; Okta</a></li>\
                 <li><a href=\"{}\">API and MCP tokens</a></li></ul></nav>{}",
                escape(&user),
                escape(&workspace),
                escape(state.config.region_id().as_str()),
                session.team_id,
                super::integrations::PATH,
                super::tokens::page::PATH,
                super::oidc::sign_out::button(&state, &headers),
            ),
        ),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct AuthQuery {
    return_to: Option<String>,
    /// Set by Okta's logout on its way back (the Post-logout URI), and by our own
    /// sign-out when there was no Okta session to end.
    state: Option<String>,
    signed_out: Option<String>,
}

/// The hidden form field carrying a safe `return_to`, or nothing.
fn return_to_field(return_to: Option<&str>) -> String {
    return_to
        .and_then(safe_return_to)
        .map(|r| {
            format!(
                "<input type=\"hidden\" name=\"return_to\" value=\"{}\">",
                escape(r)
            )
        })
        .unwrap_or_default()
}

/// The sign-in page. With a `return_to`, a signed-in browser goes straight there, and
/// a signed-out one may paste its one-time sign-in link to continue.
async fn auth_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuthQuery>,
) -> Response {
    let return_to = q.return_to.as_deref().and_then(safe_return_to);
    if let Some(target) = return_to
        && let Ok(Some(_)) = session::current(&state, &headers).await
    {
        return Redirect::to(target).into_response();
    }
    let continue_form = if return_to.is_some() {
        format!(
            "<h2>Continue with a one-time sign-in link</h2>\
             <p>Sign in to continue where you were. A workspace's first admin can paste \
             the one-time sign-in link an operator gave them.</p>\
             <form method=\"post\" action=\"/auth/link\">\
             <p><label for=\"code\">One-time sign-in link</label><br>\
             <input id=\"code\" name=\"code\" type=\"text\" size=\"60\" required autocomplete=\"off\"></p>\
             {}<button type=\"submit\">Sign in and continue</button></form>",
            return_to_field(return_to)
        )
    } else {
        String::new()
    };
    let signed_out = if q.state.is_some() || q.signed_out.is_some() {
        "<p role=\"status\"><strong>You are signed out.</strong></p>"
    } else {
        ""
    };
    page(
        StatusCode::OK,
        "Sign in",
        &format!(
            "{signed_out}{}\
             <p>You can also open ClosedLoop AI from your company's Okta dashboard.</p>\
             {continue_form}",
            super::oidc::discover::email_form(&state, "", return_to, None)
        ),
    )
}

#[derive(Deserialize)]
struct LinkQuery {
    code: Option<String>,
    return_to: Option<String>,
}

/// A GET only shows a button: mail scanners that prefetch links must not consume a
/// single-use link.
async fn link_confirm(Query(q): Query<LinkQuery>) -> Response {
    let Some(code) = q.code.filter(|c| token::parse_prefix(c).is_some()) else {
        return invalid_link();
    };
    page(
        StatusCode::OK,
        "Sign in",
        &format!(
            "<h1>Sign in to ClosedLoop AI</h1><p>This one-time link signs you in as the \
             workspace's first admin.</p><form method=\"post\" action=\"/auth/link\">\
             <input type=\"hidden\" name=\"code\" value=\"{}\">{}<button type=\"submit\">Sign in</button></form>",
            escape(&code),
            return_to_field(q.return_to.as_deref())
        ),
    )
}

#[derive(Deserialize)]
struct LinkForm {
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

async fn link_redeem(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LinkForm>,
) -> Response {
    // No session exists yet to bind a CSRF token to: the Origin check stops a foreign
    // page from signing the browser into someone else's workspace (login CSRF).
    if csrf::check_origin(&state, &headers).is_err() {
        return csrf::foreign_origin_page();
    }
    if let Some(wait) = rate_limit::take_for_client(&state, "sign-in", &client).await {
        return rate_limit::page_too_many(wait);
    }
    let code = link_code(&form.code);
    match token::parse_prefix(code) {
        Some(p)
            if p.kind == TokenKind::OneTime && p.region == state.config.region_id().as_str() => {}
        _ => return invalid_link(),
    }
    let redeemed = match workspaces::redeem_link(&state.pg, &TokenHash::of(code)).await {
        Ok(Some(r)) => r,
        Ok(None) => return invalid_link(),
        Err(e) => return unavailable(e),
    };
    let cookie = match session::start(
        &state,
        redeemed.team_id,
        redeemed.user_id,
        redeemed.user_epoch,
        "sign-in-link",
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    audit_sign_in(&state, redeemed.team_id, redeemed.user_id).await;
    let target = form
        .return_to
        .as_deref()
        .and_then(safe_return_to)
        .unwrap_or("/");
    let mut response = Redirect::to(target).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

async fn audit_sign_in(state: &AppState, team_id: shared::ids::TeamId, user_id: Uuid) {
    let result = async {
        let client = state.pg.get().await?;
        client
            .execute(
                "INSERT INTO audit_events (team_id, actor, action, target)
                 VALUES ($1, $2, 'session.signed_in.link', $2)",
                &[&team_id.as_uuid(), &user_id.to_string()],
            )
            .await?;
        Ok::<(), StoreError>(())
    };
    if let Err(e) = result.await {
        tracing::error!(error = %e, "could not audit a sign-in");
    }
}

fn invalid_link() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in link cannot be used",
        "The link is invalid, has expired (links are valid for 24 hours) or was already used. \
         Ask an operator for a new one.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_must_be_a_relative_path_on_this_host() {
        for good in [
            "/",
            "/oauth/consent?request=4b7e6a1c-0f52-4a8e-9a57-1c3d2b4a5e6f",
            "/integrations/okta/provisioning",
        ] {
            assert_eq!(safe_return_to(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "https://evil.test/",
            "//evil.test/",
            "/\\evil.test/",
            "/a\\b",
            "javascript:alert(1)",
            "evil.test",
            "/\t/evil.test",
            "/ /evil",
            "/\n/evil",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
        assert_eq!(safe_return_to(&format!("/{}", "a".repeat(2048))), None);
    }

    #[test]
    fn pasted_links_yield_their_code() {
        assert_eq!(
            link_code(" http://app.closedloop.localhost/auth/link?code=clk_us_otc_x&y=1 "),
            "clk_us_otc_x"
        );
        assert_eq!(link_code("clk_us_otc_x"), "clk_us_otc_x");
    }
}
