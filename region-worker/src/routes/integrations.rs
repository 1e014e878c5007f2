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
//!
//! The page also holds the workspace's email domains for sign-in by email domain
//! ([`domains`]: claim, prove by DNS, remove).

pub(crate) mod domains;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use shared::ids::TeamId;

use super::oauth::grants_page::{self, grants_section};
use super::oidc::sign_out;
use crate::okta::domain::OktaDomain;
use crate::okta::http::HttpError;
use crate::okta::settings::{self, NewSettings, OktaSettings};
use crate::paths::{self, app};
use crate::state::AppState;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::domains::DomainClaim;
use crate::store::grants::GrantSummary;
use crate::store::{StoreError, grants, workspaces};
use crate::web::assets::{copy_script, integrations_style};
use crate::web::{PageError, Text, WorkspaceAdmin, csrf, page};

/// The longest client id or secret accepted (Okta's are 20 and 40 to 64 characters).
const MAX_CREDENTIAL_LEN: usize = 512;

/// The CSRF purpose of the settings form of a workspace.
fn csrf_purpose(team_id: TeamId) -> String {
    format!("okta-settings:{team_id}")
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
pub(crate) struct ShowQuery {
    saved: Option<String>,
    disconnected: Option<String>,
    domain_claimed: Option<String>,
    domain_verified: Option<String>,
    domain_removed: Option<String>,
}

/// `GET /integrations/okta`.
pub(crate) async fn show(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    Query(q): Query<ShowQuery>,
) -> Result<Markup, PageError> {
    let Loaded {
        saved,
        grants,
        domains,
    } = load(&state, admin.team_id()).await?;
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
    let banner = if q.saved.is_some() {
        Banner::Saved
    } else if q.disconnected.is_some() {
        Banner::Disconnected
    } else {
        Banner::None
    };
    let notice = domains::Notice::of_query(
        q.domain_claimed.as_deref(),
        q.domain_verified.as_deref(),
        q.domain_removed.as_deref(),
    )
    .confirmed_by(&domains);
    Ok(OktaPage {
        state: &state,
        admin: &admin,
        saved: saved.as_ref(),
        grants: &grants,
        domains: &domains,
        domain_notice: &notice,
        values: &values,
        errors: &FieldErrors::default(),
        banner,
    }
    .render())
}

/// What the page shows besides the form's values.
struct Loaded {
    saved: Option<OktaSettings>,
    grants: Vec<GrantSummary>,
    domains: Vec<DomainClaim>,
}

async fn load(state: &AppState, team_id: TeamId) -> Result<Loaded, StoreError> {
    let client = state.pg.get().await?;
    Ok(Loaded {
        saved: settings::get(&client, team_id).await?,
        grants: grants::list_connected(&client, team_id).await?,
        domains: crate::store::domains::list(&client, team_id).await?,
    })
}

/// The page as saved, with `notice` in its email-domain section, answered with
/// `status`: how the domain forms answer a refusal.
async fn render_with_domains(
    state: &AppState,
    admin: &WorkspaceAdmin,
    notice: &domains::Notice,
    status: StatusCode,
) -> Result<Response, PageError> {
    let Loaded {
        saved,
        grants,
        domains,
    } = load(state, admin.team_id()).await?;
    let values = saved
        .as_ref()
        .map(|s| FormValues {
            okta_domain: s.okta_domain.clone(),
            client_id: s.client_id.clone(),
            sign_in_enabled: s.sign_in_enabled,
            jit_provisioning: s.jit_provisioning,
        })
        .unwrap_or(FormValues {
            sign_in_enabled: true,
            ..FormValues::default()
        });
    let page = OktaPage {
        state,
        admin,
        saved: saved.as_ref(),
        grants: &grants,
        domains: &domains,
        domain_notice: notice,
        values: &values,
        errors: &FieldErrors::default(),
        banner: Banner::None,
    };
    Ok((status, page.render()).into_response())
}

/// The form's fields; checkboxes are absent when unchecked.
#[derive(Debug, Deserialize)]
pub(crate) struct SaveForm {
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
pub(crate) async fn save(
    admin: WorkspaceAdmin,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<SaveForm>,
) -> Result<Response, PageError> {
    let team_id = admin.team_id();
    admin
        .signed_in
        .check_form(&csrf_purpose(team_id), &form.csrf)?;
    let Loaded {
        saved,
        grants,
        domains,
    } = load(&state, team_id).await?;
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
        let client = state.pg.get().await.map_err(StoreError::from)?;
        let allowed = workspaces::allowed_okta_domains(&client, team_id).await?;
        if let Err(e) = d.permitted(&allowed) {
            errors.okta_domain = Some(e.to_string());
        }
    }
    // The domain must lead to the public internet (the HTTP client refuses anything
    // else at connect time too; this says why, in words).
    if let Some(d) = &domain
        && errors.okta_domain.is_none()
        && let Err(e) = state.okta.http.check_host(d.host()).await
    {
        tracing::info!(%team_id, error = %e, "Okta domain refused");
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
        tracing::info!(%team_id, error = %e, "Okta discovery check failed");
        errors.okta_domain = Some(format!(
            "ClosedLoop AI could not confirm the issuer {}: {}. Check the domain.",
            d.issuer(),
            e.admin_reason()
        ));
    }
    // The form again, with its errors.
    let refused = |errors: FieldErrors, banner, status: StatusCode| {
        let page = OktaPage {
            state: &state,
            admin: &admin,
            saved: saved.as_ref(),
            grants: &grants,
            domains: &domains,
            domain_notice: &domains::Notice::None,
            values: &values,
            errors: &errors,
            banner,
        };
        (status, page.render()).into_response()
    };
    let Some(domain) = domain.filter(|_| !errors.any()) else {
        return Ok(refused(
            errors,
            Banner::NotSaved,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    let actor = format!("user:{}", admin.user_id());
    let issuer = domain.issuer();
    let stored = async {
        let mut client = state.pg.get().await?;
        let tx = client.transaction().await?;
        let written = settings::save(
            &tx,
            &state.config.encryption_key,
            &NewSettings {
                team_id,
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
                team_id: Some(team_id),
                actor: &actor,
                action: if saved.is_some() {
                    AuditAction::OktaSettingsUpdated
                } else {
                    AuditAction::OktaSettingsCreated
                },
                target: Some(&team_id.to_string()),
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
    Ok(match stored.await {
        Ok(true) => {
            tracing::info!(%team_id, %issuer, "Okta setup saved");
            Redirect::to(&format!("{}?saved=1", app::OKTA_INTEGRATION)).into_response()
        }
        Ok(false) => refused(
            FieldErrors {
                client_secret: Some(
                    "Paste the Client secret of the ClosedLoop AI app in Okta.".into(),
                ),
                ..FieldErrors::default()
            },
            Banner::None,
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
            Banner::None,
            StatusCode::CONFLICT,
        ),
        Err(e) => return Err(e.into()),
    })
}

/// A client id or secret: printable ASCII without spaces, of a sane length.
fn valid_credential(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_CREDENTIAL_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

fn region_label(state: &AppState) -> String {
    state.config.region_id().as_str().to_ascii_uppercase()
}

/// What the page says above the form.
#[derive(Debug, Clone, Copy)]
enum Banner {
    None,
    /// After POST → redirect → GET.
    Saved,
    /// After a provisioning connection was disconnected from this page.
    Disconnected,
    /// The form came back with errors.
    NotSaved,
}

/// One copyable value: the text stays selectable; the button appears with JavaScript.
fn copyable(id: &str, label: &str, value: &str) -> Markup {
    let copy_label = format!("Copy {label}");
    html! {
        dt { (Text(label)) }
        dd {
            code id=(id) { (Text(value)) }
            " "
            button type="button" class="copy" data-copy=(id) hidden aria-label=(Text(&copy_label)) {
                "Copy"
            }
        }
    }
}

/// A value shown as is (settings that are choices, not text to paste).
fn plain(label: &str, value: &str) -> Markup {
    html! { dt { (Text(label)) } dd { (Text(value)) } }
}

/// A text field with its label, hint and error.
struct Field<'a> {
    /// The input's id and name.
    id: &'a str,
    label: &'a str,
    /// `text` or `password`.
    kind: &'a str,
    value: &'a str,
    hint: &'a str,
    error: Option<&'a str>,
    autocomplete: &'a str,
    /// `spellcheck="false"`: the value is no words (domains, ids).
    spellcheck_off: bool,
    placeholder: Option<&'a str>,
    required: bool,
}

impl Field<'_> {
    fn render(&self) -> Markup {
        let id = self.id;
        let hint_id = format!("{id}-hint");
        let error_id = format!("{id}-error");
        let described = match self.error {
            Some(_) => format!("{hint_id} {error_id}"),
            None => hint_id.clone(),
        };
        html! {
            p {
                label for=(id) { (Text(self.label)) }
                br;
                input id=(id) name=(id) type=(self.kind) size="44" value=(Text(self.value))
                    aria-describedby=(described) aria-invalid=[self.error.map(|_| "true")]
                    autocomplete=(self.autocomplete)
                    spellcheck=[self.spellcheck_off.then_some("false")]
                    placeholder=[self.placeholder] required[self.required];
                br;
                small id=(hint_id) { (Text(self.hint)) }
                @if let Some(e) = self.error {
                    br;
                    span class="error" id=(error_id) { (Text(e)) }
                }
            }
        }
    }
}

fn checkbox(id: &str, label: &str, checked: bool, hint: &str) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        p {
            input id=(id) name=(id) type="checkbox" value="on" checked[checked]
                aria-describedby=(hint_id);
            " "
            label for=(id) { (Text(label)) }
            br;
            small id=(hint_id) { (Text(hint)) }
        }
    }
}

/// Integrations > Okta as shown to `admin`.
struct OktaPage<'a> {
    state: &'a AppState,
    admin: &'a WorkspaceAdmin,
    saved: Option<&'a OktaSettings>,
    grants: &'a [GrantSummary],
    /// The workspace's claimed email domains.
    domains: &'a [DomainClaim],
    /// What the email-domain section says above its list.
    domain_notice: &'a domains::Notice,
    /// What the form shows.
    values: &'a FormValues,
    errors: &'a FieldErrors,
    banner: Banner,
}

impl OktaPage<'_> {
    fn render(&self) -> Markup {
        let admin = self.admin;
        let team_id = admin.team_id();
        let grants_csrf = admin
            .signed_in
            .csrf_token(&grants_page::csrf_purpose(team_id));
        let body = html! {
            (integrations_style())
            nav aria-label="Breadcrumb" { a href=(app::HOME) { "Home" } " › Integrations › Okta" }
            h1 { "Okta" }
            @match self.banner {
                Banner::None => {},
                Banner::Saved => p role="status" class="ok" { "Okta setup saved." },
                Banner::Disconnected => p role="status" class="ok" {
                    "Disconnected. Tokens issued from that approval no longer work."
                },
                Banner::NotSaved => div role="alert" class="error" {
                    p { "The Okta setup was not saved. Correct the fields marked below." }
                },
            }
            p {
                "Connect the workspace " strong { (Text(&admin.approver.workspace_name)) }
                " (region " (region_label(self.state)) ") to Okta."
            }
            dl { (copyable("team-id", "Workspace ID (team_id)", &team_id.to_string())) }
            p { small {
                "In Okta, enter it as the tenant setting " code { "team_id" }
                " (label ClosedLoop AI workspace ID)."
            } }
            (self.form())
            (domains::section(
                self.domains,
                self.domain_notice,
                &admin.signed_in.csrf_token(&domains::csrf_purpose(team_id)),
            ))
            (self.values_for_okta())
            (grants_section(self.grants, &grants_csrf, app::OKTA_INTEGRATION))
            p { (sign_out::button(&admin.signed_in)) }
            (copy_script())
        };
        page("Integrations > Okta", body)
    }

    /// The seed's Step 3 form.
    fn form(&self) -> Markup {
        let (values, errors) = (self.values, self.errors);
        let csrf_token = self
            .admin
            .signed_in
            .csrf_token(&csrf_purpose(self.admin.team_id()));
        let secret_hint = if self.saved.is_some() {
            "Saved. It is never shown again; leave this empty to keep it, or paste a new one."
        } else {
            "Copy it from the ClosedLoop AI app in Okta. It is stored encrypted and never shown \
             again."
        };
        html! {
            section aria-labelledby="sign-in" {
                h2 id="sign-in" { "Okta sign-in" }
                form method="post" action=(app::OKTA_INTEGRATION) novalidate {
                    input type="hidden" name=(csrf::FIELD) value=(Text(&csrf_token));
                    (Field {
                        id: "okta_domain",
                        label: "Okta domain",
                        kind: "text",
                        value: &values.okta_domain,
                        hint: "Your Okta org's domain, for example acme.okta.com (also Okta \
                               preview, Okta EMEA or Okta for Government). A custom domain \
                               (login.acme.com) works once ClosedLoop AI support allowed it for \
                               this workspace.",
                        error: errors.okta_domain.as_deref(),
                        autocomplete: "off",
                        spellcheck_off: true,
                        placeholder: None,
                        required: true,
                    }.render())
                    @match self.saved {
                        Some(s) => p {
                            "Issuer (generated from the domain): "
                            code id="issuer" { (Text(&s.issuer)) }
                        },
                        None => p { "The issuer is generated from the domain when you save." },
                    }
                    (Field {
                        id: "client_id",
                        label: "Client ID",
                        kind: "text",
                        value: &values.client_id,
                        hint: "From the ClosedLoop AI app in Okta (General tab).",
                        error: errors.client_id.as_deref(),
                        autocomplete: "off",
                        spellcheck_off: true,
                        placeholder: None,
                        required: true,
                    }.render())
                    (Field {
                        id: "client_secret",
                        label: "Client secret",
                        kind: "password",
                        value: "",
                        hint: secret_hint,
                        error: errors.client_secret.as_deref(),
                        autocomplete: "new-password",
                        spellcheck_off: false,
                        placeholder: self.saved.map(|_| "Saved"),
                        required: self.saved.is_none(),
                    }.render())
                    (checkbox(
                        "sign_in_enabled",
                        "Enable Okta sign-in",
                        values.sign_in_enabled,
                        "Members sign in to this workspace through Okta.",
                    ))
                    (checkbox(
                        "jit_provisioning",
                        "Just-in-time provisioning",
                        values.jit_provisioning,
                        "Create a user (as Member) the first time someone assigned in Okta signs \
                         in. Leave off when Okta provisions users with SCIM.",
                    ))
                    button type="submit" { "Save Okta setup" }
                }
            }
        }
    }

    /// Every region-specific value of the seed's tables, for this workspace's region.
    fn values_for_okta(&self) -> Markup {
        let region = region_label(self.state);
        let api = self.state.config.region.api_base();
        let app = self.state.config.region.app_base();
        html! {
            section aria-labelledby="setup" {
                h2 id="setup" { "Values for Okta (region " (region) ")" }
                p {
                    "Enter these in the ClosedLoop AI app in Okta. They are for this workspace's \
                     region only: do not mix regions in one Okta app."
                }
                h3 { "Sign-in (OIDC)" }
                dl {
                    (copyable("redirect-uri", "Redirect URI", &format!("{api}{}", paths::api::OKTA_OIDC_CALLBACK)))
                    (copyable(
                        "initiate-login-uri",
                        "Initiate login URI",
                        &format!("{api}{}?team_id={{app.team_id}}", paths::api::OKTA_OIDC_LOGIN),
                    ))
                    (copyable("post-logout-uri", "Post-logout URI", &format!("{app}{}", paths::app::POST_LOGOUT)))
                    (copyable(
                        "guide-url",
                        "Configuration guide URL",
                        "https://closedloop.sh/docs/integrations/okta",
                    ))
                }
                h3 { "Universal Logout" }
                dl {
                    (copyable(
                        "gtr-endpoint",
                        "Global token revocation endpoint",
                        &format!("{api}{}", paths::api::OKTA_UNIVERSAL_LOGOUT),
                    ))
                    (plain("Authentication method", "SIGNED_JWT"))
                    (plain("Subject format", "Email"))
                    (plain("Partial support", "Off"))
                }
                h3 { "Provisioning (SCIM)" }
                dl {
                    (copyable("scim-base-url", "Base URL", &format!("'{api}{}/' + app.team_id", paths::api::SCIM)))
                    (copyable(
                        "scim-authorize",
                        "Authorize endpoint",
                        &format!("{api}{}", paths::api::OKTA_SCIM_OAUTH_AUTHORIZE),
                    ))
                    (copyable("scim-token", "Token endpoint", &format!("{api}{}", paths::api::OKTA_SCIM_OAUTH_TOKEN)))
                    (copyable("scim-scopes", "Scopes", "scim.read, scim.write, entitlements.read"))
                }
                h3 { "Entitlements" }
                dl {
                    (copyable("ent-resource-type", "Resource Type", "Role"))
                    (copyable("ent-endpoint", "Endpoint", "/Roles"))
                    (copyable("ent-properties", "Properties", "id, displayName, description"))
                    (copyable("ent-description", "Description", "ClosedLoop AI workspace roles"))
                }
                p { small {
                    "Entitlements schema mapping: " code { "id" } " → " code { "id" } ", "
                    code { "displayName" } " → " code { "displayName" } ", "
                    code { "description" } " → " code { "description" } "."
                } }
            }
        }
    }
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
        let html = Field {
            id: "okta_domain",
            label: "Okta domain",
            kind: "text",
            value: "a\"b",
            hint: "hint",
            error: Some("bad <x>"),
            autocomplete: "off",
            spellcheck_off: true,
            placeholder: None,
            required: true,
        }
        .render()
        .into_string();
        assert!(html.contains("<label for=\"okta_domain\">Okta domain</label>"));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(html.contains("aria-describedby=\"okta_domain-hint okta_domain-error\""));
        assert!(html.contains("value=\"a&quot;b\""));
        assert!(html.contains("bad &lt;x&gt;"));
        assert!(html.contains(" autocomplete=\"off\" spellcheck=\"false\" required>"));
        let row = copyable("x", "Redirect URI", "https://a/b?c=1&d=2").into_string();
        assert!(row.contains("<code id=\"x\">https://a/b?c=1&amp;d=2</code>"));
        assert!(
            row.contains("hidden"),
            "the copy button needs JavaScript to appear"
        );
        let checkbox = checkbox("jit", "Just-in-time <x>", true, "hint").into_string();
        assert!(checkbox.contains("type=\"checkbox\" value=\"on\" checked"));
        assert!(
            checkbox.contains("Just-in-time &lt;x&gt;"),
            "labels are escaped too"
        );
    }
}
