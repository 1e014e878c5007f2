//! The connected SCIM provisioning grants of a workspace, for its admins, on the app
//! host: when each was approved and by whom, its scopes, when it was last used, and a
//! Disconnect button that revokes the grant and every token from it at once.
//!
//! [`grants_section`] renders the list as a self-contained section so that the
//! Integrations > Okta page can embed it; [`show`] serves it alone at
//! [`app::OKTA_PROVISIONING`] until then. Both forms post to
//! [`app::OKTA_PROVISIONING_DISCONNECT`] with a CSRF token for
//! [`csrf_purpose`] and come back to the page they name in `return_to`.

use axum::extract::{Query, State};
use axum::response::Redirect;
use maud::{Markup, html};
use serde::Deserialize;
use shared::ids::TeamId;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::revoke::{needs_publish, revoke_in};
use crate::paths::app;
use crate::state::AppState;
use crate::store::grants::{self, GrantSummary, Revocation, RevokeReason};
use crate::store::{StoreError, tokens};
use crate::web::return_to::safe as safe_return_to;
use crate::web::{PageError, Text, WorkspaceAdmin, csrf, page};

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
/// `csrf_token` is the admin's CSRF token for [`csrf_purpose`] of the workspace;
/// `return_to` is the (relative) page the forms come back to.
pub fn grants_section(grants: &[GrantSummary], csrf_token: &str, return_to: &str) -> Markup {
    let back = safe_return_to(return_to).unwrap_or(app::OKTA_PROVISIONING);
    html! {
        section aria-labelledby="scim-provisioning" {
            h2 id="scim-provisioning" { "Provisioning connections" }
            p {
                "Okta provisions users and groups with a token it obtained when a workspace \
                 admin approved it. Disconnecting revokes that approval and every token issued \
                 from it at once; Okta then needs to be authorized again from its Provisioning tab."
            }
            @if grants.is_empty() {
                p { "No Okta provisioning connection." }
            } @else {
                table {
                    caption { "Connected provisioning grants" }
                    thead { tr {
                        th scope="col" { "Connected" }
                        th scope="col" { "Approved by" }
                        th scope="col" { "Scopes" }
                        th scope="col" { "Last used" }
                        th scope="col" { "Action" }
                    } }
                    tbody {
                        @for g in grants {
                            (grant_row(g, csrf_token, back))
                        }
                    }
                }
            }
        }
    }
}

/// One connected grant and its Disconnect form.
fn grant_row(g: &GrantSummary, csrf_token: &str, back: &str) -> Markup {
    let approved = when(g.approved_at);
    let connected = g.connected_at.map_or_else(|| approved.clone(), when);
    let last_used = g.last_used_at.map_or_else(|| "Not yet".to_owned(), when);
    let label = format!(
        "Disconnect the connection approved by {} on {approved}",
        g.approved_by_name
    );
    html! {
        tr {
            td { (connected) }
            td { (Text(&g.approved_by_name)) br; small { "approved " (approved) } }
            td { ul {
                @for sc in &g.scopes {
                    li { code { (sc.as_str()) } ": " (Text(sc.describe())) }
                }
            } }
            td { (last_used) }
            td {
                form method="post" action=(app::OKTA_PROVISIONING_DISCONNECT) {
                    input type="hidden" name="grant_id" value=(g.id);
                    input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
                    input type="hidden" name="return_to" value=(Text(back));
                    button type="submit" aria-label=(Text(&label)) { "Disconnect" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    disconnected: Option<String>,
}

/// `GET /integrations/okta/provisioning`.
pub(crate) async fn show(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    Query(q): Query<ShowQuery>,
) -> Result<Markup, PageError> {
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let list = grants::list_connected(&client, admin.team_id()).await?;
    let csrf_token = admin.signed_in.csrf_token(&csrf_purpose(admin.team_id()));
    let body = html! {
        h1 { "Okta provisioning" }
        @if q.disconnected.is_some() {
            p role="status" { "Disconnected. Tokens issued from that approval no longer work." }
        }
        (grants_section(&list, &csrf_token, app::OKTA_PROVISIONING))
        p { a href=(app::HOME) { "Home" } }
    };
    Ok(page("Okta provisioning", body))
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
    admin: Result<WorkspaceAdmin, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<DisconnectForm>,
) -> Result<Redirect, PageError> {
    let admin = admin.map_err(|e| e.returning_to(app::OKTA_PROVISIONING))?;
    let (team_id, user_id) = (admin.team_id(), admin.user_id());
    admin
        .signed_in
        .check_form(&csrf_purpose(team_id), &form.csrf)?;
    let Ok(grant_id) = Uuid::parse_str(&form.grant_id) else {
        return Err(not_found());
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
    if revoked.await? == Revocation::NotFound {
        return Err(not_found());
    }
    let back = form
        .return_to
        .as_deref()
        .and_then(safe_return_to)
        .unwrap_or(app::OKTA_PROVISIONING);
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}disconnected=1")))
}

fn not_found() -> PageError {
    PageError::NotFound {
        title: "No such connection",
        explanation: "This provisioning connection does not exist in your workspace.",
    }
}
