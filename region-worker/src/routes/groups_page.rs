//! Groups on the app host (`/groups`, `/groups/{id}`): the groups Okta pushed to the
//! workspace, newest first, and each group's members, each linking to their page on
//! People. Read-only (Okta owns groups: Push Groups) and admins only; every read is
//! bound to the admin's workspace. Query parameters are handled as on People
//! ([`super::people`]): what cannot be used is named in a notice and left out.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use maud::{Markup, html};
use uuid::Uuid;

use super::people::{count, directory_nav, seq_cursor, when};
use crate::paths::app;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::people::{self, MEMBER_COUNT_CAP};
use crate::web::assets::integrations_style;
use crate::web::query::{Params, link};
use crate::web::{PageError, Text, WorkspaceAdmin, page};

/// `GET /groups`.
pub async fn list(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Markup, PageError> {
    let params = Params::parse(raw.as_deref());
    let mut notices = Vec::new();
    let cursor = seq_cursor(&params, &mut notices);
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let total = people::total(&client, admin.team_id(), "groups").await?;
    let found = people::groups(&client, admin.team_id(), cursor).await?;
    let body = html! {
        (integrations_style())
        (directory_nav(app::GROUPS))
        h1 { "Groups" }
        p {
            (count(total)) @if total == 1 { " group" } @else { " groups" }
            " in " (Text(&admin.approver.workspace_name)) ". Okta pushes groups and their \
              members over SCIM (Push Groups); open one to see its members."
        }
        @for notice in &notices { p.error role="status" { (notice) } }
        @if found.rows.is_empty() {
            p { "No groups yet." }
        } @else {
            table {
                caption { "Groups, newest first" }
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Okta ID" }
                    th scope="col" { "Members" }
                    th scope="col" { "Created" }
                } }
                tbody {
                    @for g in &found.rows {
                        tr {
                            th scope="row" { a href=(app::group(g.id)) { (Text(&g.display_name)) } }
                            td { @if let Some(id) = &g.external_id { code { (Text(id)) } } @else { "None" } }
                            td {
                                @if g.members > MEMBER_COUNT_CAP {
                                    "More than " (count(MEMBER_COUNT_CAP))
                                } @else { (count(g.members)) }
                            }
                            td { (when(g.created_at)) }
                        }
                    }
                }
            }
        }
        (pages(app::GROUPS, cursor.map(|c| c.to_string()), found.next.map(|c| c.to_string())))
    };
    Ok(page("Groups", body))
}

/// Links to the first page (when not on it) and the next one (when there is one).
fn pages(path: &str, current: Option<String>, next: Option<String>) -> Markup {
    html! {
        @if current.is_some() || next.is_some() {
            nav aria-label="Pages" { ul {
                @if current.is_some() { li { a href=(path) { "First page" } } }
                @if let Some(next) = next {
                    li { a href=(link(path, &[("cursor", Some(&next))])) rel="next" { "Next page" } }
                }
            } }
        }
    }
}

/// The answer to every id that is not one of the workspace's groups.
fn no_such_group() -> PageError {
    PageError::NotFound {
        title: "No such group",
        explanation: "Your workspace has no group at this address. It may have been deleted \
                      in Okta; go back to Groups.",
    }
}

/// `GET /groups/{id}`: the group and a page of its members.
pub async fn show(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Markup, PageError> {
    let Some(id) = id.ok().and_then(|Path(id)| Uuid::parse_str(&id).ok()) else {
        return Err(no_such_group());
    };
    let params = Params::parse(raw.as_deref());
    let mut notices = Vec::new();
    let cursor = match params.get("cursor").map(Uuid::parse_str) {
        None => None,
        Some(Ok(after)) => Some(after),
        Some(Err(_)) => {
            notices.push("The page link is not valid: showing the first page.");
            None
        }
    };
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let group = people::group(&client, admin.team_id(), id)
        .await?
        .ok_or_else(no_such_group)?;
    let members = people::members(&client, admin.team_id(), id, cursor).await?;
    let here = app::group(id);
    let body = html! {
        (integrations_style())
        (directory_nav(""))
        p { a href=(app::GROUPS) { "Back to Groups" } }
        h1 { (Text(&group.display_name)) }
        p role="note" {
            strong { "Okta is the source of truth for this group." }
            " Its name and members are read-only here; change them in Okta (Push Groups)."
        }
        dl {
            dt { "Okta ID (" code { "externalId" } ")" }
            dd { @if let Some(x) = &group.external_id { code { (Text(x)) } } @else { "None" } }
            dt { "Members" } dd { (count(group.members)) }
            dt { "Created" } dd { (when(group.created_at)) }
            dt { "ClosedLoop AI ID" } dd { code { (group.id) } }
        }
        h2 { "Members" }
        @for notice in &notices { p.error role="status" { (notice) } }
        @if members.rows.is_empty() {
            p { "No members." }
        } @else {
            table {
                caption { "Members of " (Text(&group.display_name)) }
                thead { tr {
                    th scope="col" { "Person" }
                    th scope="col" { "Email" }
                    th scope="col" { "Status" }
                } }
                tbody {
                    @for m in &members.rows {
                        tr {
                            th scope="row" {
                                a href=(app::person(m.id)) {
                                    (Text(m.display_name.as_deref().filter(|n| !n.trim().is_empty()).unwrap_or(&m.user_name)))
                                }
                            }
                            td { (Text(m.email.as_deref().unwrap_or("None"))) }
                            td { @if m.active { "Active" } @else { "Deactivated" } }
                        }
                    }
                }
            }
        }
        (pages(&here, cursor.map(|c| c.to_string()), members.next.map(|c| c.to_string())))
    };
    Ok(page(&group.display_name, body))
}
