//! `/oauth/consent` on the app host: a workspace admin approves or denies Okta's
//! request for SCIM provisioning access.
//!
//! The page names what is being granted (the workspace, its region and `team_id`, the
//! client and where it will return, each scope in words) so the admin can tell a real
//! request from a phishing attempt. Approve creates the grant and a code bound to the
//! client, redirect URI, workspace, scopes and PKCE challenge; Deny sends
//! `access_denied`. Either way the pending request is consumed, so a decision happens
//! once.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use shared::ids::TeamId;
use shared::token::{self, TokenKind};
use uuid::Uuid;

use super::error::{error_to_client, not_configured_page, redirect_to_client};
use crate::paths::app;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::grants::{self, CodeRecord, NewGrant, PendingRequest};
use crate::web::consent::{DecisionForm, decision_buttons};
use crate::web::{PageError, Text, WorkspaceAdmin, page};

/// The CSRF purpose of the consent form of one pending request.
fn csrf_purpose(request: Uuid) -> String {
    format!("oauth-consent:{request}")
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    request: Option<String>,
}

/// The admin deciding on request `request`, or why nobody may: a signed-out browser
/// comes back to the request's page after sign-in, and a user who is no admin is told
/// what the request needs.
fn decider(
    admin: Result<WorkspaceAdmin, PageError>,
    request: Uuid,
) -> Result<WorkspaceAdmin, PageError> {
    admin.map_err(|e| match e {
        PageError::NotAdmin { workspace } => PageError::Forbidden {
            title: "Only a workspace admin can approve",
            explanation: format!(
                "Connecting Okta provisioning to the workspace {workspace} needs a workspace \
                 admin. Ask an admin of this workspace to start again from Okta."
            ),
        },
        other => other.returning_to(format!("{}?request={request}", app::OAUTH_CONSENT)),
    })
}

fn expired() -> PageError {
    PageError::BadRequest {
        title: "This authorization request has expired",
        explanation: "The request from Okta has expired (it is valid for 10 minutes) or was \
                      already answered. Start again from the Provisioning tab of the \
                      ClosedLoop AI app in Okta.",
    }
}

fn region_label(state: &AppState) -> String {
    state.config.region_id().as_str().to_ascii_uppercase()
}

/// The host a redirect URI returns to, for the page.
fn return_host(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `GET /oauth/consent?request=…`: the consent page.
pub(crate) async fn show(
    admin: Result<WorkspaceAdmin, PageError>,
    State(state): State<AppState>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, PageError> {
    if state.config.scim_oauth.is_none() {
        return Ok(not_configured_page());
    }
    let Some(id) = q.request.as_deref().and_then(|r| Uuid::parse_str(r).ok()) else {
        return Err(expired());
    };
    let Some(pending) = grants::load_pending(&state.redis, id).await? else {
        return Err(expired());
    };
    let admin = decider(admin, id)?;
    let csrf_token = admin.signed_in.csrf_token(&csrf_purpose(id));
    Ok(page(
        "Allow Okta provisioning",
        render(&state, &admin, &pending, id, &csrf_token),
    )
    .into_response())
}

fn render(
    state: &AppState,
    admin: &WorkspaceAdmin,
    pending: &PendingRequest,
    id: Uuid,
    csrf_token: &str,
) -> Markup {
    let scopes = pending.scopes.iter().copied();
    html! {
        h1 { "Allow Okta to provision this workspace?" }
        p {
            "Okta asks for access to manage users and groups in this ClosedLoop AI workspace \
             through SCIM."
        }
        dl {
            dt { "Workspace" } dd { (Text(&admin.approver.workspace_name)) }
            dt { "Region" } dd { (Text(&region_label(state))) }
            dt { "Workspace ID (" code { "team_id" } ")" } dd { code { (admin.team_id()) } }
            dt { "Application" }
            dd {
                "Okta provisioning (client " code { (Text(&pending.client_id)) } "), returning to "
                strong { (Text(&return_host(&pending.redirect_uri))) }
            }
            dt { "Signed in as" } dd { (Text(&admin.approver.user_name)) }
        }
        h2 { "Okta will be able to" }
        ul {
            @for s in scopes {
                li { (Text(s.describe())) " (" code { (s.as_str()) } ")" }
            }
        }
        p { "You can disconnect it at any time under Integrations > Okta." }
        (decision_buttons(app::OAUTH_CONSENT, id, csrf_token))
    }
}

/// `POST /oauth/consent`: Approve or Deny.
pub(crate) async fn decide(
    admin: Result<WorkspaceAdmin, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<DecisionForm>,
) -> Result<Response, PageError> {
    let Some(server) = state.config.scim_oauth.as_ref() else {
        return Ok(not_configured_page());
    };
    let Some(id) = form.request() else {
        return Err(expired());
    };
    let approve = form.approved()?;
    let decider = decider(admin, id)?;
    decider
        .signed_in
        .check_form(&csrf_purpose(id), &form.csrf)?;
    let Some(pending) = grants::take_pending(&state.redis, id).await? else {
        return Err(expired());
    };
    let team_id = decider.team_id();
    let actor = format!("user:{}", decider.user_id());
    if !approve {
        audit_denial(&state, team_id, &actor, &pending).await?;
        tracing::info!(%team_id, "SCIM OAuth request denied");
        return Ok(error_to_client(
            &pending.redirect_uri,
            pending.state.as_deref(),
            "access_denied",
            "the workspace admin denied the request",
        ));
    }
    let code = token::mint(state.config.region_id(), TokenKind::OneTime);
    let grant_id = Uuid::new_v4();
    let expires_at = (state.config.clock.now() + server.code_ttl).unix_timestamp();
    let recorded = async {
        let mut client = state.pg.get().await?;
        let tx = client.transaction().await?;
        grants::insert(
            &tx,
            &NewGrant {
                id: grant_id,
                team_id,
                client_id: &pending.client_id,
                redirect_uri: &pending.redirect_uri,
                scopes: &pending.scopes,
                approved_by: decider.user_id(),
                approved_by_name: &decider.approver.user_name,
                code_hash: &code.hash,
            },
        )
        .await?;
        audit::record(
            &tx,
            &AuditEvent {
                team_id: Some(team_id),
                actor: &actor,
                action: AuditAction::ScimOAuthGrantApproved,
                target: Some(&grant_id.to_string()),
                detail: json!({
                    "client_id": pending.client_id,
                    "redirect_uri": pending.redirect_uri,
                    "scopes": pending.scopes,
                    "pkce": pending.code_challenge.is_some(),
                }),
            },
        )
        .await?;
        tx.commit().await?;
        grants::save_code(
            &state.redis,
            &code.hash,
            &CodeRecord {
                grant_id,
                team_id,
                client_id: pending.client_id.clone(),
                redirect_uri: pending.redirect_uri.clone(),
                scopes: pending.scopes.clone(),
                code_challenge: pending.code_challenge.clone(),
                expires_at,
            },
            server.code_ttl.whole_seconds().unsigned_abs(),
        )
        .await
    };
    recorded.await?;
    tracing::info!(%team_id, %grant_id, "SCIM OAuth grant approved");
    Ok(redirect_to_client(
        &pending.redirect_uri,
        &[
            ("code", Some(code.secret.as_str())),
            ("state", pending.state.as_deref()),
        ],
    ))
}

async fn audit_denial(
    state: &AppState,
    team_id: TeamId,
    actor: &str,
    pending: &PendingRequest,
) -> Result<(), StoreError> {
    let client = state.pg.get().await?;
    audit::record(
        &client,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action: AuditAction::ScimOAuthGrantDenied,
            target: None,
            detail: json!({ "client_id": pending.client_id, "scopes": pending.scopes }),
        },
    )
    .await
}
