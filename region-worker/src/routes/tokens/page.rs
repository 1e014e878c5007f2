//! `/tokens` on the app host: a signed-in user's API and MCP tokens. The page lists
//! them (name, kind, created, last used, expiry) with a Revoke button each, and a form
//! creates one; the new token's secret is shown once, in the answer to that form (never
//! in a URL, never again). Forms carry a CSRF token bound to the session and the user.
//! A browser without a live session is sent to sign in and brought back here.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::paths::app;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::personal_tokens::{
    self, CreatedToken, Creation, LIFETIME_DAYS, NewToken, Owner, PersonalKind, TokenSummary,
    valid_name,
};
use crate::web::return_to::sign_in_redirect;
use crate::web::{PageError, SignedIn, Text, csrf, page};

/// How many tokens the page lists (the JSON API pages through all of them).
const PAGE_SIZE: i64 = 200;

/// The lifetimes the form offers, in days; the first is preselected.
const LIFETIMES: [(i64, &str); 4] = [
    (90, "90 days"),
    (30, "30 days"),
    (7, "7 days"),
    (366, "1 year"),
];

/// The CSRF purpose of this user's token forms.
pub fn csrf_purpose(owner: &Owner) -> String {
    format!("personal-tokens:{}:{}", owner.team_id, owner.user_id)
}

const WHEN: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute] UTC");

fn when(t: OffsetDateTime) -> String {
    t.format(WHEN).unwrap_or_default()
}

/// What the page says above the list.
enum Notice {
    /// A token was just created: its secret, shown this once.
    Created(CreatedToken),
    /// A token was revoked.
    Revoked,
    /// The form was refused; the message says why.
    Invalid(&'static str),
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    revoked: Option<String>,
}

/// `GET /tokens`.
pub(crate) async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Query(q): Query<ShowQuery>,
) -> Result<Markup, PageError> {
    let notice = q.revoked.is_some().then_some(Notice::Revoked);
    render(&state, &user, notice).await
}

/// The creation form's fields.
#[derive(Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    expires_in_days: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /tokens`: creates a token and answers with the page showing its secret.
pub(crate) async fn create(
    user: SignedIn,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<CreateForm>,
) -> Result<Response, PageError> {
    user.check_form(&csrf_purpose(&user.owner), &form.csrf)?;
    let refused = async |status: StatusCode, message: &'static str| {
        let page = render(&state, &user, Some(Notice::Invalid(message))).await?;
        Ok::<_, PageError>((status, page).into_response())
    };
    let Some(name) = valid_name(&form.name) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "Give the token a name of 1 to 100 characters.",
        )
        .await;
    };
    let Some(kind) = PersonalKind::parse(&form.kind) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "Choose an API token or an MCP token.",
        )
        .await;
    };
    let Some(days) = form
        .expires_in_days
        .parse::<i64>()
        .ok()
        .filter(|d| LIFETIME_DAYS.contains(d))
    else {
        return refused(StatusCode::BAD_REQUEST, "Choose when the token expires.").await;
    };
    let now = state.config.clock.now();
    let created = personal_tokens::create(
        &state.pg,
        &state.redis,
        state.config.region_id(),
        &NewToken {
            owner: user.owner,
            kind,
            name,
            expires_at: now + Duration::days(days),
            now,
        },
    )
    .await?;
    match created {
        Creation::Created(t) => Ok(render(&state, &user, Some(Notice::Created(t)))
            .await?
            .into_response()),
        Creation::Stale => Ok(sign_in_redirect(app::TOKENS)),
        Creation::TooMany => {
            refused(
                StatusCode::CONFLICT,
                "You hold as many live tokens as allowed. Revoke some before creating more.",
            )
            .await
        }
    }
}

/// The Revoke form's fields.
#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /tokens/revoke`.
pub(crate) async fn revoke(
    user: Result<SignedIn, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<RevokeForm>,
) -> Result<Redirect, PageError> {
    let user = user.map_err(|e| e.returning_to(app::TOKENS))?;
    user.check_form(&csrf_purpose(&user.owner), &form.csrf)?;
    let Ok(id) = Uuid::parse_str(&form.id) else {
        return Err(not_found());
    };
    if personal_tokens::revoke(&state.pg, &state.redis, user.owner, id).await? {
        Ok(Redirect::to(&format!("{}?revoked=1", app::TOKENS)))
    } else {
        Err(not_found())
    }
}

/// Renders the page for `user`, with `notice` above the list.
async fn render(
    state: &AppState,
    user: &SignedIn,
    notice: Option<Notice>,
) -> Result<Markup, PageError> {
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let (tokens, more) = personal_tokens::list(
        &client,
        user.owner,
        state.config.clock.now(),
        PAGE_SIZE,
        None,
    )
    .await?;
    let csrf_token = user.csrf_token(&csrf_purpose(&user.owner));
    let connected = crate::routes::mcp::connected::section(state, user, &csrf_token).await?;
    let body = html! {
        h1 { "API and MCP tokens" }
        p {
            "API tokens call the ClosedLoop AI API; MCP tokens connect MCP clients. Both act \
             as you. Okta Universal Logout, or your deactivation in Okta, revokes all of them at \
             once."
        }
        @match notice {
            None => {},
            Some(Notice::Revoked) => p role="status" { "Revoked. The token no longer works." },
            Some(Notice::Invalid(message)) => p.error role="alert" { (Text(message)) },
            Some(Notice::Created(t)) => (created(&t)),
        }
        (create_form(&csrf_token))
        (token_table(&tokens, more, &csrf_token))
        (connected)
        p { a href=(app::HOME) { "Home" } }
    };
    Ok(page("API and MCP tokens", body))
}

/// The new token's secret, shown this once.
fn created(t: &CreatedToken) -> Markup {
    html! {
        section role="status" aria-labelledby="new-token" {
            h2 id="new-token" {
                "Your new " (Text(t.summary.kind.describe())) ": " (Text(&t.summary.name))
            }
            p {
                strong { "Copy it now: it will not be shown again." } " Send it as "
                code { "Authorization: Bearer <token>" } "."
            }
            p {
                label for="new-token-value" { "Token" } br;
                input id="new-token-value" type="text" readonly size="64" value=(Text(&t.secret))
                    autocomplete="off" spellcheck="false";
            }
        }
    }
}

fn create_form(csrf_token: &str) -> Markup {
    html! {
        section aria-labelledby="create-token" {
            h2 id="create-token" { "Create a token" }
            form method="post" action=(app::TOKENS) {
                p {
                    label for="token-name" { "Name" } br;
                    input id="token-name" name="name" type="text" maxlength="100" required
                        autocomplete="off";
                }
                fieldset {
                    legend { "Kind" }
                    @for (i, k) in PersonalKind::ALL.iter().enumerate() {
                        label {
                            input type="radio" name="kind" value=(k.code()) checked[i == 0];
                            " " (Text(k.describe()))
                        }
                        " "
                    }
                }
                p {
                    label for="token-expiry" { "Expires in" } br;
                    select id="token-expiry" name="expires_in_days" {
                        @for (days, label) in LIFETIMES {
                            option value=(days) { (label) }
                        }
                    }
                }
                input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
                button type="submit" { "Create token" }
            }
        }
    }
}

fn token_table(tokens: &[TokenSummary], more: bool, csrf_token: &str) -> Markup {
    html! {
        section aria-labelledby="your-tokens" {
            h2 id="your-tokens" { "Your tokens" }
            @if tokens.is_empty() {
                p { "You hold no live token." }
            } @else {
                table {
                    caption { "Live tokens, newest first" }
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Created" }
                        th scope="col" { "Last used" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Action" }
                    } }
                    tbody {
                        @for t in tokens {
                            (token_row(t, csrf_token))
                        }
                    }
                }
                @if more {
                    p {
                        "Showing your " (PAGE_SIZE) " newest tokens. The token API ("
                        code { "GET /api/tokens" } ") lists all of them."
                    }
                }
            }
        }
    }
}

/// One live token and its Revoke form.
fn token_row(t: &TokenSummary, csrf_token: &str) -> Markup {
    let kind = t.kind.describe();
    let label = format!("Revoke the {kind} {}", t.name);
    html! {
        tr {
            td { (Text(&t.name)) }
            td { (Text(kind)) }
            td { (when(t.created_at)) }
            td { (t.last_used_at.map_or_else(|| "Never".to_owned(), when)) }
            td { (t.expires_at.map_or_else(|| "Never".to_owned(), when)) }
            td {
                form method="post" action=(app::TOKENS_REVOKE) {
                    input type="hidden" name="id" value=(t.id);
                    input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
                    button type="submit" aria-label=(Text(&label)) { "Revoke" }
                }
            }
        }
    }
}

fn not_found() -> PageError {
    PageError::NotFound {
        title: "No such token",
        explanation: "You hold no live token with this id. It may have been revoked already.",
    }
}
