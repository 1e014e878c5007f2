//! "Connected apps" on `/tokens`: the MCP clients a user approved, with when each was
//! first and last used, and a Disconnect form that ends the grant and every token it
//! issued at once. A user sees and disconnects their own grants only: the store's
//! queries are bounded by the session's workspace and user.

use axum::extract::State;
use axum::response::Redirect;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use uuid::Uuid;

use crate::paths::app;
use crate::routes::tokens::page::csrf_purpose;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::mcp::{self, ConnectedApp, EndReason};
use crate::web::{PageError, SignedIn, Text, csrf};

const WHEN: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute] UTC");

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(WHEN).ok())
        .unwrap_or_else(|| "Never".to_owned())
}

/// The section of the tokens page, for `user`.
pub async fn section(
    state: &AppState,
    user: &SignedIn,
    csrf_token: &str,
) -> Result<Markup, PageError> {
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let apps = mcp::connected_apps(&client, user.team_id(), user.user_id()).await?;
    Ok(html! {
        section aria-labelledby="connected-apps" {
            h2 id="connected-apps" { "Connected apps" }
            p {
                "MCP clients you approved to act as you. Their names are what they call \
                 themselves. Disconnecting one ends its access at once."
            }
            @if apps.is_empty() {
                p { "No MCP client is connected." }
            } @else {
                table {
                    caption { "Connected MCP clients, newest first" }
                    thead { tr {
                        th scope="col" { "Application" }
                        th scope="col" { "Returns to" }
                        th scope="col" { "First used" }
                        th scope="col" { "Last used" }
                        th scope="col" { "Action" }
                    } }
                    tbody {
                        @for a in &apps { (row(a, csrf_token)) }
                    }
                }
            }
        }
    })
}

fn row(a: &ConnectedApp, csrf_token: &str) -> Markup {
    let host = url::Url::parse(&a.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| a.redirect_uri.clone());
    let label = format!("Disconnect {}", a.client_name);
    html! {
        tr {
            td { (Text(&a.client_name)) " (unverified)" br; small { code { (Text(&a.client_id)) } } }
            td { (Text(&host)) }
            td { (when(a.first_used_at)) }
            td { (when(a.last_used_at)) }
            td {
                form method="post" action=(app::MCP_DISCONNECT) {
                    input type="hidden" name="id" value=(a.id);
                    input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
                    button type="submit" aria-label=(Text(&label)) { "Disconnect" }
                }
            }
        }
    }
}

/// The Disconnect form's fields.
#[derive(Deserialize)]
pub(crate) struct DisconnectForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /tokens/connected-apps/disconnect`.
pub(crate) async fn disconnect(
    user: Result<SignedIn, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<DisconnectForm>,
) -> Result<Redirect, PageError> {
    let user = user.map_err(|e| e.returning_to(app::TOKENS))?;
    user.check_form(&csrf_purpose(&user.owner), &form.csrf)?;
    let not_found = || PageError::NotFound {
        title: "No such connected app",
        explanation: "You have no connected app with this id. It may have been disconnected \
                      already.",
    };
    let Ok(id) = Uuid::parse_str(&form.id) else {
        return Err(not_found());
    };
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let ended = mcp::end_grant(
        &tx,
        &state.redis,
        id,
        Some((user.team_id(), user.user_id())),
        EndReason::Disconnected,
    )
    .await?;
    let Some(team_id) = ended else {
        return Err(not_found());
    };
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor: &user.owner.actor(),
            action: AuditAction::McpGrantDisconnected,
            target: Some(&id.to_string()),
            detail: json!({ "reason": EndReason::Disconnected.as_str() }),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    super::count("disconnect", "ok");
    Ok(Redirect::to(app::TOKENS))
}
