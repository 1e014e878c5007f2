//! `/tokens` on the app host: a signed-in user's API and MCP tokens. The page lists
//! them (name, kind, created, last used, expiry) with a Revoke button each, and a form
//! creates one; the new token's secret is shown once, in the answer to that form (never
//! in a URL, never again). Forms carry a CSRF token bound to the session and the user.
//! A browser without a live session is sent to sign in and brought back here.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::csrf;
use crate::html::{error_page, escape, page};
use crate::routes::pages::{sign_in_redirect, unavailable};
use crate::session;
use crate::state::AppState;
use crate::store::personal_tokens::{
    self, CreatedToken, Creation, LIFETIME_DAYS, NewToken, Owner, PersonalKind, TokenSummary,
    valid_name,
};

/// The page.
pub const PATH: &str = "/tokens";
/// Where Revoke buttons post.
pub const REVOKE_PATH: &str = "/tokens/revoke";

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

/// The signed-in user, or the response that stops the request.
async fn owner(state: &AppState, headers: &HeaderMap) -> Result<Owner, Response> {
    match session::current(state, headers).await {
        Ok(Some(s)) => Owner::of(&s).ok_or_else(|| sign_in_redirect(PATH)),
        Ok(None) => Err(sign_in_redirect(PATH)),
        Err(e) => Err(unavailable(e)),
    }
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
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let owner = match owner(&state, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let notice = q.revoked.is_some().then_some(Notice::Revoked);
    render(&state, &headers, owner, StatusCode::OK, notice).await
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
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CreateForm>,
) -> Response {
    let owner = match owner(&state, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if csrf::check(&state, &headers, &csrf_purpose(&owner), &form.csrf).is_err() {
        return form_refused();
    }
    let Some(name) = valid_name(&form.name) else {
        let notice = Notice::Invalid("Give the token a name of 1 to 100 characters.");
        return render(
            &state,
            &headers,
            owner,
            StatusCode::BAD_REQUEST,
            Some(notice),
        )
        .await;
    };
    let Some(kind) = PersonalKind::parse(&form.kind) else {
        let notice = Notice::Invalid("Choose an API token or an MCP token.");
        return render(
            &state,
            &headers,
            owner,
            StatusCode::BAD_REQUEST,
            Some(notice),
        )
        .await;
    };
    let Some(days) = form
        .expires_in_days
        .parse::<i64>()
        .ok()
        .filter(|d| LIFETIME_DAYS.contains(d))
    else {
        let notice = Notice::Invalid("Choose when the token expires.");
        return render(
            &state,
            &headers,
            owner,
            StatusCode::BAD_REQUEST,
            Some(notice),
        )
        .await;
    };
    let now = state.config.clock.now();
    let created = personal_tokens::create(
        &state.pg,
        &state.redis,
        state.config.region_id(),
        &NewToken {
            owner,
            kind,
            name,
            expires_at: now + Duration::days(days),
            now,
        },
    )
    .await;
    match created {
        Ok(Creation::Created(t)) => {
            render(
                &state,
                &headers,
                owner,
                StatusCode::OK,
                Some(Notice::Created(t)),
            )
            .await
        }
        Ok(Creation::Stale) => sign_in_redirect(PATH),
        Ok(Creation::TooMany) => {
            let notice = Notice::Invalid(
                "You hold as many live tokens as allowed. Revoke some before creating more.",
            );
            render(&state, &headers, owner, StatusCode::CONFLICT, Some(notice)).await
        }
        Err(e) => unavailable(e),
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
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<RevokeForm>,
) -> Response {
    let owner = match owner(&state, &headers).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if csrf::check(&state, &headers, &csrf_purpose(&owner), &form.csrf).is_err() {
        return form_refused();
    }
    let Ok(id) = Uuid::parse_str(&form.id) else {
        return not_found();
    };
    match personal_tokens::revoke(&state.pg, &state.redis, owner, id).await {
        Ok(true) => Redirect::to(&format!("{PATH}?revoked=1")).into_response(),
        Ok(false) => not_found(),
        Err(e) => unavailable(e),
    }
}

/// Renders the page for `owner`, with `notice` above the list.
async fn render(
    state: &AppState,
    headers: &HeaderMap,
    owner: Owner,
    status: StatusCode,
    notice: Option<Notice>,
) -> Response {
    let listed = async {
        let client = state.pg.get().await?;
        personal_tokens::list(&client, owner, state.config.clock.now(), PAGE_SIZE, None).await
    };
    let (tokens, more) = match listed.await {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let Some(csrf_token) = csrf::for_request(state, headers, &csrf_purpose(&owner)) else {
        return sign_in_redirect(PATH);
    };
    let notice = match notice {
        None => String::new(),
        Some(Notice::Revoked) => {
            "<p role=\"status\">Revoked. The token no longer works.</p>".to_owned()
        }
        Some(Notice::Invalid(message)) => {
            format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message))
        }
        Some(Notice::Created(t)) => format!(
            "<section role=\"status\" aria-labelledby=\"new-token\">\
             <h2 id=\"new-token\">Your new {kind}: {name}</h2>\
             <p><strong>Copy it now: it will not be shown again.</strong> Send it as \
             <code>Authorization: Bearer &lt;token&gt;</code>.</p>\
             <p><label for=\"new-token-value\">Token</label><br>\
             <input id=\"new-token-value\" type=\"text\" readonly size=\"64\" value=\"{secret}\" \
             autocomplete=\"off\" spellcheck=\"false\"></p></section>",
            kind = escape(t.summary.kind.describe()),
            name = escape(&t.summary.name),
            secret = escape(&t.secret),
        ),
    };
    page(
        status,
        "API and MCP tokens",
        &format!(
            "<h1>API and MCP tokens</h1>\
             <p>API tokens call the ClosedLoop AI API; MCP tokens connect MCP clients. Both act \
             as you. Okta Universal Logout, or your deactivation in Okta, revokes all of them at \
             once.</p>{notice}{form}{list}<p><a href=\"/\">Home</a></p>",
            form = create_form(&csrf_token),
            list = token_table(&tokens, more, &csrf_token),
        ),
    )
}

fn create_form(csrf_token: &str) -> String {
    let kinds: String = PersonalKind::ALL
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "<label><input type=\"radio\" name=\"kind\" value=\"{code}\"{checked}> {desc}</label> ",
                code = k.code(),
                checked = if i == 0 { " checked" } else { "" },
                desc = escape(k.describe()),
            )
        })
        .collect();
    let lifetimes: String = LIFETIMES
        .iter()
        .map(|(days, label)| format!("<option value=\"{days}\">{label}</option>"))
        .collect();
    format!(
        "<section aria-labelledby=\"create-token\"><h2 id=\"create-token\">Create a token</h2>\
         <form method=\"post\" action=\"{PATH}\">\
         <p><label for=\"token-name\">Name</label><br>\
         <input id=\"token-name\" name=\"name\" type=\"text\" maxlength=\"100\" required \
         autocomplete=\"off\"></p>\
         <fieldset><legend>Kind</legend>{kinds}</fieldset>\
         <p><label for=\"token-expiry\">Expires in</label><br>\
         <select id=\"token-expiry\" name=\"expires_in_days\">{lifetimes}</select></p>\
         <input type=\"hidden\" name=\"{field}\" value=\"{csrf}\">\
         <button type=\"submit\">Create token</button></form></section>",
        field = csrf::FIELD,
        csrf = escape(csrf_token),
    )
}

fn token_table(tokens: &[TokenSummary], more: bool, csrf_token: &str) -> String {
    let mut html = String::from(
        "<section aria-labelledby=\"your-tokens\"><h2 id=\"your-tokens\">Your tokens</h2>",
    );
    if tokens.is_empty() {
        html.push_str("<p>You hold no live token.</p></section>");
        return html;
    }
    html.push_str(
        "<table><caption>Live tokens, newest first</caption><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">Kind</th><th scope=\"col\">Created</th>\
         <th scope=\"col\">Last used</th><th scope=\"col\">Expires</th>\
         <th scope=\"col\">Action</th></tr></thead><tbody>",
    );
    for t in tokens {
        html.push_str(&format!(
            "<tr><td>{name}</td><td>{kind}</td><td>{created}</td><td>{used}</td><td>{expires}</td><td>\
             <form method=\"post\" action=\"{REVOKE_PATH}\">\
             <input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"{field}\" value=\"{csrf}\">\
             <button type=\"submit\" aria-label=\"Revoke the {kind} {name}\">Revoke</button>\
             </form></td></tr>",
            name = escape(&t.name),
            kind = escape(t.kind.describe()),
            created = when(t.created_at),
            used = t.last_used_at.map_or_else(|| "Never".to_owned(), when),
            expires = t.expires_at.map_or_else(|| "Never".to_owned(), when),
            id = t.id,
            field = csrf::FIELD,
            csrf = escape(csrf_token),
        ));
    }
    html.push_str("</tbody></table>");
    if more {
        html.push_str(&format!(
            "<p>Showing your {PAGE_SIZE} newest tokens. The token API \
             (<code>GET /api/tokens</code>) lists all of them.</p>"
        ));
    }
    html.push_str("</section>");
    html
}

fn form_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form cannot be accepted",
        "The form expired or did not come from this ClosedLoop AI page. Reload the page and \
         try again.",
    )
}

fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "No such token",
        "You hold no live token with this id. It may have been revoked already.",
    )
}
