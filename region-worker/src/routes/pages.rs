//! The app host's pages that exist from the start: the home page, the sign-in page and
//! the one-time sign-in link of a workspace's first admin.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use shared::token::{self, TokenHash, TokenKind};
use uuid::Uuid;

use crate::html::{error_page, escape, page};
use crate::session;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::workspaces;

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/auth", get(auth_page))
        .route("/auth/link", get(link_confirm).post(link_redeem))
}

fn unavailable(e: StoreError) -> Response {
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
                 <strong>{}</strong> (region {}, <code>{}</code>).</p>",
                escape(&user),
                escape(&workspace),
                escape(state.config.region_id().as_str()),
                session.team_id
            ),
        ),
        Err(e) => unavailable(e),
    }
}

async fn auth_page() -> Response {
    page(
        StatusCode::OK,
        "Sign in",
        "<h1>Sign in to ClosedLoop AI</h1>\
         <p>Open the sign-in link your workspace admin sent you, or start from your \
         company's Okta dashboard.</p>",
    )
}

#[derive(Deserialize)]
struct LinkQuery {
    code: Option<String>,
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
             <input type=\"hidden\" name=\"code\" value=\"{}\"><button type=\"submit\">Sign in</button></form>",
            escape(&code)
        ),
    )
}

#[derive(Deserialize)]
struct LinkForm {
    code: String,
}

async fn link_redeem(
    State(state): State<AppState>,
    axum::Form(form): axum::Form<LinkForm>,
) -> Response {
    match token::parse_prefix(&form.code) {
        Some(p)
            if p.kind == TokenKind::OneTime && p.region == state.config.region_id().as_str() => {}
        _ => return invalid_link(),
    }
    let redeemed = match workspaces::redeem_link(&state.pg, &TokenHash::of(&form.code)).await {
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
    let mut response = Redirect::to("/").into_response();
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
