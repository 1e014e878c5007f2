//! The connected SCIM provisioning grants of a workspace, for its admins, on the app
//! host: when each was approved and by whom, its scopes, when it was last used, and a
//! Disconnect button that revokes the grant and every token from it at once.
//!
//! [`grants_section`] renders the list as a self-contained section so that the
//! Integrations > Okta page can embed it; [`show`] serves it alone at [`PATH`] until
//! then. Both forms post to [`DISCONNECT_PATH`] with a CSRF token for
//! [`csrf_purpose`] and come back to the page they name in `return_to`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use shared::ids::TeamId;
use shared::scope::Scope;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::revoke::{needs_publish, revoke_in};
use crate::csrf;
use crate::html::{error_page, escape, page};
use crate::routes::pages::{safe_return_to, sign_in_redirect, unavailable};
use crate::session;
use crate::state::AppState;
use crate::store::grants::{self, GrantSummary, Revocation, RevokeReason};
use crate::store::{StoreError, tokens};

/// The page on the app host.
pub const PATH: &str = "/integrations/okta/provisioning";
/// Where the Disconnect forms post.
pub const DISCONNECT_PATH: &str = "/integrations/okta/provisioning/disconnect";

/// The CSRF purpose of the Disconnect forms of a workspace.
pub fn csrf_purpose(team_id: TeamId) -> String {
    format!("scim-oauth-grants:{team_id}")
}

fn when(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// The list of connected grants as an HTML section, with a Disconnect form per grant.
/// `csrf_token` is [`csrf::for_request`] for [`csrf_purpose`] of the workspace;
/// `return_to` is the (relative) page the forms come back to.
pub fn grants_section(grants: &[GrantSummary], csrf_token: &str, return_to: &str) -> String {
    let mut html = String::from(
        "<section aria-labelledby=\"scim-provisioning\">\
         <h2 id=\"scim-provisioning\">Provisioning connections</h2>\
         <p>Okta provisions users and groups with a token it obtained when a workspace \
         admin approved it. Disconnecting revokes that approval and every token issued \
         from it at once; Okta then needs to be authorized again from its Provisioning tab.</p>",
    );
    if grants.is_empty() {
        html.push_str("<p>No Okta provisioning connection.</p></section>");
        return html;
    }
    html.push_str(
        "<table><caption>Connected provisioning grants</caption><thead><tr>\
         <th scope=\"col\">Connected</th><th scope=\"col\">Approved by</th>\
         <th scope=\"col\">Scopes</th><th scope=\"col\">Last used</th>\
         <th scope=\"col\">Action</th></tr></thead><tbody>",
    );
    for g in grants {
        let scopes: String = g
            .scopes
            .iter()
            .map(|s| match Scope::parse(s) {
                Ok(sc) => format!(
                    "<li><code>{}</code>: {}</li>",
                    sc.as_str(),
                    escape(sc.describe())
                ),
                Err(_) => format!("<li><code>{}</code></li>", escape(s)),
            })
            .collect();
        let approved = when(g.approved_at);
        let last_used = g.last_used_at.map_or_else(|| "Not yet".to_owned(), when);
        html.push_str(&format!(
            "<tr><td>{connected}</td><td>{by}<br><small>approved {approved}</small></td>\
             <td><ul>{scopes}</ul></td><td>{last_used}</td><td>\
             <form method=\"post\" action=\"{DISCONNECT_PATH}\">\
             <input type=\"hidden\" name=\"grant_id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"{field}\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"return_to\" value=\"{back}\">\
             <button type=\"submit\" aria-label=\"Disconnect the connection approved by {by} on {approved}\">Disconnect</button>\
             </form></td></tr>",
            connected = g.connected_at.map_or_else(|| approved.clone(), when),
            by = escape(&g.approved_by_name),
            id = g.id,
            field = csrf::FIELD,
            csrf = escape(csrf_token),
            back = escape(safe_return_to(return_to).unwrap_or(PATH)),
        ));
    }
    html.push_str("</tbody></table></section>");
    html
}

/// The signed-in admin of a workspace, or the response that stops the request.
async fn admin(state: &AppState, headers: &HeaderMap) -> Result<(TeamId, Uuid), Response> {
    let session = match session::current(state, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(sign_in_redirect(PATH)),
        Err(e) => return Err(unavailable(e)),
    };
    let Some(user_id) = session.user_id else {
        return Err(sign_in_redirect(PATH));
    };
    match grants::approver(&state.pg, session.team_id, user_id).await {
        Ok(Some(a)) if a.is_admin => Ok((session.team_id, user_id)),
        Ok(Some(_)) => Err(error_page(
            StatusCode::FORBIDDEN,
            "Only workspace admins can manage Okta provisioning",
            "Ask an admin of your workspace to manage the Okta provisioning connection.",
        )),
        Ok(None) => Err(sign_in_redirect(PATH)),
        Err(e) => Err(unavailable(e)),
    }
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    disconnected: Option<String>,
}

/// `GET /integrations/okta/provisioning`.
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let (team_id, _) = match admin(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let listed = async {
        let client = state.pg.get().await?;
        grants::list_connected(&client, team_id).await
    };
    let list = match listed.await {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let Some(csrf_token) = csrf::for_request(&state, &headers, &csrf_purpose(team_id)) else {
        return sign_in_redirect(PATH);
    };
    let status = if q.disconnected.is_some() {
        "<p role=\"status\">Disconnected. Tokens issued from that approval no longer work.</p>"
    } else {
        ""
    };
    page(
        StatusCode::OK,
        "Okta provisioning",
        &format!(
            "<h1>Okta provisioning</h1>{status}{}<p><a href=\"/\">Home</a></p>",
            grants_section(&list, &csrf_token, PATH)
        ),
    )
}

/// The Disconnect form's fields.
#[derive(Deserialize)]
pub(crate) struct DisconnectForm {
    #[serde(default)]
    grant_id: String,
    #[serde(default)]
    csrf: String,
    return_to: Option<String>,
}

/// `POST /integrations/okta/provisioning/disconnect`.
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<DisconnectForm>,
) -> Response {
    let (team_id, user_id) = match admin(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if csrf::check(&state, &headers, &csrf_purpose(team_id), &form.csrf).is_err() {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "The form expired or did not come from this ClosedLoop AI page. Reload the page \
             and try again.",
        );
    }
    let Ok(grant_id) = Uuid::parse_str(&form.grant_id) else {
        return not_found();
    };
    let actor = format!("user:{user_id}");
    let revoked = async {
        let mut client = state.pg.get().await?;
        let tx = client.transaction().await?;
        let outcome = revoke_in(
            &tx,
            grant_id,
            Some(team_id),
            RevokeReason::Disconnected,
            &actor,
        )
        .await?;
        tx.commit().await?;
        if needs_publish(outcome) {
            tokens::publish_grant_revoked(&state.redis, grant_id).await?;
        }
        Ok::<Revocation, StoreError>(outcome)
    };
    match revoked.await {
        Ok(Revocation::NotFound) => not_found(),
        Ok(_) => {
            let back = form
                .return_to
                .as_deref()
                .and_then(safe_return_to)
                .unwrap_or(PATH);
            let sep = if back.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{back}{sep}disconnected=1")).into_response()
        }
        Err(e) => unavailable(e),
    }
}

fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "No such connection",
        "This provisioning connection does not exist in your workspace.",
    )
}
