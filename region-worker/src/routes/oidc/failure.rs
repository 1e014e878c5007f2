//! Why an Okta sign-in stopped, rendered in one place: a page that says what happened
//! and what the user or their admin must do (the seed's troubleshooting rows), with a
//! way back to the sign-in page, and an audit event (`oidc.sign_in.failed` with a
//! stable `reason`). The page never shows internal text; details go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{Value, json};
use shared::ids::TeamId;
use shared::jwt::JwtError;

use super::{no_store, sign_in_page};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::web::{PageError, Text, page};

/// Every way a sign-in can stop.
#[derive(Debug, thiserror::Error)]
pub enum SignInFailure {
    /// No workspace of this region has this `team_id` (or none was named).
    #[error("unknown workspace")]
    UnknownWorkspace,
    /// The workspace has not saved its Okta setup.
    #[error("Okta is not configured")]
    NotConfigured,
    /// "Enable Okta sign-in" is off.
    #[error("Okta sign-in is disabled")]
    Disabled,
    /// The `iss` of an Okta-initiated login is not the workspace's org.
    #[error("the sign-in came from another Okta org")]
    IssuerMismatch,
    /// Okta (discovery, token endpoint or keys) could not be reached.
    #[error("Okta is unreachable: {0}")]
    OktaUnreachable(String),
    /// Okta answered the authorize request with an error (`access_denied`, …).
    #[error("Okta returned {0}")]
    OktaError(String),
    /// The `state` is unknown or expired.
    #[error("unknown or expired state")]
    StateUnknown,
    /// The `state` was already used (a replayed callback).
    #[error("replayed state")]
    StateReplayed,
    /// The callback came to another browser than the one that started the sign-in.
    #[error("the browser does not match")]
    BrowserMismatch,
    /// The Okta setup changed while the user was at Okta.
    #[error("the Okta setup changed during the sign-in")]
    SettingsChanged,
    /// Okta refused the client id and secret.
    #[error("Okta refused the client credentials")]
    BadClientCredentials,
    /// Okta refused the code exchange otherwise.
    #[error("Okta refused the code: {0}")]
    TokenRefused(String),
    /// The saved client secret cannot be opened (the region key changed).
    #[error("the saved client secret cannot be opened")]
    SecretUnreadable,
    /// The ID token failed a check.
    #[error("bad ID token: {0}")]
    BadIdToken(JwtError),
    /// Okta gave no email address, or said it is not verified.
    #[error("no verified email")]
    NoVerifiedEmail,
    /// The user is unknown in the workspace and just-in-time provisioning is off.
    #[error("user not provisioned")]
    NotProvisioned,
    /// The user is deactivated in the workspace.
    #[error("user deactivated")]
    Deactivated,
    /// Several users of the workspace have this email and none has it as user name.
    #[error("ambiguous user")]
    Ambiguous,
    /// The one-time hand-off code is unknown, expired or used.
    #[error("unknown hand-off code")]
    HandoffUnknown,
    /// A store is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account with this email is bound to another Okta subject (another `sub`
    /// signed in first, or SCIM's `externalId` names another Okta user), or two
    /// accounts claim this subject: an email match never signs anyone in as them.
    #[error("the Okta subject does not match the account")]
    SubjectMismatch {
        /// The account the email named.
        user_id: uuid::Uuid,
    },
    /// The authorization response's `iss` (RFC 9207) is not the issuer the sign-in was
    /// sent to: another org answered (a mix-up attack, OKTA.md §9). No code was sent.
    #[error("the authorization response came from another issuer")]
    ResponseIssuerMismatch,
    /// The org says it sends `iss` in every authorization response, and this one had
    /// none. No code was sent.
    #[error("the authorization response has no iss")]
    ResponseIssuerMissing,
    /// The workspace's Okta domain is neither Okta's own nor a custom domain an
    /// operator allows for it (any more), or it is not valid under this deployment's
    /// switches.
    #[error("the Okta domain is not allowed: {0}")]
    OrgNotAllowed(crate::okta::domain::DomainError),
}

impl SignInFailure {
    /// The stable reason code of the audit event.
    pub fn reason(&self) -> &'static str {
        match self {
            SignInFailure::UnknownWorkspace => "unknown_workspace",
            SignInFailure::NotConfigured => "not_configured",
            SignInFailure::Disabled => "sign_in_disabled",
            SignInFailure::IssuerMismatch => "issuer_mismatch",
            SignInFailure::OktaUnreachable(_) => "okta_unreachable",
            SignInFailure::OktaError(_) => "okta_error",
            SignInFailure::StateUnknown => "state_unknown",
            SignInFailure::StateReplayed => "state_replayed",
            SignInFailure::BrowserMismatch => "browser_mismatch",
            SignInFailure::SettingsChanged => "settings_changed",
            SignInFailure::BadClientCredentials => "invalid_client",
            SignInFailure::TokenRefused(_) => "token_refused",
            SignInFailure::SecretUnreadable => "secret_unreadable",
            SignInFailure::BadIdToken(_) => "bad_id_token",
            SignInFailure::NoVerifiedEmail => "no_verified_email",
            SignInFailure::NotProvisioned => "not_provisioned",
            SignInFailure::Deactivated => "user_deactivated",
            SignInFailure::Ambiguous => "ambiguous_user",
            SignInFailure::HandoffUnknown => "handoff_unknown",
            SignInFailure::Store(_) => "store_unavailable",
            SignInFailure::SubjectMismatch { .. } => "subject_mismatch",
            SignInFailure::ResponseIssuerMismatch => "iss_mismatch",
            SignInFailure::ResponseIssuerMissing => "iss_missing",
            SignInFailure::OrgNotAllowed(_) => "okta_domain_not_allowed",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            SignInFailure::UnknownWorkspace => StatusCode::NOT_FOUND,
            SignInFailure::NotProvisioned
            | SignInFailure::Deactivated
            | SignInFailure::Disabled
            | SignInFailure::NotConfigured
            | SignInFailure::OktaError(_)
            | SignInFailure::SubjectMismatch { .. }
            | SignInFailure::OrgNotAllowed(_) => StatusCode::FORBIDDEN,
            SignInFailure::OktaUnreachable(_) => StatusCode::BAD_GATEWAY,
            SignInFailure::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The page's title and explanation.
    fn words(&self) -> (&'static str, String) {
        const ADMIN: &str = "Ask a workspace admin to check Integrations > Okta in ClosedLoop AI.";
        match self {
            SignInFailure::UnknownWorkspace => (
                "Workspace not found",
                "This sign-in link names no ClosedLoop AI workspace in this region. Check that \
                 the Okta app uses the URLs of your workspace's region and that its tenant \
                 setting team_id is your workspace ID."
                    .into(),
            ),
            SignInFailure::NotConfigured => (
                "Okta sign-in is not set up",
                format!("This workspace has not connected Okta yet. {ADMIN}"),
            ),
            SignInFailure::Disabled => (
                "Okta sign-in is turned off",
                "Okta sign-in is turned off for this workspace. A workspace admin can turn on \
                 Enable Okta sign-in under Integrations > Okta."
                    .into(),
            ),
            SignInFailure::IssuerMismatch => (
                "Sign-in from another Okta org",
                format!(
                    "This sign-in came from an Okta org that is not the one this workspace is \
                     connected to. {ADMIN}"
                ),
            ),
            SignInFailure::OktaUnreachable(_) => (
                "Okta cannot be reached",
                "ClosedLoop AI could not reach your Okta org just now. Please try again in a \
                 moment; if it keeps happening, ask a workspace admin to check the Okta \
                 domain under Integrations > Okta."
                    .into(),
            ),
            SignInFailure::OktaError(code) if code == "access_denied" => (
                "Okta did not allow this sign-in",
                "Okta refused the sign-in (access_denied). Confirm that you are assigned to \
                 the ClosedLoop AI app in Okta, or ask your Okta admin."
                    .into(),
            ),
            SignInFailure::OktaError(code) => (
                "Okta did not complete the sign-in",
                format!(
                    "Okta returned the error {}. Try again; if it keeps happening, ask your \
                     Okta admin.",
                    code
                ),
            ),
            SignInFailure::StateUnknown => (
                "This sign-in has expired",
                "This sign-in attempt is unknown or took too long (it is valid for 10 \
                 minutes). Start again."
                    .into(),
            ),
            SignInFailure::StateReplayed => (
                "This sign-in was already used",
                "This sign-in response was already used once and cannot be used again. \
                 Start again."
                    .into(),
            ),
            SignInFailure::BrowserMismatch => (
                "Sign-in started in another browser",
                "This sign-in was started in another browser or its cookies were removed. \
                 Start again in this browser."
                    .into(),
            ),
            SignInFailure::SettingsChanged => (
                "The Okta setup changed",
                "The workspace's Okta setup changed while you were signing in. Start again.".into(),
            ),
            SignInFailure::BadClientCredentials => (
                "Okta refused ClosedLoop AI's credentials",
                "Okta did not accept the Client ID and Client secret saved for this \
                 workspace. A workspace admin must copy them again from the Okta app into \
                 Integrations > Okta."
                    .into(),
            ),
            SignInFailure::TokenRefused(_) => (
                "The OIDC callback failed",
                "Okta did not accept the sign-in code. Confirm that the Okta app's Redirect \
                 URI exactly matches the region-specific callback URL shown under \
                 Integrations > Okta, then try again."
                    .into(),
            ),
            SignInFailure::SecretUnreadable => (
                "Okta setup needs attention",
                "The saved client secret can no longer be read. A workspace admin must \
                 enter it again under Integrations > Okta."
                    .into(),
            ),
            SignInFailure::BadIdToken(_) => (
                "Okta's answer could not be verified",
                format!(
                    "ClosedLoop AI could not verify the identity token Okta sent, so you \
                     were not signed in. Try again; if it keeps happening, {}",
                    ADMIN.to_lowercase()
                ),
            ),
            SignInFailure::NoVerifiedEmail => (
                "No verified email address",
                "Okta did not provide a verified email address for your account, so \
                 ClosedLoop AI cannot tell who you are. Ask your Okta admin."
                    .into(),
            ),
            SignInFailure::NotProvisioned => (
                "Your account is not in this workspace",
                "You authenticated with Okta, but you do not have an account in this \
                 ClosedLoop AI workspace yet: you are not provisioned, and Just-in-time \
                 provisioning is off in this workspace. Your admin must assign you to the \
                 ClosedLoop AI app in Okta and run provisioning, or turn on Just-in-time \
                 provisioning under Integrations > Okta."
                    .into(),
            ),
            SignInFailure::Deactivated => (
                "Your account is deactivated",
                "Your account in this ClosedLoop AI workspace is deactivated. If you should \
                 have access, ask your admin to assign you to the ClosedLoop AI app in Okta \
                 again (provisioning reactivates the account)."
                    .into(),
            ),
            SignInFailure::Ambiguous => (
                "Several accounts have this email",
                format!("More than one account of this workspace has your email address. {ADMIN}"),
            ),
            SignInFailure::HandoffUnknown => (
                "This sign-in link has expired",
                "This sign-in link is unknown, expired (it is valid for one minute) or was \
                 already used. Start again."
                    .into(),
            ),
            SignInFailure::Store(_) => ("Temporarily unavailable", String::new()),
            SignInFailure::SubjectMismatch { .. } => (
                "This account belongs to another Okta user",
                "You signed in to Okta, but the ClosedLoop AI account with your email \
                 address is linked to a different Okta user, so you were not signed in. \
                 This happens when an email address is changed or reused in Okta. Ask \
                 your Okta admin to check the email address of your Okta profile. If \
                 your Okta account was replaced, a workspace admin must ask ClosedLoop AI \
                 support to re-link the account; the refusal is in the workspace's \
                 activity log as subject_mismatch."
                    .into(),
            ),
            SignInFailure::ResponseIssuerMismatch | SignInFailure::ResponseIssuerMissing => (
                "The sign-in answer came from the wrong place",
                "The answer to this sign-in did not come from the Okta org it was sent to, \
                 so ClosedLoop AI did not use it and nobody was signed in. Start again from \
                 your workspace's sign-in page. If this happens again, tell your admin: a \
                 link you followed may have been crafted to take over your sign-in."
                    .into(),
            ),
            SignInFailure::OrgNotAllowed(_) => (
                "This workspace's Okta domain is not allowed",
                "This workspace is set up to sign in through an Okta domain that ClosedLoop \
                 AI does not accept: only Okta's own domains (such as acme.okta.com) and \
                 custom domains that ClosedLoop AI support allowed for the workspace. A \
                 workspace admin can enter the org's okta.com domain under Integrations > \
                 Okta, or ask ClosedLoop AI support to allow the custom domain."
                    .into(),
            ),
        }
    }

    /// The page for this failure.
    pub fn page(self, state: &AppState) -> Response {
        metrics::counter!(
            crate::metrics::SIGN_INS,
            "method" => "okta", "outcome" => "refused", "reason" => self.reason()
        )
        .increment(1);
        if let SignInFailure::Store(e) = self {
            return PageError::Unavailable(e).into_response();
        }
        let (title, explanation) = self.words();
        let body = html! {
            h1 { (Text(title)) }
            p.error role="alert" { (Text(&explanation)) }
            p { a.button href=(Text(&sign_in_page(state))) { "Back to sign-in" } }
        };
        let mut response = (self.status(), page(title, body)).into_response();
        no_store(&mut response);
        response
    }

    /// Audits the failure (best effort) and renders its page.
    pub async fn respond(
        self,
        state: &AppState,
        team_id: Option<TeamId>,
        detail: Value,
    ) -> Response {
        if !matches!(self, SignInFailure::Store(_)) {
            let mut detail = detail;
            if let Value::Object(m) = &mut detail {
                m.insert("reason".into(), json!(self.reason()));
                match &self {
                    SignInFailure::BadIdToken(e) => {
                        m.insert("check".into(), json!(e.reason()));
                    }
                    SignInFailure::OktaError(code) | SignInFailure::TokenRefused(code) => {
                        m.insert("error".into(), json!(code));
                    }
                    _ => {}
                }
            }
            tracing::info!(reason = self.reason(), error = %self, "Okta sign-in refused");
            record(
                state,
                team_id,
                "okta",
                AuditAction::OidcSignInFailed,
                None,
                detail,
            )
            .await;
        }
        self.page(state)
    }
}

/// Writes an audit event outside any transaction; a failure is logged, never shown.
pub async fn record(
    state: &AppState,
    team_id: Option<TeamId>,
    actor: &str,
    action: AuditAction,
    target: Option<&str>,
    detail: Value,
) {
    let result = async {
        let client = state.pg.get().await?;
        audit::record(
            &client,
            &AuditEvent {
                team_id,
                actor,
                action,
                target,
                detail,
            },
        )
        .await
    };
    if let Err(e) = result.await {
        tracing::error!(error = %e, action = action.as_str(), "could not write an audit event");
    }
}
