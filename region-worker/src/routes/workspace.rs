//! `/workspace` on the app host: the workspace as its admins see it — its `team_id`,
//! its region and who administers it (the active users holding the Admin role).
//! Read-only; admins only.

use axum::extract::State;
use maud::{Markup, html};

use crate::paths::app;
use crate::state::AppState;
use crate::store::StoreError;
use crate::web::{PageError, Text, WorkspaceAdmin, page};

/// `GET /workspace`.
pub async fn show(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
) -> Result<Markup, PageError> {
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let admins = client
        .query(
            "SELECT u.user_name FROM users u
               JOIN user_roles ur ON ur.team_id = u.team_id AND ur.user_id = u.id
               JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
              WHERE u.team_id = $1 AND r.key = 'admin' AND u.active
              ORDER BY lower(u.user_name)",
            &[&admin.team_id().as_uuid()],
        )
        .await
        .map_err(StoreError::from)?;
    let body = html! {
        h1 { (Text(&admin.approver.workspace_name)) }
        dl {
            dt { "Workspace ID (" code { "team_id" } ")" } dd { code { (admin.team_id()) } }
            dt { "Region" } dd { (Text(&state.config.region_id().as_str().to_ascii_uppercase())) }
        }
        h2 { "Admins" }
        ul { @for row in &admins { li { (Text(row.get(0))) } } }
        p { a href=(app::HOME) { "Home" } }
    };
    Ok(page("Workspace", body))
}
