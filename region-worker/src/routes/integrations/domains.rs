//! Integrations > Okta, "Sign-in by email domain" (issue 16, home realm discovery): the
//! workspace's claimed email domains, the DNS TXT record that proves each one, and the
//! forms that claim, verify and remove them ([`app::OKTA_DOMAINS`] and its two
//! siblings), each CSRF-bound to the admin's session like the settings form.
//!
//! Verify looks the record up in DNS ([`crate::dns`]) before anything else is said
//! about the domain: only a workspace that proved it owns the domain learns that
//! another workspace holds its verified claim. Every answer is POST → redirect → GET;
//! a refusal shows the whole page again with the reason in this section.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use shared::ids::TeamId;
use time::OffsetDateTime;
use time::macros::format_description;

use super::{Field, render_with_domains};
use crate::dns;
use crate::paths::app;
use crate::state::AppState;
use crate::store::domains::{self, Claimed, DomainClaim, EmailDomain, Verified};
use crate::web::{PageError, Text, WorkspaceAdmin, csrf};

/// The CSRF purpose of the email-domain forms of a workspace.
pub(super) fn csrf_purpose(team_id: TeamId) -> String {
    format!("email-domains:{team_id}")
}

/// What the section says above its list.
#[derive(Debug, Default)]
pub(super) enum Notice {
    #[default]
    None,
    /// After a claim (POST → redirect → GET).
    Claimed(EmailDomain),
    /// After a verification.
    Verified(EmailDomain),
    /// After a removal.
    Removed(EmailDomain),
    /// The claim form came back: what was entered, and why it was not claimed.
    ClaimRefused {
        /// The text as entered.
        entered: String,
        /// What to do.
        reason: String,
    },
    /// A verification did not succeed.
    VerifyRefused(String),
}

impl Notice {
    /// The notice of a redirect's query (`?domain_claimed=acme.com`); a value that is
    /// no domain says nothing.
    pub(super) fn of_query(
        claimed: Option<&str>,
        verified: Option<&str>,
        removed: Option<&str>,
    ) -> Self {
        let domain = |s: Option<&str>| s.and_then(|s| EmailDomain::parse(s).ok());
        if let Some(d) = domain(claimed) {
            Notice::Claimed(d)
        } else if let Some(d) = domain(verified) {
            Notice::Verified(d)
        } else if let Some(d) = domain(removed) {
            Notice::Removed(d)
        } else {
            Notice::None
        }
    }

    /// The notice only when the claims bear it out: a crafted link
    /// (`?domain_verified=evil.com`) must not make the page say what did not happen.
    pub(super) fn confirmed_by(self, claims: &[DomainClaim]) -> Self {
        let held = |d: &EmailDomain| claims.iter().find(|c| &c.domain == d);
        let true_now = match &self {
            Notice::Claimed(d) => held(d).is_some(),
            Notice::Verified(d) => held(d).is_some_and(|c| c.verified_at.is_some()),
            Notice::Removed(d) => held(d).is_none(),
            _ => true,
        };
        if true_now { self } else { Notice::None }
    }
}

fn when(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// One value of a DNS record, selectable, with a copy button for JavaScript to show.
fn record_value(id: &str, label: &str, copy_label: &str, value: &str) -> Markup {
    html! {
        dt { (Text(label)) }
        dd {
            code id=(id) { (Text(value)) }
            " "
            button type="button" class="copy" data-copy=(id) hidden aria-label=(Text(copy_label)) {
                "Copy"
            }
        }
    }
}

/// The section: what sign-in by domain does, the claims with their records and
/// buttons, and the claim form.
pub(super) fn section(claims: &[DomainClaim], notice: &Notice, csrf_token: &str) -> Markup {
    let (entered, claim_error) = match notice {
        Notice::ClaimRefused { entered, reason } => (entered.as_str(), Some(reason.as_str())),
        _ => ("", None),
    };
    html! {
        section aria-labelledby="email-domains" {
            h2 id="email-domains" { "Sign-in by email domain" }
            p {
                "Someone who enters an email address of a verified domain on the sign-in page \
                 goes to this workspace's Okta, even before they have an account here; with \
                 Just-in-time provisioning on, their account is created at their first \
                 sign-in. People who already belong to a workspace keep signing in there. \
                 A domain is verified once its DNS publishes the TXT record shown for it, \
                 which only your company can do; until then it changes nothing."
            }
            @match notice {
                Notice::None => {},
                Notice::Claimed(d) => p role="status" class="ok" {
                    "Claimed " (d.as_str()) ". Publish its TXT record at your DNS provider, then \
                     press Verify."
                },
                Notice::Verified(d) => p role="status" class="ok" {
                    (d.as_str()) " is verified: new people with an email address at "
                    (d.as_str())
                    " now sign in through this workspace's Okta."
                },
                Notice::Removed(d) => p role="status" class="ok" {
                    "Removed " (d.as_str()) ". Its sign-ins no longer come to this workspace."
                },
                Notice::ClaimRefused { .. } => p role="alert" class="error" {
                    "The domain was not claimed. Correct the field below."
                },
                Notice::VerifyRefused(reason) => p role="alert" class="error" { (Text(reason)) },
            }
            @if claims.is_empty() {
                p { "No email domain is claimed." }
            } @else {
                table {
                    caption { "Claimed email domains" }
                    thead { tr {
                        th scope="col" { "Domain" }
                        th scope="col" { "Status" }
                        th scope="col" { "DNS record (TXT)" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for c in claims {
                            (claim_row(c, csrf_token))
                        }
                    }
                }
            }
            form method="post" action=(app::OKTA_DOMAINS) novalidate {
                input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
                (Field {
                    id: "email_domain",
                    label: "Email domain",
                    kind: "text",
                    value: entered,
                    hint: "The part after @ of your company's email addresses, for example \
                           acme.com. Claim each domain on its own. Free email providers \
                           (gmail.com, outlook.com…) cannot be claimed.",
                    error: claim_error,
                    autocomplete: "off",
                    spellcheck_off: true,
                    placeholder: None,
                    required: true,
                }.render())
                button type="submit" { "Claim domain" }
            }
        }
    }
}

/// One claim: its status, its record, Verify (while pending) and Remove.
fn claim_row(c: &DomainClaim, csrf_token: &str) -> Markup {
    let d = c.domain.as_str();
    html! {
        tr {
            th scope="row" { code { (d) } }
            td {
                @match c.verified_at {
                    Some(at) => { strong.ok { "Verified" } br; small { "since " (when(at)) } },
                    None => { "Pending" br; small { "Publish the record, then verify." } },
                }
            }
            td { dl {
                (record_value(
                    &format!("dns-name-{d}"),
                    "Name",
                    &format!("Copy the record name for {d}"),
                    &c.record_name(),
                ))
                (record_value(
                    &format!("dns-value-{d}"),
                    "Value",
                    &format!("Copy the record value for {d}"),
                    &c.record_value(),
                ))
            } }
            td {
                @if c.verified_at.is_none() {
                    form.inline method="post" action=(app::OKTA_DOMAINS_VERIFY) {
                        input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
                        input type="hidden" name="domain" value=(d);
                        button type="submit" aria-label=(format!("Verify {d}")) { "Verify" }
                    }
                    " "
                }
                form.inline method="post" action=(app::OKTA_DOMAINS_REMOVE) {
                    input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
                    input type="hidden" name="domain" value=(d);
                    button type="submit" aria-label=(format!("Remove {d}")) { "Remove" }
                }
            }
        }
    }
}

/// The claim form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct ClaimForm {
    #[serde(default)]
    email_domain: String,
    #[serde(default)]
    csrf: String,
}

/// The Verify and Remove forms' fields.
#[derive(Debug, Deserialize)]
pub(crate) struct DomainForm {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    csrf: String,
}

/// Back to the page, at this section, saying what happened.
fn back(what: &str, domain: &EmailDomain) -> Response {
    Redirect::to(&format!(
        "{}?{what}={domain}#email-domains",
        app::OKTA_INTEGRATION
    ))
    .into_response()
}

fn not_claimed() -> PageError {
    PageError::NotFound {
        title: "No such email domain",
        explanation: "Your workspace does not claim this email domain. Claim it under \
                      Integrations > Okta first.",
    }
}

/// The admin of a form post, checked against the section's CSRF purpose.
fn checked(
    admin: Result<WorkspaceAdmin, PageError>,
    presented: &str,
) -> Result<WorkspaceAdmin, PageError> {
    let admin = admin.map_err(|e| e.returning_to(app::OKTA_INTEGRATION))?;
    admin
        .signed_in
        .check_form(&csrf_purpose(admin.team_id()), presented)?;
    Ok(admin)
}

/// `POST /integrations/okta/domains`: claims a domain (pending).
pub(crate) async fn claim(
    admin: Result<WorkspaceAdmin, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<ClaimForm>,
) -> Result<Response, PageError> {
    let admin = checked(admin, &form.csrf)?;
    let team_id = admin.team_id();
    let refused = |reason: String| Notice::ClaimRefused {
        entered: form.email_domain.trim().chars().take(300).collect(),
        reason,
    };
    let domain = match EmailDomain::parse(&form.email_domain) {
        Ok(d) => d,
        Err(e) => {
            let notice = refused(e.to_string());
            return render_with_domains(&state, &admin, &notice, StatusCode::UNPROCESSABLE_ENTITY)
                .await;
        }
    };
    let actor = format!("user:{}", admin.user_id());
    let now = state.config.clock.now();
    match domains::claim(&state.pg, team_id, &domain, &actor, now).await? {
        Claimed::New(_) => {
            tracing::info!(%team_id, %domain, "email domain claimed");
            Ok(back("domain_claimed", &domain))
        }
        Claimed::Already(c) if c.verified_at.is_some() => Ok(back("domain_verified", &domain)),
        Claimed::Already(_) => Ok(back("domain_claimed", &domain)),
        Claimed::TooMany => {
            let notice = refused(format!(
                "A workspace can claim at most {} email domains. Remove one you no longer \
                 use first.",
                domains::MAX_CLAIMS_PER_WORKSPACE
            ));
            render_with_domains(&state, &admin, &notice, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// `POST /integrations/okta/domains/verify`: looks the claim's TXT record up, and
/// marks the claim verified when it carries the claim's value.
pub(crate) async fn verify(
    admin: Result<WorkspaceAdmin, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<DomainForm>,
) -> Result<Response, PageError> {
    let admin = checked(admin, &form.csrf)?;
    let team_id = admin.team_id();
    let domain = EmailDomain::parse(&form.domain).map_err(|_| not_claimed())?;
    let claim = {
        let client = state
            .pg
            .get()
            .await
            .map_err(crate::store::StoreError::from)?;
        domains::get(&client, team_id, &domain).await?
    }
    .ok_or_else(not_claimed)?;
    if claim.verified_at.is_some() {
        return Ok(back("domain_verified", &domain));
    }
    let refused = |status: StatusCode, reason: String| {
        let state = state.clone();
        let admin = &admin;
        async move { render_with_domains(&state, admin, &Notice::VerifyRefused(reason), status).await }
    };
    let name = claim.record_name();
    let expected = claim.record_value();
    let found = match dns::txt_records(state.config.dns_server, &name).await {
        Ok(values) => values,
        Err(e) => {
            tracing::warn!(%team_id, %domain, error = %e, "email domain lookup failed");
            return refused(
                StatusCode::BAD_GATEWAY,
                format!(
                    "ClosedLoop AI could not look up the DNS records of {domain} just now. \
                     Try again in a few minutes."
                ),
            )
            .await;
        }
    };
    if !found.iter().any(|v| v.trim() == expected) {
        tracing::info!(%team_id, %domain, records = found.len(), "email domain record not found");
        let seen = if found.is_empty() {
            format!("{name} has no TXT record yet.")
        } else {
            format!("{name} has TXT records, but none with this value.")
        };
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{domain} is not verified: {seen} Publish a TXT record named {name} with the \
                 value {expected} at your DNS provider, wait until it is visible (usually a \
                 few minutes, at most your DNS's TTL), then press Verify again."
            ),
        )
        .await;
    }
    let actor = format!("user:{}", admin.user_id());
    let now = state.config.clock.now();
    match domains::mark_verified(&state.pg, team_id, &domain, &actor, now).await? {
        Verified::Now => {
            tracing::info!(%team_id, %domain, "email domain verified");
            Ok(back("domain_verified", &domain))
        }
        Verified::Already => Ok(back("domain_verified", &domain)),
        Verified::NotClaimed => Err(not_claimed()),
        Verified::HeldElsewhere => {
            tracing::info!(%team_id, %domain, "email domain verified by another workspace");
            refused(
                StatusCode::CONFLICT,
                format!(
                    "{domain} is already verified by another ClosedLoop AI workspace in this \
                     region, and its sign-ins go there. A domain belongs to one workspace \
                     per region. If your company owns {domain}, ask ClosedLoop AI support: \
                     an operator can release the domain, after which you can verify it here."
                ),
            )
            .await
        }
    }
}

/// `POST /integrations/okta/domains/remove`: removes the workspace's own claim.
pub(crate) async fn remove(
    admin: Result<WorkspaceAdmin, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<DomainForm>,
) -> Result<Response, PageError> {
    let admin = checked(admin, &form.csrf)?;
    let team_id = admin.team_id();
    let domain = EmailDomain::parse(&form.domain).map_err(|_| not_claimed())?;
    let actor = format!("user:{}", admin.user_id());
    if !domains::remove(&state.pg, team_id, &domain, &actor).await? {
        return Err(not_claimed());
    }
    tracing::info!(%team_id, %domain, "email domain removed");
    Ok(back("domain_removed", &domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(domain: &str, verified: bool) -> DomainClaim {
        DomainClaim {
            domain: EmailDomain::parse(domain).unwrap(),
            token: "0123456789abcdef0123456789abcdef".into(),
            claimed_at: OffsetDateTime::UNIX_EPOCH,
            claimed_by: "user:x".into(),
            verified_at: verified.then_some(OffsetDateTime::UNIX_EPOCH),
        }
    }

    #[test]
    fn the_section_shows_each_record_and_only_pending_claims_get_verify() {
        let html = section(
            &[claim("acme.com", false), claim("acme.org", true)],
            &Notice::None,
            "tok",
        )
        .into_string();
        assert!(
            html.contains("<code id=\"dns-name-acme.com\">_closedloop-challenge.acme.com</code>")
        );
        assert!(html.contains(
            "<code id=\"dns-value-acme.com\">closedloop-domain-verification=0123456789abcdef0123456789abcdef</code>"
        ));
        assert!(html.contains("aria-label=\"Verify acme.com\""));
        assert!(!html.contains("aria-label=\"Verify acme.org\""));
        assert!(html.contains("aria-label=\"Remove acme.org\""));
        assert!(html.contains("<caption>Claimed email domains</caption>"));
        assert!(html.contains("<th scope=\"row\"><code>acme.com</code></th>"));
    }

    #[test]
    fn a_refused_claim_keeps_what_was_entered_escaped() {
        let html = section(
            &[],
            &Notice::ClaimRefused {
                entered: "gmail.com\"><x>".into(),
                reason: "free <mail>".into(),
            },
            "tok",
        )
        .into_string();
        assert!(html.contains("value=\"gmail.com&quot;&gt;&lt;x&gt;\""));
        assert!(html.contains("free &lt;mail&gt;"));
        assert!(html.contains("aria-invalid=\"true\""));
    }

    #[test]
    fn a_query_notice_shows_only_what_the_claims_bear_out() {
        let claims = [claim("acme.com", false)];
        let notice = |c, v, r| Notice::of_query(c, v, r).confirmed_by(&claims);
        assert!(matches!(
            notice(Some("acme.com"), None, None),
            Notice::Claimed(_)
        ));
        assert!(matches!(notice(None, Some("acme.com"), None), Notice::None));
        assert!(matches!(notice(None, Some("evil.com"), None), Notice::None));
        assert!(matches!(notice(None, None, Some("acme.com")), Notice::None));
        assert!(matches!(
            notice(None, None, Some("old.com")),
            Notice::Removed(_)
        ));
    }

    #[test]
    fn a_query_notice_names_only_a_domain() {
        assert!(matches!(
            Notice::of_query(Some("ACME.com"), None, None),
            Notice::Claimed(d) if d.as_str() == "acme.com"
        ));
        assert!(matches!(
            Notice::of_query(None, Some("<script>"), None),
            Notice::None
        ));
        assert!(matches!(
            Notice::of_query(None, None, Some("acme.com")),
            Notice::Removed(_)
        ));
    }
}
