//! People on the app host (`/people`, `/people/{id}`): the workspace's users as its
//! admins see them — who Okta provisioned, who is deactivated, their roles and groups,
//! when they last signed in — so that each step of the seed's Testing section can be
//! confirmed on a page. Read-only: Okta is the source of truth for a provisioned
//! user, and the pages say so. Admins only; every read is bound to the admin's
//! workspace ([`crate::store::people`]).
//!
//! Query parameters come from links and the search form, but anyone can edit a URL: a
//! value that cannot be used is named in a notice above the list and left out, never
//! a failure. An id that is malformed, unknown or another workspace's gets the same
//! `404` page.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use maud::{Markup, html};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use uuid::Uuid;

use crate::paths::app;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::AuditAction;
use crate::store::people::{self, PeopleFilter, Person, PersonRow, Status};
use crate::store::users::UserSource;
use crate::web::assets::integrations_style;
use crate::web::query::{Params, link};
use crate::web::{PageError, Text, WorkspaceAdmin, page};

/// The longest search term used, in characters.
pub const MAX_SEARCH_CHARS: usize = 100;

/// How many letters or digits in a row a search term needs: the trigram indexes find
/// a term by its runs of three (a shorter one would read every user).
const MIN_SEARCH_RUN: usize = 3;

const WHEN: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute] UTC");

pub(crate) fn when(t: OffsetDateTime) -> String {
    t.format(WHEN).unwrap_or_default()
}

/// A count with thousands separators (`100,000`).
pub(crate) fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The keyset cursor of a page link (a `seq`): a positive number, or a notice.
pub(crate) fn seq_cursor(params: &Params, notices: &mut Vec<&'static str>) -> Option<i64> {
    let raw = params.get("cursor")?;
    match raw.parse::<i64>() {
        Ok(seq) if seq > 0 => Some(seq),
        _ => {
            notices.push("The page link is not valid: showing the first page.");
            None
        }
    }
}

/// The admin pages' navigation, `current` marked for assistive technology.
pub(crate) fn directory_nav(current: &str) -> Markup {
    let items = [
        (app::HOME, "Home"),
        (app::WORKSPACE, "Workspace"),
        (app::PEOPLE, "People"),
        (app::GROUPS, "Groups"),
        (app::ACTIVITY, "Activity"),
    ];
    html! {
        nav aria-label="Workspace administration" { ul {
            @for (href, label) in items {
                li {
                    @if href == current {
                        a href=(href) aria-current="page" { (label) }
                    } @else {
                        a href=(href) { (label) }
                    }
                }
            }
        } }
    }
}

/// How a user came to exist, in the words the page uses.
fn source_label(source: UserSource) -> &'static str {
    match source {
        UserSource::Scim => "SCIM",
        UserSource::Jit => "Just-in-time",
        UserSource::Admin => "Operator",
    }
}

fn status_label(active: bool) -> &'static str {
    if active { "Active" } else { "Deactivated" }
}

/// The name a user is shown by: their full name, else their user name.
fn name_of(row: &PersonRow) -> &str {
    row.display_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(&row.user_name)
}

/// The People page's filters as read from its query, with what could not be used.
#[derive(Debug, Default)]
struct Query {
    /// The search term, when usable.
    search: Option<String>,
    /// The search box's value shown back (what was typed, when not too long).
    typed: Option<String>,
    status: Option<Status>,
    role: Option<&'static str>,
    source: Option<UserSource>,
    cursor: Option<i64>,
    notices: Vec<&'static str>,
}

impl Query {
    fn parse(params: &Params) -> Self {
        let mut q = Query::default();
        if let Some(term) = params.get("q") {
            if term.chars().count() > MAX_SEARCH_CHARS {
                q.notices
                    .push("Search terms are limited to 100 characters: the search was not used.");
            } else {
                q.typed = Some(term.to_owned());
                if has_run(term, MIN_SEARCH_RUN) {
                    q.search = Some(term.to_owned());
                } else {
                    q.notices.push(
                        "Search for at least three letters or digits in a row (part of a name \
                         or an email address): the search was not used.",
                    );
                }
            }
        }
        q.status = match params.get("status") {
            None => None,
            Some("active") => Some(Status::Active),
            Some("deactivated") => Some(Status::Deactivated),
            Some(_) => {
                q.notices
                    .push("Unknown status: showing active and deactivated people.");
                None
            }
        };
        q.role = match params.get("role") {
            None => None,
            Some(key) => match ["admin", "member", "viewer"]
                .into_iter()
                .find(|k| *k == key)
            {
                Some(k) => Some(k),
                None => {
                    q.notices.push("Unknown role: showing every role.");
                    None
                }
            },
        };
        q.source = match params.get("source").map(UserSource::parse) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(_)) => {
                q.notices.push("Unknown source: showing every source.");
                None
            }
        };
        q.cursor = seq_cursor(params, &mut q.notices);
        q
    }

    fn filtered(&self) -> bool {
        self.search.is_some()
            || self.status.is_some()
            || self.role.is_some()
            || self.source.is_some()
    }

    /// The link to this list from `cursor` on (the first page without one).
    fn link(&self, cursor: Option<i64>) -> String {
        let cursor = cursor.map(|c| c.to_string());
        link(
            app::PEOPLE,
            &[
                ("q", self.search.as_deref()),
                (
                    "status",
                    self.status.map(|s| match s {
                        Status::Active => "active",
                        Status::Deactivated => "deactivated",
                    }),
                ),
                ("role", self.role),
                ("source", self.source.map(UserSource::as_str)),
                ("cursor", cursor.as_deref()),
            ],
        )
    }
}

/// Whether `term` has `n` letters or digits in a row.
fn has_run(term: &str, n: usize) -> bool {
    let mut run = 0;
    for c in term.chars() {
        run = if c.is_alphanumeric() { run + 1 } else { 0 };
        if run >= n {
            return true;
        }
    }
    false
}

/// `GET /people`.
pub async fn list(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Markup, PageError> {
    let query = Query::parse(&Params::parse(raw.as_deref()));
    let team_id = admin.team_id();
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let role = match query.role {
        // A workspace always has its three roles; without one, nobody holds it.
        Some(key) => Some(
            people::role_id(&client, team_id, key)
                .await?
                .unwrap_or(Uuid::nil()),
        ),
        None => None,
    };
    let filter = PeopleFilter {
        search: query.search.as_deref(),
        status: query.status,
        source: query.source,
        role,
    };
    let total = people::total(&client, team_id, "users").await?;
    let found = people::people(&client, team_id, &filter, query.cursor).await?;
    let caption = if query.filtered() {
        "People matching the search and filters, newest first"
    } else {
        "People, newest first"
    };
    let body = html! {
        (integrations_style())
        (directory_nav(app::PEOPLE))
        h1 { "People" }
        p {
            (count(total)) @if total == 1 { " person" } @else { " people" }
            " in " (Text(&admin.approver.workspace_name)) ". Okta provisions them over SCIM \
              (or they are created at their first Okta sign-in, just in time); open one to \
              see their groups, sessions, tokens and recent activity."
        }
        (search_form(&query))
        @for notice in &query.notices {
            p.error role="status" { (notice) }
        }
        @if found.rows.is_empty() {
            p { @if query.filtered() { "No one matches." } @else { "No one here yet." } }
        } @else {
            table {
                caption { (caption) }
                thead { tr {
                    th scope="col" { "Person" }
                    th scope="col" { "Status" }
                    th scope="col" { "Source" }
                    th scope="col" { "Roles" }
                    th scope="col" { "Groups" }
                    th scope="col" { "Okta ID" }
                    th scope="col" { "Created" }
                    th scope="col" { "Last sign-in" }
                } }
                tbody {
                    @for row in &found.rows { (person_row(row)) }
                }
            }
        }
        @if query.cursor.is_some() || found.next.is_some() {
            nav aria-label="Pages" { ul {
                @if query.cursor.is_some() {
                    li { a href=(query.link(None)) { "First page" } }
                }
                @if let Some(next) = found.next {
                    li { a href=(query.link(Some(next))) rel="next" { "Next page" } }
                }
            } }
        }
    };
    Ok(page("People", body))
}

fn search_form(query: &Query) -> Markup {
    let status = query.status;
    let role = query.role;
    let source = query.source;
    html! {
        form method="get" action=(app::PEOPLE) role="search" {
            p {
                label for="q" { "Search by email or name" } br;
                input id="q" name="q" type="search" size="40" maxlength=(MAX_SEARCH_CHARS)
                    value=(Text(query.typed.as_deref().unwrap_or_default()));
            }
            p {
                label for="status" { "Status" } " "
                select id="status" name="status" {
                    option value="" selected[status.is_none()] { "Any" }
                    option value="active" selected[status == Some(Status::Active)] { "Active" }
                    option value="deactivated" selected[status == Some(Status::Deactivated)] { "Deactivated" }
                }
                " "
                label for="role" { "Role" } " "
                select id="role" name="role" {
                    option value="" selected[role.is_none()] { "Any" }
                    option value="admin" selected[role == Some("admin")] { "Admin" }
                    option value="member" selected[role == Some("member")] { "Member" }
                    option value="viewer" selected[role == Some("viewer")] { "Viewer" }
                }
                " "
                label for="source" { "Source" } " "
                select id="source" name="source" {
                    option value="" selected[source.is_none()] { "Any" }
                    @for s in UserSource::ALL {
                        option value=(s.as_str()) selected[source == Some(s)] { (source_label(s)) }
                    }
                }
            }
            p {
                button type="submit" { "Search" } " "
                a href=(app::PEOPLE) { "Clear" }
            }
        }
    }
}

fn person_row(row: &PersonRow) -> Markup {
    let more = row.group_count - row.first_groups.len() as i64;
    html! {
        tr {
            th scope="row" {
                a href=(app::person(row.id)) { (Text(name_of(row))) }
                @if let Some(email) = &row.email {
                    br; small { (Text(email)) }
                }
            }
            td { (status_label(row.active)) }
            td { (source_label(row.source)) }
            td { @if row.roles.is_empty() { "None" } @else { (Text(&row.roles.join(", "))) } }
            td {
                @if row.group_count == 0 { "None" } @else {
                    (Text(&row.first_groups.join(", ")))
                    @if more > 0 { " and " (count(more)) " more" }
                }
            }
            td { @if let Some(id) = &row.external_id { code { (Text(id)) } } @else { "None" } }
            td { (when(row.created_at)) }
            td { @match row.last_sign_in_at { Some(t) => (when(t)), None => "Never" } }
        }
    }
}

/// The answer to every id that is not one of the workspace's users.
fn no_such_person() -> PageError {
    PageError::NotFound {
        title: "No such person",
        explanation: "Your workspace has no one at this address. They may have been deleted \
                      in Okta; go back to People and search for them.",
    }
}

/// `GET /people/{id}`.
pub async fn show(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Markup, PageError> {
    let Some(id) = id.ok().and_then(|Path(id)| Uuid::parse_str(&id).ok()) else {
        return Err(no_such_person());
    };
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let person = people::person(
        &client,
        admin.team_id(),
        id,
        state.config.clock.now(),
        state.config.sign_in.session_idle,
    )
    .await?
    .ok_or_else(no_such_person)?;
    let name = name_of(&person.row).to_owned();
    let body = html! {
        (integrations_style())
        (directory_nav(""))
        p { a href=(app::PEOPLE) { "Back to People" } }
        h1 { (Text(&name)) }
        (source_of_truth(&person))
        (profile(&person))
        h2 { "Roles" }
        @if person.row.roles.is_empty() { p { "None." } } @else {
            ul { @for role in &person.row.roles { li { (Text(role)) } } }
        }
        h2 { "Groups" }
        @if person.groups.is_empty() { p { "Not a member of any group." } } @else {
            p { "Member of " (count(person.row.group_count))
                @if person.row.group_count == 1 { " group." } @else { " groups." } }
            ul { @for (gid, gname) in &person.groups {
                li { a href=(app::group(gid)) { (Text(gname)) } }
            } }
            @if person.row.group_count > person.groups.len() as i64 {
                p { "The first " (person.groups.len()) " by name are listed." }
            }
        }
        h2 { "Access" }
        dl {
            dt { "Live browser sessions" } dd { (count(person.live_sessions)) }
            dt { "Active API tokens" } dd { (count(person.api_tokens)) }
            dt { "Active MCP tokens" } dd { (count(person.mcp_tokens)) }
        }
        p { small { "Counts only: a token's secret is shown once, to its owner, when it is made." } }
        h2 { "Recent activity" }
        (activity(&person))
    };
    Ok(page(&name, body))
}

fn source_of_truth(person: &Person) -> Markup {
    let row = &person.row;
    html! {
        @if row.source == UserSource::Scim || row.external_id.is_some() {
            p role="note" {
                strong { "Okta is the source of truth for this user." }
                " Okta provisions them over SCIM: their profile, status, roles and groups \
                  below are read-only here. Change them in Okta; its next provisioning \
                  update brings the change to ClosedLoop AI."
            }
        } @else if row.source == UserSource::Jit {
            p role="note" {
                strong { "Okta is the source of truth for this user." }
                " They were created at their first Okta sign-in (just in time), from what \
                  Okta sent; the profile below is read-only here. Assign them to the app's \
                  provisioning in Okta to keep it up to date."
            }
        } @else {
            p role="note" {
                "An operator created this user as the workspace's first admin. Once Okta \
                 provisions a user with the same user name, Okta becomes the source of truth \
                 for their profile, status, roles and groups."
            }
        }
    }
}

fn profile(person: &Person) -> Markup {
    let row = &person.row;
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".to_owned());
    html! {
        h2 { "Profile" }
        dl {
            dt { "Full name" } dd { (Text(&or_none(&row.display_name))) }
            dt { "Given name" } dd { (Text(&or_none(&person.given_name))) }
            dt { "Family name" } dd { (Text(&or_none(&person.family_name))) }
            dt { "User name" } dd { (Text(&row.user_name)) }
            dt { "Email" } dd { (Text(&or_none(&row.email))) }
            dt { "Okta ID (" code { "externalId" } ")" }
            dd { @if let Some(id) = &row.external_id { code { (Text(id)) } } @else { "None" } }
            dt { "Status" } dd { (status_label(row.active)) }
            dt { "Source" } dd { (source_label(row.source)) }
            dt { "Signs in with Okta" }
            dd { @if person.okta_bound { "Yes (bound to their Okta user at first sign-in)" } @else { "Not yet" } }
            dt { "Created" } dd { (when(row.created_at)) }
            dt { "Last changed" } dd { (when(person.updated_at)) }
            dt { "Last sign-in" } dd { @match row.last_sign_in_at { Some(t) => (when(t)), None => "Never" } }
            dt { "ClosedLoop AI ID" } dd { code { (row.id) } }
        }
    }
}

fn activity(person: &Person) -> Markup {
    html! {
        @if person.activity.is_empty() { p { "Nothing recorded yet." } } @else {
            table {
                caption { "The latest events about this user, newest first" }
                thead { tr {
                    th scope="col" { "When" }
                    th scope="col" { "What" }
                    th scope="col" { "By" }
                } }
                tbody {
                    @for event in &person.activity {
                        tr {
                            td { (when(event.at)) }
                            td {
                                @match AuditAction::parse(&event.action) {
                                    Some(action) => (action.label()),
                                    None => (Text(&event.action)),
                                }
                                br; small { code { (Text(&event.action)) } }
                            }
                            td { (actor(&event.actor, person.row.id)) }
                        }
                    }
                }
            }
        }
    }
}

/// Who acted, in words: a user is linked to their page.
fn actor(actor: &str, subject: Uuid) -> Markup {
    let user = actor
        .strip_prefix("user:")
        .and_then(|id| Uuid::parse_str(id).ok());
    html! {
        @if let Some(id) = user {
            @if id == subject { "This user" } @else { a href=(app::person(id)) { "Another user" } }
        } @else if actor.starts_with("scim:") {
            "Okta provisioning (SCIM)"
        } @else if actor == "operator" {
            "An operator"
        } @else if actor == "okta" {
            "Okta"
        } @else {
            code { (Text(actor)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(100_000), "100,000");
        assert_eq!(count(-1_234_567), "-1,234,567");
    }

    #[test]
    fn queries_keep_what_they_can_use_and_say_what_they_cannot() {
        let q = Query::parse(&Params::parse(Some(
            "q=+Smith+&status=deactivated&role=admin&source=jit&cursor=42&q=ignored",
        )));
        assert_eq!(q.search.as_deref(), Some("Smith"));
        assert_eq!(q.status, Some(Status::Deactivated));
        assert_eq!(q.role, Some("admin"));
        assert_eq!(q.source, Some(UserSource::Jit));
        assert_eq!(q.cursor, Some(42));
        assert!(q.notices.is_empty());
        assert_eq!(
            q.link(Some(7)),
            "/people?q=Smith&status=deactivated&role=admin&source=jit&cursor=7"
        );

        let q = Query::parse(&Params::parse(Some(
            "q=a.b&status=gone&role=owner&source=ldap&cursor=-3",
        )));
        assert_eq!(q.search, None);
        assert_eq!(q.typed.as_deref(), Some("a.b"));
        assert_eq!(
            (q.status, q.role, q.source, q.cursor),
            (None, None, None, None)
        );
        assert_eq!(q.notices.len(), 5);
        assert_eq!(q.link(None), "/people");

        let long = "x".repeat(MAX_SEARCH_CHARS + 1);
        let q = Query::parse(&Params::parse(Some(&format!("q={long}&cursor=%FF"))));
        assert_eq!((q.search, q.typed, q.cursor), (None, None, None));
        assert_eq!(q.notices.len(), 2);
    }

    #[test]
    fn a_search_needs_a_run_of_three() {
        assert!(has_run("ann", 3));
        assert!(has_run("@acme.com", 3));
        assert!(has_run("Zoë", 3));
        assert!(!has_run("a.b.c", 3));
        assert!(!has_run("li", 3));
    }
}
