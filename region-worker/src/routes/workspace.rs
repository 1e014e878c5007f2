//! `/workspace` on the app host: the workspace as its admins see it — its `team_id`,
//! its region and who administers it (the active users holding the Admin role).
//! Read-only; admins only.

use axum::extract::State;
use maud::{Markup, html};

use crate::paths::app;
use crate::state::AppState;
use crate::store::{StoreError, users};
use crate::web::{PageError, Text, WorkspaceAdmin, page};

/// `GET /workspace`.
pub async fn show(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
) -> Result<Markup, PageError> {
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let admins = users::admin_user_names(&client, admin.team_id()).await?;
    let body = html! {
        h1 { (Text(&admin.approver.workspace_name)) }
        dl {
            dt { "Workspace ID (" code { "team_id" } ")" } dd { code { (admin.team_id()) } }
            dt { "Region" } dd { (Text(&state.config.region_id().as_str().to_ascii_uppercase())) }
        }
        h2 { "Admins" }
        ul { @for name in &admins { li { (Text(name)) } } }
        nav aria-label="Workspace administration" { ul {
            li { a href=(app::PEOPLE) { "People" } }
            li { a href=(app::GROUPS) { "Groups" } }
            li { a href=(app::ACTIVITY) { "Activity" } }
            li { a href=(app::HOME) { "Home" } }
        } }
    };
    Ok(page("Workspace", body))
}
