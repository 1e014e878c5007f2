//! Integrations > Okta (`/integrations/okta` on the app host, the seed's "Open
//! ClosedLoop AI US/EU" links), for workspace admins only (`403` for other users).
//!
//! The page shows the workspace's `team_id` (the Okta app's tenant setting), the form
//! of the seed's Step 3 (Okta domain, Client ID, Client secret, Enable Okta sign-in,
//! Just-in-time provisioning, **Save Okta setup**), the generated issuer, every
//! region-specific value of the seed's tables for this workspace's region, and the
//! provisioning connections ([`grants_page::grants_section`]).
//!
//! Saving normalises and validates the domain, refuses a custom domain that no operator
//! allowed for the workspace (saying how to ask for it) and, outside the development
//! switch, a domain that leads to a loopback, private, link-local or unique-local
//! address (with a short reason, never the connection's error chain: the page must not
//! become a probe of the region's network), fetches the org's discovery document to
//! confirm the issuer, seals the client secret under the region key (write-only: it is
//! never shown again, only "saved"), audits the change, and redirects back (POST →
//! redirect → GET). Problems are shown next to their fields, with the entered values
//! kept (never the secret). The form is CSRF-protected. Server-rendered, usable without
//! JavaScript; the copy buttons are a small progressive enhancement.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use shared::ids::TeamId;
use uuid::Uuid;

use super::oauth::grants_page::{self, grants_section};
use super::oidc::{CALLBACK_PATH, LOGIN_PATH, POST_LOGOUT_PATH, sign_out};
use crate::csrf;
use crate::html::{error_page, escape, page};
use crate::okta::domain::OktaDomain;
use crate::okta::http::HttpError;
use crate::okta::settings::{self, NewSettings, OktaSettings};
use crate::routes::pages::{sign_in_redirect, unavailable};
use crate::session;
use crate::state::AppState;
use crate::store::audit::{self, AuditEvent};
use crate::store::grants::{self, GrantSummary};
use crate::store::{StoreError, workspaces};

/// Where the page lives on the app host.
pub const PATH: &str = "/integrations/okta";

/// The longest client id or secret accepted (Okta's are 20 and 40 to 64 characters).
const MAX_CREDENTIAL_LEN: usize = 512;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(show).post(save))
}

/// The CSRF purpose of the settings form of a workspace.
fn csrf_purpose(team_id: TeamId) -> String {
    format!("okta-settings:{team_id}")
}

/// The signed-in admin: their workspace, user id and workspace name.
struct Admin {
    team_id: TeamId,
    user_id: Uuid,
    workspace: String,
}

async fn admin(state: &AppState, headers: &HeaderMap) -> Result<Admin, Response> {
    let session = match session::current(state, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(sign_in_redirect(PATH)),
        Err(e) => return Err(unavailable(e)),
    };
    let Some(user_id) = session.user_id else {
        return Err(sign_in_redirect(PATH));
    };
    match grants::approver(&state.pg, session.team_id, user_id).await {
        Ok(Some(a)) if a.is_admin => Ok(Admin {
            team_id: session.team_id,
            user_id,
            workspace: a.workspace_name,
        }),
        Ok(Some(_)) => Err(error_page(
            StatusCode::FORBIDDEN,
            "Only workspace admins can set up Okta",
            "Integrations > Okta is for workspace admins. Ask an admin of your workspace.",
        )),
        Ok(None) => Err(sign_in_redirect(PATH)),
        Err(e) => Err(unavailable(e)),
    }
}

/// What the form shows: saved values, or what was just submitted.
#[derive(Debug, Default)]
struct FormValues {
    okta_domain: String,
    client_id: String,
    sign_in_enabled: bool,
    jit_provisioning: bool,
}

/// Problems, by field.
#[derive(Debug, Default)]
struct FieldErrors {
    okta_domain: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.okta_domain.is_some() || self.client_id.is_some() || self.client_secret.is_some()
    }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    saved: Option<String>,
    disconnected: Option<String>,
}

/// `GET /integrations/okta`.
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let admin = match admin(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let loaded = load(&state, admin.team_id).await;
    let (saved, grants) = match loaded {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let values = match &saved {
        Some(s) => FormValues {
            okta_domain: s.okta_domain.clone(),
            client_id: s.client_id.clone(),
            sign_in_enabled: s.sign_in_enabled,
            jit_provisioning: s.jit_provisioning,
        },
        // The seed: "Enable Okta sign-in" on, JIT off, by default.
        None => FormValues {
            sign_in_enabled: true,
            ..FormValues::default()
        },
    };
    let status = if q.saved.is_some() {
        "<p role=\"status\" class=\"ok\">Okta setup saved.</p>"
    } else if q.disconnected.is_some() {
        "<p role=\"status\" class=\"ok\">Disconnected. Tokens issued from that approval no longer work.</p>"
    } else {
        ""
    };
    render(
        &state,
        &headers,
        &admin,
        saved.as_ref(),
        &grants,
        &values,
        &FieldErrors::default(),
        status,
        StatusCode::OK,
    )
}

async fn load(
    state: &AppState,
    team_id: TeamId,
) -> Result<(Option<OktaSettings>, Vec<GrantSummary>), StoreError> {
    let client = state.pg.get().await?;
    let saved = settings::get(&client, team_id).await?;
    let grants = grants::list_connected(&client, team_id).await?;
    Ok((saved, grants))
}

/// The form's fields; checkboxes are absent when unchecked.
#[derive(Debug, Deserialize)]
struct SaveForm {
    #[serde(default)]
    okta_domain: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    sign_in_enabled: Option<String>,
    jit_provisioning: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// `POST /integrations/okta`: **Save Okta setup**.
async fn save(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SaveForm>,
) -> Response {
    let admin = match admin(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if csrf::check(&state, &headers, &csrf_purpose(admin.team_id), &form.csrf).is_err() {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "The form expired or did not come from this ClosedLoop AI page. Reload the page \
             and save again.",
        );
    }
    let (saved, grants) = match load(&state, admin.team_id).await {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let values = FormValues {
        okta_domain: form.okta_domain.trim().to_owned(),
        client_id: form.client_id.trim().to_owned(),
        sign_in_enabled: form.sign_in_enabled.is_some(),
        jit_provisioning: form.jit_provisioning.is_some(),
    };
    let mut errors = FieldErrors::default();
    let domain = match OktaDomain::parse(&values.okta_domain, state.config.development) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.okta_domain = Some(e.to_string());
            None
        }
    };
    if !valid_credential(&values.client_id) {
        errors.client_id = Some("Paste the Client ID of the ClosedLoop AI app in Okta.".into());
    }
    let secret = form.client_secret.trim();
    let keep_secret = secret.is_empty();
    if !keep_secret && !valid_credential(secret) {
        errors.client_secret =
            Some("Paste the Client secret of the ClosedLoop AI app in Okta.".into());
    }
    if keep_secret {
        match &saved {
            None => {
                errors.client_secret =
                    Some("Paste the Client secret of the ClosedLoop AI app in Okta.".into())
            }
            Some(s) if s.client_id != values.client_id => {
                errors.client_secret = Some(
                    "The Client ID changed: paste the Client secret that goes with it.".into(),
                );
            }
            Some(_) => {}
        }
    }
    // Okta's own domains, or a custom domain an operator allowed for this workspace.
    if let Some(d) = &domain
        && !d.kind().okta_operated()
    {
        let allowed = match state.pg.get().await {
            Ok(client) => workspaces::allowed_okta_domains(&client, admin.team_id).await,
            Err(e) => Err(e.into()),
        };
        match allowed {
            Ok(allowed) => {
                if let Err(e) = d.permitted(&allowed) {
                    errors.okta_domain = Some(e.to_string());
                }
            }
            Err(e) => return unavailable(e),
        }
    }
    // The domain must lead to the public internet (the HTTP client refuses anything
    // else at connect time too; this says why, in words).
    if let Some(d) = &domain
        && errors.okta_domain.is_none()
        && let Err(e) = state.okta.http.check_host(d.host()).await
    {
        tracing::info!(team_id = %admin.team_id, error = %e, "Okta domain refused");
        errors.okta_domain = Some(match e {
            HttpError::NotPublic => format!(
                "{d} leads to a private or local network address. Enter your Okta org's \
                 public domain."
            ),
            HttpError::UnknownHost => format!("{d} cannot be found. Check the domain."),
            _ => format!("ClosedLoop AI could not look up {d}. Check the domain."),
        });
    }
    // The issuer must be confirmed by the org's own discovery document.
    if let Some(d) = &domain
        && errors.okta_domain.is_none()
        && let Err(e) = state
            .okta
            .discovery
            .refresh(&state.okta.http, &d.issuer())
            .await
    {
        tracing::info!(team_id = %admin.team_id, error = %e, "Okta discovery check failed");
        errors.okta_domain = Some(format!(
            "ClosedLoop AI could not confirm the issuer {}: {}. Check the domain.",
            d.issuer(),
            e.admin_reason()
        ));
    }
    let Some(domain) = domain.filter(|_| !errors.any()) else {
        return render(
            &state,
            &headers,
            &admin,
            saved.as_ref(),
            &grants,
            &values,
            &errors,
            "<div role=\"alert\" class=\"error\"><p>The Okta setup was not saved. Correct the \
             fields marked below.</p></div>",
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let actor = format!("user:{}", admin.user_id);
    let issuer = domain.issuer();
    let stored = async {
        let mut client = state.pg.get().await?;
        let tx = client.transaction().await?;
        let written = settings::save(
            &tx,
            &state.config.encryption_key,
            &NewSettings {
                team_id: admin.team_id,
                okta_domain: domain.as_str(),
                issuer: &issuer,
                client_id: &values.client_id,
                client_secret: (!keep_secret).then_some(secret),
                sign_in_enabled: values.sign_in_enabled,
                jit_provisioning: values.jit_provisioning,
                updated_by: &actor,
            },
        )
        .await?;
        audit::record(
            &tx,
            &AuditEvent {
                team_id: Some(admin.team_id),
                actor: &actor,
                action: if saved.is_some() {
                    "okta.settings.updated"
                } else {
                    "okta.settings.created"
                },
                target: Some(&admin.team_id.to_string()),
                detail: json!({
                    "okta_domain": domain.as_str(),
                    "issuer": issuer,
                    "client_id": values.client_id,
                    "client_secret_changed": !keep_secret,
                    "sign_in_enabled": values.sign_in_enabled,
                    "jit_provisioning": values.jit_provisioning,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<bool, StoreError>(written)
    };
    // The form again, with one field's error.
    let refused = |errors: FieldErrors, status| {
        render(
            &state,
            &headers,
            &admin,
            saved.as_ref(),
            &grants,
            &values,
            &errors,
            "",
            status,
        )
    };
    match stored.await {
        Ok(true) => {
            tracing::info!(team_id = %admin.team_id, %issuer, "Okta setup saved");
            Redirect::to(&format!("{PATH}?saved=1")).into_response()
        }
        Ok(false) => refused(
            FieldErrors {
                client_secret: Some(
                    "Paste the Client secret of the ClosedLoop AI app in Okta.".into(),
                ),
                ..FieldErrors::default()
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // The unique index on (issuer, client_id): another workspace has this app.
        Err(e) if e.is_unique_violation() => refused(
            FieldErrors {
                client_id: Some(
                    "This Okta app is already connected to another ClosedLoop workspace. \
                     Each workspace needs its own ClosedLoop AI app in Okta: add the app \
                     again from the Okta Integration Network and use its Client ID."
                        .into(),
                ),
                ..FieldErrors::default()
            },
            StatusCode::CONFLICT,
        ),
        Err(e) => unavailable(e),
    }
}

/// A client id or secret: printable ASCII without spaces, of a sane length.
fn valid_credential(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_CREDENTIAL_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

fn region_label(state: &AppState) -> String {
    state.config.region_id().as_str().to_ascii_uppercase()
}

/// One copyable value: the text stays selectable; the button appears with JavaScript.
fn copyable(id: &str, label: &str, value: &str) -> String {
    format!(
        "<dt>{label}</dt><dd><code id=\"{id}\">{value}</code> \
         <button type=\"button\" class=\"copy\" data-copy=\"{id}\" hidden \
         aria-label=\"Copy {label}\">Copy</button></dd>",
        label = escape(label),
        value = escape(value),
    )
}

/// A value shown as is (settings that are choices, not text to paste).
fn plain(label: &str, value: &str) -> String {
    format!("<dt>{}</dt><dd>{}</dd>", escape(label), escape(value))
}

/// A text field with its label, hint and error.
fn field(
    id: &str,
    label: &str,
    kind: &str,
    value: &str,
    hint: &str,
    error: Option<&str>,
    extra: &str,
) -> String {
    let mut described = format!("{id}-hint");
    let error_html = match error {
        Some(e) => {
            described.push_str(&format!(" {id}-error"));
            format!(
                "<br><span class=\"error\" id=\"{id}-error\">{}</span>",
                escape(e)
            )
        }
        None => String::new(),
    };
    format!(
        "<p><label for=\"{id}\">{label}</label><br>\
         <input id=\"{id}\" name=\"{id}\" type=\"{kind}\" size=\"44\" value=\"{value}\" \
         aria-describedby=\"{described}\"{invalid}{extra}>\
         <br><small id=\"{id}-hint\">{hint}</small>{error_html}</p>",
        label = escape(label),
        value = escape(value),
        invalid = if error.is_some() {
            " aria-invalid=\"true\""
        } else {
            ""
        },
    )
}

fn checkbox(id: &str, label: &str, checked: bool, hint: &str) -> String {
    format!(
        "<p><input id=\"{id}\" name=\"{id}\" type=\"checkbox\" value=\"on\"{} \
         aria-describedby=\"{id}-hint\"> <label for=\"{id}\">{label}</label><br>\
         <small id=\"{id}-hint\">{hint}</small></p>",
        if checked { " checked" } else { "" },
    )
}

/// Styles of this page only (the shared layout is narrow and has no tables); allowed by
/// its hash in the pages' CSP (`html.rs`).
pub(crate) const PAGE_STYLE: &str = "main{max-width:52rem}dt{font-weight:600;margin-top:.8rem}\
dd{margin:.2rem 0 0 0}code{word-break:break-all}.ok{color:#0a6b2d}small{color:#4a4f57}\
input[type=text],input[type=password]{font-size:1rem;padding:.4rem}\
section{border-top:1px solid #dde1e6;margin-top:1.5rem}form.inline{display:inline}\
button.copy{background:#eef0f3;color:#1c1e21;padding:.15rem .6rem;font-size:.85rem}\
table{border-collapse:collapse}th,td{text-align:left;padding:.3rem .5rem;vertical-align:top}\
input[type=checkbox]:focus{outline:3px solid #f5a623;outline-offset:2px}";

/// Progressive enhancement: copy buttons, shown only when the clipboard works; allowed
/// by its hash in the pages' CSP (`html.rs`).
pub(crate) const COPY_SCRIPT_BODY: &str = "if(navigator.clipboard){for(const b of document.querySelectorAll('button.copy')){b.hidden=false;b.addEventListener('click',()=>{navigator.clipboard.writeText(document.getElementById(b.dataset.copy).textContent).then(()=>{b.textContent='Copied';setTimeout(()=>{b.textContent='Copy'},1500)})})}}";
#[allow(clippy::too_many_arguments)]
fn render(
    state: &AppState,
    headers: &HeaderMap,
    admin: &Admin,
    saved: Option<&OktaSettings>,
    grants: &[GrantSummary],
    values: &FormValues,
    errors: &FieldErrors,
    status_html: &str,
    status: StatusCode,
) -> Response {
    let (Some(csrf_token), Some(grants_csrf)) = (
        csrf::for_request(state, headers, &csrf_purpose(admin.team_id)),
        csrf::for_request(state, headers, &grants_page::csrf_purpose(admin.team_id)),
    ) else {
        return sign_in_redirect(PATH);
    };
    let region = region_label(state);
    let api = state.config.region.api_base();
    let app = state.config.region.app_base();
    let team = admin.team_id.to_string();
    let secret_hint = if saved.is_some() {
        "Saved. It is never shown again; leave this empty to keep it, or paste a new one."
    } else {
        "Copy it from the ClosedLoop AI app in Okta. It is stored encrypted and never shown again."
    };
    let issuer = match saved {
        Some(s) => format!(
            "<p>Issuer (generated from the domain): <code id=\"issuer\">{}</code></p>",
            escape(&s.issuer)
        ),
        None => "<p>The issuer is generated from the domain when you save.</p>".to_owned(),
    };
    let form = format!(
        "<section aria-labelledby=\"sign-in\"><h2 id=\"sign-in\">Okta sign-in</h2>\
         <form method=\"post\" action=\"{PATH}\" novalidate>\
         <input type=\"hidden\" name=\"{csrf_field}\" value=\"{csrf}\">\
         {domain}{issuer}{client_id}{secret}{enabled}{jit}\
         <button type=\"submit\">Save Okta setup</button></form></section>",
        csrf_field = csrf::FIELD,
        csrf = escape(&csrf_token),
        domain = field(
            "okta_domain",
            "Okta domain",
            "text",
            &values.okta_domain,
            "Your Okta org's domain, for example acme.okta.com (also Okta preview, Okta EMEA \
             or Okta for Government). A custom domain (login.acme.com) works once ClosedLoop \
             AI support allowed it for this workspace.",
            errors.okta_domain.as_deref(),
            " autocomplete=\"off\" spellcheck=\"false\" required",
        ),
        client_id = field(
            "client_id",
            "Client ID",
            "text",
            &values.client_id,
            "From the ClosedLoop AI app in Okta (General tab).",
            errors.client_id.as_deref(),
            " autocomplete=\"off\" spellcheck=\"false\" required",
        ),
        secret = field(
            "client_secret",
            "Client secret",
            "password",
            "",
            secret_hint,
            errors.client_secret.as_deref(),
            &format!(
                " autocomplete=\"new-password\"{}",
                if saved.is_some() {
                    " placeholder=\"Saved\""
                } else {
                    " required"
                }
            ),
        ),
        enabled = checkbox(
            "sign_in_enabled",
            "Enable Okta sign-in",
            values.sign_in_enabled,
            "Members sign in to this workspace through Okta.",
        ),
        jit = checkbox(
            "jit_provisioning",
            "Just-in-time provisioning",
            values.jit_provisioning,
            "Create a user (as Member) the first time someone assigned in Okta signs in. Leave \
             off when Okta provisions users with SCIM.",
        ),
    );
    let setup = format!(
        "<section aria-labelledby=\"setup\"><h2 id=\"setup\">Values for Okta (region {region})</h2>\
         <p>Enter these in the ClosedLoop AI app in Okta. They are for this workspace's region \
         only: do not mix regions in one Okta app.</p>\
         <h3>Sign-in (OIDC)</h3><dl>{}{}{}{}</dl>\
         <h3>Universal Logout</h3><dl>{}{}{}{}</dl>\
         <h3>Provisioning (SCIM)</h3><dl>{}{}{}{}</dl>\
         <h3>Entitlements</h3><dl>{}{}{}{}</dl>\
         <p><small>Entitlements schema mapping: <code>id</code> → <code>id</code>, \
         <code>displayName</code> → <code>displayName</code>, <code>description</code> → \
         <code>description</code>.</small></p></section>",
        copyable(
            "redirect-uri",
            "Redirect URI",
            &format!("{api}{CALLBACK_PATH}")
        ),
        copyable(
            "initiate-login-uri",
            "Initiate login URI",
            &format!("{api}{LOGIN_PATH}?team_id={{app.team_id}}")
        ),
        copyable(
            "post-logout-uri",
            "Post-logout URI",
            &format!("{app}{POST_LOGOUT_PATH}")
        ),
        copyable(
            "guide-url",
            "Configuration guide URL",
            "https://closedloop.sh/docs/integrations/okta"
        ),
        copyable(
            "gtr-endpoint",
            "Global token revocation endpoint",
            &format!("{api}/api/okta/universal-logout")
        ),
        plain("Authentication method", "SIGNED_JWT"),
        plain("Subject format", "Email"),
        plain("Partial support", "Off"),
        copyable(
            "scim-base-url",
            "Base URL",
            &format!("'{api}/api/scim/v2/' + app.team_id")
        ),
        copyable(
            "scim-authorize",
            "Authorize endpoint",
            &format!("{api}/api/okta/scim/oauth/authorize")
        ),
        copyable(
            "scim-token",
            "Token endpoint",
            &format!("{api}/api/okta/scim/oauth/token")
        ),
        copyable(
            "scim-scopes",
            "Scopes",
            "scim.read, scim.write, entitlements.read"
        ),
        copyable("ent-resource-type", "Resource Type", "Role"),
        copyable("ent-endpoint", "Endpoint", "/Roles"),
        copyable(
            "ent-properties",
            "Properties",
            "id, displayName, description"
        ),
        copyable(
            "ent-description",
            "Description",
            "ClosedLoop AI workspace roles"
        ),
    );
    let body = format!(
        "<style>{PAGE_STYLE}</style><nav aria-label=\"Breadcrumb\"><a href=\"/\">Home</a> › Integrations › Okta</nav>\
         <h1>Okta</h1>{status_html}\
         <p>Connect the workspace <strong>{workspace}</strong> (region {region}) to Okta.</p>\
         <dl>{team_id}</dl>\
         <p><small>In Okta, enter it as the tenant setting <code>team_id</code> (label \
         ClosedLoop AI workspace ID).</small></p>\
         {form}{setup}{grants}\
         <p>{sign_out}</p><script>{COPY_SCRIPT_BODY}</script>",
        workspace = escape(&admin.workspace),
        team_id = copyable("team-id", "Workspace ID (team_id)", &team),
        grants = grants_section(grants, &grants_csrf, PATH),
        sign_out = sign_out::button(state, headers),
    );
    page(status, "Integrations > Okta", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_printable_and_bounded() {
        assert!(valid_credential("0oa1b2c3d4e5f6g7h8i9"));
        assert!(valid_credential("aB3-_~.secret"));
        assert!(!valid_credential(""));
        assert!(!valid_credential("has space"));
        assert!(!valid_credential(&"a".repeat(513)));
        assert!(!valid_credential("tab\tinside"));
    }

    #[test]
    fn fields_carry_labels_hints_and_errors() {
        let html = field(
            "okta_domain",
            "Okta domain",
            "text",
            "a\"b",
            "hint",
            Some("bad <x>"),
            "",
        );
        assert!(html.contains("<label for=\"okta_domain\">Okta domain</label>"));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(html.contains("aria-describedby=\"okta_domain-hint okta_domain-error\""));
        assert!(html.contains("value=\"a&quot;b\""));
        assert!(html.contains("bad &lt;x&gt;"));
        let row = copyable("x", "Redirect URI", "https://a/b?c=1&d=2");
        assert!(row.contains("<code id=\"x\">https://a/b?c=1&amp;d=2</code>"));
        assert!(
            row.contains("hidden"),
            "the copy button needs JavaScript to appear"
        );
    }
}
