//! Activity on the app host (`/activity`, `/activity/export`): the workspace's audit
//! trail as its admins read it — what Okta provisioned and what SCIM requests were
//! refused (with Okta's request id), who signed in or was refused and why, Universal
//! Logout, provisioning access and tokens — newest first, filtered by kind, user and
//! time, paged by event id, and exported as JSON Lines or CSV. Admins only; every read
//! names the admin's workspace ([`audit::events`]).
//!
//! Query parameters come from the filter form and the paging links, but anyone can edit
//! a URL: on the page a value that cannot be used is named in a notice and left out;
//! an export refuses it (`400`) rather than export more than was asked for.
//!
//! Where the audit detail carries a reason the seed's Troubleshooting table knows (a
//! refused sign-in, a refused Universal Logout, a refused SCIM token), the row shows the
//! table's fix beside it, so an admin reads the remedy where they find the problem.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::{Value, json};
use shared::ids::TeamId;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use crate::paths::app;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent, Cursor, EventFilter, StoredEvent};
use crate::store::pg::Pool;
use crate::web::assets::integrations_style;
use crate::web::{PageError, Text, WorkspaceAdmin, page, query};

/// Events per page.
pub const PAGE_SIZE: i64 = 50;

/// Events per export batch: each batch is one indexed query and one chunk of the
/// response, so an export of a million events holds one batch in memory at a time.
pub const EXPORT_BATCH: i64 = 1_000;

/// The most users an email names (several users may share an email address; a user
/// name is unique).
const MAX_USERS_PER_EMAIL: i64 = 20;

/// The longest value of the user filter kept, in characters.
const MAX_USER_CHARS: usize = 320;

/// The longest detail value shown on the page, in characters (an export has them
/// whole).
const MAX_SHOWN_CHARS: usize = 300;

/// A kind of events an admin filters by: a name in the URL, a label in the form and
/// which action codes it takes. Groups are read from the codes' prefixes, so an action
/// added later falls into its group without an edit here.
struct Group {
    key: &'static str,
    label: &'static str,
    takes: fn(&str) -> bool,
}

const GROUPS: &[Group] = &[
    Group {
        key: "scim",
        label: "Provisioning (SCIM), including refused requests",
        takes: |c| c.starts_with("scim."),
    },
    Group {
        key: "sign_in",
        label: "Sign-ins and refused sign-ins",
        takes: |c| c.starts_with("oidc.") || c.starts_with("session.signed_in"),
    },
    Group {
        key: "logout",
        label: "Sign-outs and Universal Logout",
        takes: |c| c.starts_with("session.signed_out") || c.starts_with("okta.universal_logout"),
    },
    Group {
        key: "oauth",
        label: "Provisioning access (OAuth grants)",
        takes: |c| c.starts_with("scim_oauth."),
    },
    Group {
        key: "tokens",
        label: "API and MCP tokens",
        takes: |c| c.starts_with("token.") || c.starts_with("mcp."),
    },
    Group {
        key: "settings",
        label: "Workspace and Okta settings",
        takes: |c| c.starts_with("workspace.") || c.starts_with("okta.settings"),
    },
    Group {
        key: "refused",
        label: "Everything refused",
        takes: |c| {
            c.ends_with(".refused")
                || c.ends_with(".failed")
                || c.ends_with(".denied")
                || c == AuditAction::ScimOAuthGrantRevoked.as_str()
        },
    },
];

/// The action codes of kind `key` (a group's key or one action's code).
fn kind_codes(key: &str) -> Option<Vec<&'static str>> {
    if let Some(group) = GROUPS.iter().find(|g| g.key == key) {
        return Some(
            AuditAction::ALL
                .iter()
                .map(|a| a.as_str())
                .filter(|c| (group.takes)(c))
                .collect(),
        );
    }
    AuditAction::parse(key).map(|a| vec![a.as_str()])
}

/// The filter as the URL gives it, each value as sent (for the form and the links)
/// beside what it means.
#[derive(Debug, Default)]
struct Query {
    kind: Option<String>,
    user: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<Cursor>,
    format: Option<String>,
    /// What could not be used, in words.
    problems: Vec<&'static str>,
    /// The filter's time bounds.
    from_at: Option<OffsetDateTime>,
    until_at: Option<OffsetDateTime>,
    /// The kind's codes.
    actions: Option<Vec<&'static str>>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let mut q = Query::default();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let slot = match k.as_ref() {
                "kind" => &mut q.kind,
                "user" => &mut q.user,
                "from" => &mut q.from,
                "to" => &mut q.to,
                "format" => &mut q.format,
                "before" | "after" => {
                    if q.cursor.is_none() {
                        q.cursor = match (k.as_ref(), v.parse::<i64>()) {
                            ("before", Ok(id)) if id > 0 => Some(Cursor::Before(id)),
                            ("after", Ok(id)) if id >= 0 => Some(Cursor::After(id)),
                            _ => {
                                q.problems.push("The page position is not a number.");
                                None
                            }
                        };
                    }
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.to_owned());
            }
        }
        if let Some(kind) = &q.kind {
            q.actions = kind_codes(kind);
            if q.actions.is_none() {
                q.problems.push("The kind is not one of the list.");
                q.kind = None;
            }
        }
        if let Some(user) = &q.user
            && user.chars().count() > MAX_USER_CHARS
        {
            q.problems
                .push("The user is too long to be an email or an ID.");
            q.user = None;
        }
        if let Some(from) = &q.from {
            q.from_at = parse_time(from, false);
            if q.from_at.is_none() {
                q.problems
                    .push("The From time is not a date (2025-01-31) or a date and time.");
                q.from = None;
            }
        }
        if let Some(to) = &q.to {
            q.until_at = parse_time(to, true);
            if q.until_at.is_none() {
                q.problems
                    .push("The Until time is not a date (2025-01-31) or a date and time.");
                q.to = None;
            }
        }
        q
    }

    /// The query string of this filter (no position), for links and the export.
    fn filter_query(&self) -> String {
        query::encode(&[
            ("kind", self.kind.as_deref()),
            ("user", self.user.as_deref()),
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
        ])
    }

    /// The filter's link with one more parameter.
    fn link(&self, path: &str, extra: &str) -> String {
        let filter = self.filter_query();
        match (filter.is_empty(), extra.is_empty()) {
            (true, true) => path.to_owned(),
            (true, false) => format!("{path}?{extra}"),
            (false, true) => format!("{path}?{filter}"),
            (false, false) => format!("{path}?{filter}&{extra}"),
        }
    }

    /// The store's filter: the user named by id, or by email or user name within the
    /// admin's workspace (so another workspace's user is never found).
    async fn to_filter(&self, pool: &Pool, team_id: TeamId) -> Result<EventFilter, StoreError> {
        let users = match &self.user {
            None => None,
            Some(u) => match Uuid::parse_str(u) {
                Ok(id) => Some(vec![id]),
                Err(_) => Some(users_named(pool, team_id, u).await?),
            },
        };
        Ok(EventFilter {
            actions: self.actions.clone(),
            users,
            from: self.from_at,
            until: self.until_at,
        })
    }
}

/// The users of the workspace whose user name or email is `name` (case-insensitive).
async fn users_named(pool: &Pool, team_id: TeamId, name: &str) -> Result<Vec<Uuid>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT id FROM users WHERE team_id = $1 AND lower(user_name) = lower($2)
                     UNION
                     (SELECT id FROM users WHERE team_id = $1 AND lower(email) = lower($2) LIMIT $3)",
                )
                .await?,
            &[&team_id.as_uuid(), &name, &MAX_USERS_PER_EMAIL],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A time of the filter, in UTC: an ISO date (`2025-01-31`), a `datetime-local` value
/// (`2025-01-31T09:30`, seconds optional) or RFC 3339 with an offset. A bare date as
/// the upper bound (`until`) takes the whole day.
fn parse_time(text: &str, until: bool) -> Option<OffsetDateTime> {
    const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");
    const MINUTE: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]");
    const SECOND: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(date) = Date::parse(text, DATE) {
        let date = if until { date.next_day()? } else { date };
        return Some(date.midnight().assume_utc());
    }
    for format in [MINUTE, SECOND] {
        if let Ok(t) = PrimitiveDateTime::parse(text, format) {
            return Some(t.assume_utc());
        }
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// The value a `datetime-local` input shows for `t` (UTC).
fn input_value(t: OffsetDateTime) -> String {
    const FORMAT: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]");
    t.format(FORMAT).unwrap_or_default()
}

/// An event's time as the page shows it.
fn shown_time(t: OffsetDateTime) -> String {
    const FORMAT: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(FORMAT).unwrap_or_default()
}

/// `GET /activity`.
pub async fn show(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Markup, PageError> {
    let team_id = admin.team_id();
    let q = Query::parse(raw.as_deref());
    let filter = q.to_filter(&state.pg, team_id).await?;
    let cursor = q.cursor.unwrap_or(Cursor::Newest);
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let mut events = audit::events(&client, team_id, &filter, cursor, PAGE_SIZE + 1).await?;
    // One more than a page tells whether there is more in the direction read.
    let more = events.len() > usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    if more {
        match cursor {
            Cursor::After(_) => events.remove(0),
            _ => events.pop().expect("more than a page"),
        };
    }
    let (newer, older) = match cursor {
        Cursor::Newest => (false, more),
        Cursor::Before(_) | Cursor::Past { .. } => (true, more),
        // Read going back: there are older events (the page came from one).
        Cursor::After(_) => (more, true),
    };
    let names = user_names(&client, team_id, &events).await?;
    let retention = state.config.audit_retention.whole_days();
    let body = html! {
        (integrations_style())
        nav aria-label="Breadcrumb" { a href=(app::HOME) { "Home" } " › " a href=(app::WORKSPACE) { "Workspace" } }
        h1 { "Activity" }
        p {
            "What happened in " strong { (Text(&admin.approver.workspace_name)) }
            ": provisioning by Okta and the SCIM requests it refused, sign-ins, Universal \
             Logout, provisioning access and tokens. Newest first; times in UTC. Events \
             are kept " (retention) " days."
        }
        @if !q.problems.is_empty() {
            div role="alert" {
                p.error { "Some of the filter could not be used and was left out:" }
                ul { @for p in &q.problems { li { (Text(p)) } } }
            }
        }
        (filter_form(&q))
        p {
            "Export these events: "
            a href=(q.link(app::ACTIVITY_EXPORT, "format=jsonl")) download { "JSON Lines" }
            " · "
            a href=(q.link(app::ACTIVITY_EXPORT, "format=csv")) download { "CSV" }
        }
        @if events.is_empty() {
            p role="status" { "No events match." }
        } @else {
            table {
                caption { "Events, newest first" }
                thead { tr {
                    th scope="col" { "Time" }
                    th scope="col" { "Actor" }
                    th scope="col" { "Action" }
                    th scope="col" { "Target" }
                    th scope="col" { "Details" }
                } }
                tbody { @for e in &events { (row(e, &names)) } }
            }
        }
        @if newer || older {
            nav aria-label="Pages of events" { ul {
                @if newer {
                    li { a href=(q.link(app::ACTIVITY, "")) { "Newest events" } }
                    @if let Some(first) = events.first() {
                        li { a href=(q.link(app::ACTIVITY, &format!("after={}", first.id))) { "Newer events" } }
                    }
                }
                @if older && let Some(last) = events.last() {
                    li { a href=(q.link(app::ACTIVITY, &format!("before={}", last.id))) { "Older events" } }
                }
            } }
        }
    };
    Ok(page("Activity", body))
}

/// The filter form: a `GET` to the page itself, so a filtered view is a link.
fn filter_form(q: &Query) -> Markup {
    let selected = q.kind.as_deref().unwrap_or_default();
    html! {
        form method="get" action=(app::ACTIVITY) role="search" aria-label="Filter events" {
            p {
                label for="kind" { "Kind" } br;
                select id="kind" name="kind" {
                    option value="" selected[selected.is_empty()] { "All kinds" }
                    optgroup label="Groups" {
                        @for g in GROUPS {
                            option value=(g.key) selected[selected == g.key] { (g.label) }
                        }
                    }
                    optgroup label="One action" {
                        @for a in AuditAction::ALL {
                            option value=(a.as_str()) selected[selected == a.as_str()] {
                                (a.label()) " (" (a.as_str()) ")"
                            }
                        }
                    }
                }
            }
            p {
                label for="user" { "User (email or user ID)" } br;
                input id="user" name="user" type="text" size="40" autocomplete="off"
                    value=(Text(q.user.as_deref().unwrap_or_default()));
            }
            p {
                label for="from" { "From (UTC)" } br;
                input id="from" name="from" type="datetime-local"
                    value=(q.from_at.map(input_value).unwrap_or_default());
            }
            p {
                label for="to" { "Until (UTC, not included)" } br;
                input id="to" name="to" type="datetime-local"
                    value=(q.until_at.map(input_value).unwrap_or_default());
            }
            p {
                button type="submit" { "Show events" }
                " "
                a href=(app::ACTIVITY) { "Clear the filter" }
            }
        }
    }
}

/// The emails (else user names) of the users the page's events name, by id: one query
/// for the page, within the admin's workspace.
async fn user_names(
    client: &crate::store::pg::Client,
    team_id: TeamId,
    events: &[StoredEvent],
) -> Result<HashMap<Uuid, String>, StoreError> {
    let mut ids: Vec<Uuid> = events
        .iter()
        .flat_map(|e| {
            let actor = Uuid::parse_str(e.actor.strip_prefix("user:").unwrap_or(&e.actor)).ok();
            let target = e.target.as_deref().and_then(|t| Uuid::parse_str(t).ok());
            [actor, target]
        })
        .flatten()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT id, coalesce(email, user_name) FROM users WHERE team_id = $1 AND id = ANY($2)",
                )
                .await?,
            &[&team_id.as_uuid(), &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A user, linked to their page when they are (still) a user of the workspace.
fn user_link(id: &str, names: &HashMap<Uuid, String>) -> Markup {
    match Uuid::parse_str(id)
        .ok()
        .and_then(|u| names.get(&u).map(|n| (u, n)))
    {
        Some((u, name)) => html! { a href=(app::person(u)) { (Text(name)) } },
        None => html! { code { (Text(id)) } },
    }
}

/// Who acted, in words.
fn actor(actor: &str, names: &HashMap<Uuid, String>) -> Markup {
    // A user acts as `user:<id>`; a sign-in with the one-time link names the bare id.
    if let Some(id) = actor
        .strip_prefix("user:")
        .or_else(|| Uuid::parse_str(actor).is_ok().then_some(actor))
    {
        return html! { "user " (user_link(id, names)) };
    }
    if let Some(token) = actor.strip_prefix("scim:") {
        return html! { "Okta (SCIM)" br; small { "token " code { (Text(token)) } } };
    }
    if let Some(client) = actor.strip_prefix("oauth-client:") {
        return html! { "Okta (provisioning OAuth)" br; small { "client " code { (Text(client)) } } };
    }
    match actor {
        "operator" => html! { "operator" },
        "okta" => html! { "Okta (sign-in)" },
        "okta:unverified" => html! { "Okta (Universal Logout, unverified)" },
        "anonymous" => html! { "unauthenticated client" },
        "user" => html! { "a user" },
        other => match other.strip_prefix("okta:") {
            Some(sub) => {
                html! { "Okta (Universal Logout)" br; small { "client " code { (Text(sub)) } } }
            }
            None => html! { code { (Text(other)) } },
        },
    }
}

/// One event's row.
fn row(e: &StoredEvent, names: &HashMap<Uuid, String>) -> Markup {
    let action = AuditAction::parse(&e.action);
    html! {
        tr {
            td { time datetime=(e.at.format(&Rfc3339).unwrap_or_default()) { (shown_time(e.at)) } }
            td { (actor(&e.actor, names)) }
            td {
                (action.map_or("Other event", AuditAction::label))
                br; code { (Text(&e.action)) }
            }
            td {
                @match &e.target {
                    Some(t) => (user_link(t, names)),
                    None => "—",
                }
            }
            td { (details(action, e)) }
        }
    }
}

/// An event's detail, readably: each field on its own line, a change as
/// "before → after", and the fix the Troubleshooting table gives for a known reason.
fn details(action: Option<AuditAction>, e: &StoredEvent) -> Markup {
    let fields: Vec<(&String, &Value)> = match &e.detail {
        Value::Object(m) => m.iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => Vec::new(),
    };
    let explained = action.and_then(|a| explain(a, &e.detail));
    html! {
        @if let Some((why, fix)) = explained {
            p { strong { "Why: " } (why) }
            @if let Some(fix) = fix { p { strong { "Fix: " } (fix) } }
        }
        @if e.detail["more"].as_i64().is_some_and(|n| n > 0) {
            p { "…and " (e.detail["more"]) " more like it since the previous one recorded." }
        }
        @if !fields.is_empty() || e.request_id.is_some() {
            dl {
                @if let Some(id) = &e.request_id {
                    dt { "Request ID" } dd { code { (Text(id)) } }
                }
                @for (k, v) in fields {
                    dt { (Text(k)) } dd { (Text(&shown_value(v))) }
                }
            }
        }
    }
}

/// A detail value as text: strings bare, changes as "before → after", anything else as
/// compact JSON; cut at [`MAX_SHOWN_CHARS`].
fn shown_value(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.len() == 2 && m.contains_key("before") && m.contains_key("after") => {
            format!(
                "{} → {}",
                shown_value(&m["before"]),
                shown_value(&m["after"])
            )
        }
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_SHOWN_CHARS {
        let mut cut: String = text.chars().take(MAX_SHOWN_CHARS).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

/// The seed's Troubleshooting fixes, word for word, by their symptom.
mod troubleshooting {
    /// "Okta reports an invalid SCIM base URL".
    pub const SCIM_BASE_URL: &str = "Confirm the base URL uses string concatenation with \
         app.team_id and that the tenant setting name is team_id.";
    /// "Users can authenticate in Okta but cannot enter ClosedLoop AI".
    pub const CANNOT_ENTER: &str = "Confirm the user is assigned to the Okta app and is \
         provisioned or Just-in-time provisioning is enabled in ClosedLoop AI.";
    /// "The OIDC callback fails".
    pub const CALLBACK: &str =
        "Confirm the Redirect URI exactly matches the region-specific callback URL.";
    /// "Universal Logout returns 401".
    pub const LOGOUT_401: &str = "Confirm Okta is using SIGNED_JWT and the Global Token \
         Revocation endpoint for the same region as the workspace.";
    /// "A user is deactivated but still has the app open".
    pub const STILL_OPEN: &str = "Confirm Okta sent the SCIM deactivation or Universal \
         Logout event for the same ClosedLoop AI region.";
}

/// Why a refusal happened and, where known, how to fix it.
fn explain(action: AuditAction, detail: &Value) -> Option<(&'static str, Option<&'static str>)> {
    use troubleshooting as t;
    let reason = detail["reason"].as_str().unwrap_or_default();
    let status = detail["status"].as_u64().unwrap_or_default();
    match action {
        AuditAction::OidcSignInFailed => Some(match reason {
            "not_provisioned" => (
                "the user is not provisioned and just-in-time provisioning is off",
                Some(t::CANNOT_ENTER),
            ),
            "user_deactivated" => (
                "the user is deactivated in ClosedLoop AI",
                Some(
                    "If the user should have access, assign them to the Okta app again: provisioning reactivates the account.",
                ),
            ),
            "okta_error" if detail["error"] == "access_denied" => (
                "Okta refused the sign-in (access_denied)",
                Some(t::CANNOT_ENTER),
            ),
            "okta_error" => ("Okta answered the sign-in with an error", None),
            "token_refused" => ("Okta refused the sign-in code", Some(t::CALLBACK)),
            "invalid_client" => (
                "Okta refused the Client ID and Client secret",
                Some(
                    "Copy the Client ID and Client secret from the Okta app into Integrations > Okta again.",
                ),
            ),
            "sign_in_disabled" => (
                "Okta sign-in is turned off",
                Some("Turn on Enable Okta sign-in under Integrations > Okta."),
            ),
            "not_configured" => (
                "Okta is not connected yet",
                Some("Save the Okta settings under Integrations > Okta."),
            ),
            "subject_mismatch" => (
                "the account with this email is linked to another Okta user",
                Some(
                    "Check the email address of the user's Okta profile; if their Okta account was replaced, ask ClosedLoop AI support to re-link the account.",
                ),
            ),
            "issuer_mismatch" | "iss_mismatch" | "iss_missing" => (
                "the sign-in did not come from this workspace's Okta org",
                Some("Confirm the Okta domain under Integrations > Okta is the org the app is in."),
            ),
            "no_verified_email" => ("Okta gave no verified email address", None),
            "ambiguous_user" => ("several users of the workspace have this email", None),
            "okta_domain_not_allowed" => (
                "the workspace's Okta domain is not allowed",
                Some(
                    "Enter the org's okta.com domain under Integrations > Okta, or ask ClosedLoop AI support to allow the custom domain.",
                ),
            ),
            "state_unknown" | "state_replayed" | "browser_mismatch" | "handoff_unknown" => (
                "the sign-in expired, was replayed or came to another browser",
                None,
            ),
            _ => return None,
        }),
        AuditAction::OktaUniversalLogoutRefused => Some(match status {
            401 => (
                "Okta's logout request did not authenticate",
                Some(t::LOGOUT_401),
            ),
            404 => ("the user is not in this workspace", Some(t::STILL_OPEN)),
            _ => return None,
        }),
        AuditAction::ScimRequestRefused => Some(match status {
            401 => (
                "the request had no valid SCIM token for this workspace",
                Some(
                    "In the Okta app's Provisioning tab, authenticate again (Step 5 of the setup) so that Okta holds a current token.",
                ),
            ),
            404 if detail["path"]
                .as_str()
                .is_some_and(|p| !p.starts_with("/Users/") && !p.starts_with("/Groups/")) =>
            {
                ("no such SCIM endpoint", Some(t::SCIM_BASE_URL))
            }
            409 => ("a user or group with this name already exists", None),
            429 => (
                "Okta sent more SCIM requests than the workspace's rate limit",
                None,
            ),
            _ => return None,
        }),
        _ => None,
    }
}

/// `GET /activity/export?format=jsonl|csv&…`: the events of the page's filter, newest
/// first, as a download. Streamed in batches of [`EXPORT_BATCH`] by keyset, each batch
/// a short query on a pooled connection; the first batch is read before answering,
/// so a store outage is a `503` page, not an empty file. A failure later cuts the
/// download short (the client sees an incomplete transfer, never a file that looks
/// whole).
pub async fn export(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let team_id = admin.team_id();
    let q = Query::parse(raw.as_deref());
    let format = match q.format.as_deref() {
        Some("jsonl") => Format::JsonLines,
        Some("csv") => Format::Csv,
        _ => {
            return Err(PageError::BadRequest {
                title: "Unknown export format",
                explanation: "Choose JSON Lines (format=jsonl) or CSV (format=csv).",
            });
        }
    };
    if !q.problems.is_empty() || q.cursor.is_some() {
        return Err(PageError::BadRequest {
            title: "The filter cannot be used",
            explanation: "Part of this export's filter could not be read. Go back to the \
                          Activity page, check the filter and export from there.",
        });
    }
    let filter = q.to_filter(&state.pg, team_id).await?;
    let first = {
        let client = state.pg.get().await.map_err(StoreError::from)?;
        let first = audit::events(&client, team_id, &filter, Cursor::Newest, EXPORT_BATCH).await?;
        // After the first batch is read, so the export does not contain its own event.
        let actor = format!("user:{}", admin.user_id());
        audit::record(
            &client,
            &AuditEvent {
                team_id: Some(team_id),
                actor: &actor,
                action: AuditAction::WorkspaceActivityExported,
                target: None,
                detail: json!({
                    "format": format.extension(),
                    "filter": q.filter_query(),
                }),
            },
        )
        .await?;
        first
    };
    let mut head = Vec::new();
    if format == Format::Csv {
        head.extend_from_slice(CSV_HEADER.as_bytes());
    }
    let batches = Batches {
        pool: state.pg.clone(),
        team_id,
        filter,
        format,
        pending: Some((head, first)),
        done: false,
        last: None,
    };
    let stream = futures_util::stream::unfold(batches, Batches::next);
    let mut response = Body::from_stream(stream).into_response();
    let stamp = state
        .config
        .clock
        .now()
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let filename = format!("activity-{team_id}-{stamp}.{}", format.extension());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One JSON object per line.
    JsonLines,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonl",
            Format::Csv => "csv",
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            Format::JsonLines => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    fn write(self, out: &mut Vec<u8>, e: &StoredEvent) {
        let at = e.at.format(&Rfc3339).unwrap_or_default();
        let label = AuditAction::parse(&e.action).map(AuditAction::label);
        match self {
            Format::JsonLines => {
                let line = json!({
                    "id": e.id,
                    "at": at,
                    "actor": e.actor,
                    "action": e.action,
                    "label": label,
                    "target": e.target,
                    "request_id": e.request_id,
                    "detail": e.detail,
                });
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
            Format::Csv => {
                let id = e.id.to_string();
                let detail = e.detail.to_string();
                let cells = [
                    id.as_str(),
                    &at,
                    &e.actor,
                    &e.action,
                    label.unwrap_or_default(),
                    e.target.as_deref().unwrap_or_default(),
                    e.request_id.as_deref().unwrap_or_default(),
                    &detail,
                ];
                for (i, cell) in cells.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    csv_cell(out, cell);
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// The CSV header row.
const CSV_HEADER: &str = "id,at,actor,action,label,target,request_id,detail\r\n";

/// One CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break, with
/// quotes doubled. A cell a spreadsheet would take for a formula (it starts with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`: audit details carry
/// values anyone could send (a SCIM `userName`, a refused filter), and an admin opens
/// the file in a spreadsheet.
fn csv_cell(out: &mut Vec<u8>, cell: &str) {
    let guard = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = guard || cell.contains([',', '"', '\r', '\n']);
    if quote {
        out.push(b'"');
    }
    if guard {
        out.push(b'\'');
    }
    for b in cell.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

/// The export's stream: a batch rendered per step, the next read by keyset after the
/// last id of the one before.
struct Batches {
    pool: Pool,
    team_id: TeamId,
    filter: EventFilter,
    format: Format,
    /// Bytes to send first and a batch read but not yet rendered.
    pending: Option<(Vec<u8>, Vec<StoredEvent>)>,
    /// The last batch was short: nothing more to read.
    done: bool,
    /// The time and id of the last event sent: the next batch is older.
    last: Option<(OffsetDateTime, i64)>,
}

impl Batches {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        let (mut out, events) = match self.pending.take() {
            Some(p) => p,
            None if self.done => return None,
            None => match self.read().await {
                Ok(events) => (Vec::new(), events),
                Err(e) => {
                    tracing::error!(error = %e, "an activity export stopped: store unavailable");
                    self.done = true;
                    return Some((Err(std::io::Error::other("store unavailable")), self));
                }
            },
        };
        self.done = events.len() < usize::try_from(EXPORT_BATCH).unwrap_or(usize::MAX);
        if events.is_empty() && out.is_empty() {
            return None;
        }
        for e in &events {
            self.format.write(&mut out, e);
        }
        if let Some(last) = events.last() {
            self.last = Some((last.at, last.id));
        }
        Some((Ok(Bytes::from(out)), self))
    }

    async fn read(&self) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.pool.get().await?;
        let cursor = self
            .last
            .map_or(Cursor::Newest, |(at, id)| Cursor::Past { at, id });
        audit::events(&client, self.team_id, &self.filter, cursor, EXPORT_BATCH).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(s: &str) -> String {
        let mut out = Vec::new();
        csv_cell(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        for formula in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            let c = cell(formula);
            assert!(c.starts_with("\"'"), "{formula:?} → {c:?}");
        }
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn times_are_dates_datetime_local_values_or_rfc3339() {
        let t = |s, until| parse_time(s, until).map(|t| t.format(&Rfc3339).unwrap());
        assert_eq!(t("2025-01-31", false).unwrap(), "2025-01-31T00:00:00Z");
        // A bare date as the upper bound takes the whole day.
        assert_eq!(t("2025-01-31", true).unwrap(), "2025-02-01T00:00:00Z");
        assert_eq!(t("2025-01-31T09:30", true).unwrap(), "2025-01-31T09:30:00Z");
        assert_eq!(
            t("2025-01-31T09:30:15", false).unwrap(),
            "2025-01-31T09:30:15Z"
        );
        assert_eq!(
            t("2025-01-31T09:30:00+02:00", false).unwrap(),
            "2025-01-31T07:30:00Z"
        );
        for bad in [
            "yesterday",
            "2025-13-01",
            "31/01/2025",
            "2025-01-31T25:00",
            "",
        ] {
            assert!(t(bad, false).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_action_has_a_group_and_groups_name_their_codes() {
        let grouped: Vec<&str> = GROUPS
            .iter()
            .filter(|g| g.key != "refused")
            .flat_map(|g| kind_codes(g.key).unwrap())
            .collect();
        for a in AuditAction::ALL {
            assert!(grouped.contains(&a.as_str()), "{a} is in no group");
            assert_eq!(kind_codes(a.as_str()), Some(vec![a.as_str()]));
        }
        let scim = kind_codes("scim").unwrap();
        assert!(scim.contains(&"scim.request.refused") && scim.contains(&"scim.user.created"));
        assert!(!scim.contains(&"scim_oauth.grant.approved"));
        let refused = kind_codes("refused").unwrap();
        for code in [
            "scim.request.refused",
            "oidc.sign_in.failed",
            "okta.universal_logout.refused",
        ] {
            assert!(refused.contains(&code), "{code}");
        }
        assert!(kind_codes("scim.user").is_none() && kind_codes("").is_none());
    }

    #[test]
    fn a_bad_value_is_named_and_left_out() {
        let q = Query::parse(Some(
            "kind=nope&user=alice%40acme.test&from=soon&to=2025-01-31&before=x&format=csv",
        ));
        assert_eq!(q.problems.len(), 3, "{:?}", q.problems);
        assert!(q.kind.is_none() && q.actions.is_none() && q.from.is_none());
        assert_eq!(q.user.as_deref(), Some("alice@acme.test"));
        assert!(q.until_at.is_some() && q.cursor.is_none());
        assert_eq!(q.filter_query(), "user=alice%40acme.test&to=2025-01-31");
        assert_eq!(
            q.link(app::ACTIVITY, "before=7"),
            "/activity?user=alice%40acme.test&to=2025-01-31&before=7"
        );
        let q = Query::parse(Some("kind=sign_in&after=12&before=3"));
        assert!(q.problems.is_empty());
        assert_eq!(q.cursor, Some(Cursor::After(12)), "the first position wins");
        assert_eq!(q.link(app::ACTIVITY, ""), "/activity?kind=sign_in");
    }

    #[test]
    fn known_reasons_get_the_troubleshooting_fix() {
        let (why, fix) = explain(
            AuditAction::OidcSignInFailed,
            &json!({ "reason": "not_provisioned" }),
        )
        .unwrap();
        assert_eq!(
            why,
            "the user is not provisioned and just-in-time provisioning is off"
        );
        assert_eq!(fix, Some(troubleshooting::CANNOT_ENTER));
        let (_, fix) = explain(
            AuditAction::OktaUniversalLogoutRefused,
            &json!({ "status": 401, "reason": "invalid_signature" }),
        )
        .unwrap();
        assert_eq!(fix, Some(troubleshooting::LOGOUT_401));
        assert!(explain(AuditAction::ScimUserCreated, &json!({})).is_none());
        assert!(explain(AuditAction::OidcSignInFailed, &json!({ "reason": "new" })).is_none());
    }

    #[test]
    fn changes_read_before_and_after_and_long_values_are_cut() {
        assert_eq!(
            shown_value(&json!({ "before": "Alice", "after": "Alicia" })),
            "Alice → Alicia"
        );
        assert_eq!(shown_value(&json!(["a", 1])), "[\"a\",1]");
        let long = shown_value(&json!("x".repeat(1000)));
        assert_eq!(long.chars().count(), MAX_SHOWN_CHARS + 1);
    }
}
