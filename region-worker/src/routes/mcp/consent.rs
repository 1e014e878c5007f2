//! `/mcp/consent` on the app host: a signed-in user approves or denies an MCP client's
//! request to act as them.
//!
//! Anyone can publish a client metadata document or register a client under any name,
//! so the page marks the name unverified and names what the user can check: the
//! client id, the host the answer returns to, the workspace and region, the scopes. A
//! signed-out browser signs in first (through the workspace's Okta when configured, so
//! Okta's policies and MFA apply) and comes back here. Approve creates the grant and a
//! code bound to the client, redirect URI, PKCE challenge, resource, user and
//! workspace; Deny sends `access_denied`. Either way the pending request is consumed.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use shared::token::{self, TokenKind};
use uuid::Uuid;

use super::authorize::error_to_client;
use super::issuer;
use crate::paths::app;
use crate::routes::oauth::error::redirect_to_client;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::grants;
use crate::store::mcp::{self, CodeRecord, NewGrant, PendingRequest};
use crate::web::consent::{DecisionForm, decision_buttons};
use crate::web::{PageError, SignedIn, Text, page};

/// How long a code lives: long enough for a client to call the token endpoint.
pub const CODE_TTL_SECS: i64 = 60;

/// The CSRF purpose of the consent form of one pending request.
fn csrf_purpose(request: Uuid) -> String {
    format!("mcp-consent:{request}")
}

fn here(request: Uuid) -> String {
    format!("{}?request={request}", app::MCP_CONSENT)
}

fn expired() -> PageError {
    PageError::BadRequest {
        title: "This authorization request has expired",
        explanation: "The application's request has expired (it is valid for 10 minutes) \
                      or was already answered. Connect again from the application.",
    }
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    request: Option<String>,
}

/// The host a redirect URI returns to, for the page.
fn return_host(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .ok()
        .map(|u| match u.host_str() {
            Some(h) => h.to_owned(),
            // A private-use scheme: the app on this device.
            None => format!("{}: (an app on your device)", u.scheme()),
        })
        .unwrap_or_default()
}

/// `GET /mcp/consent?request=…`.
pub(crate) async fn show(
    user: Result<SignedIn, PageError>,
    State(state): State<AppState>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let Some(id) = q.request.as_deref().and_then(|r| Uuid::parse_str(r).ok()) else {
        return Err(expired());
    };
    let Some(pending) = mcp::load_pending(&state.redis, id).await? else {
        return Err(expired());
    };
    let user = user.map_err(|e| e.returning_to(here(id)))?;
    let Some(who) = grants::approver(&state.pg, user.team_id(), user.user_id()).await? else {
        return Err(PageError::SignIn {
            return_to: here(id),
        });
    };
    let csrf_token = user.csrf_token(&csrf_purpose(id));
    Ok(page(
        "Connect an MCP client",
        render(&state, &who, &pending, id, &csrf_token),
    )
    .into_response())
}

fn render(
    state: &AppState,
    who: &grants::Approver,
    pending: &PendingRequest,
    id: Uuid,
    csrf_token: &str,
) -> Markup {
    html! {
        h1 { "Allow " (Text(&pending.client_name)) " to use ClosedLoop AI as you?" }
        p {
            "An MCP client asks to act as you on ClosedLoop AI's MCP server. Its name is "
            strong { "unverified" } ": it is what the application calls itself. Approve only \
            if you just started connecting this application."
        }
        dl {
            dt { "Application" }
            dd {
                (Text(&pending.client_name)) " (unverified), client "
                code { (Text(&pending.client_id)) }
            }
            dt { "Returns to" } dd { strong { (Text(&return_host(&pending.redirect_uri))) } }
            dt { "Workspace" } dd { (Text(&who.workspace_name)) }
            dt { "Region" } dd { (Text(&state.config.region_id().as_str().to_ascii_uppercase())) }
            dt { "Signed in as" } dd { (Text(&who.user_name)) }
        }
        h2 { "The application will be able to" }
        ul {
            @for s in &pending.scopes {
                li { "Use ClosedLoop AI's MCP server as you (" code { (Text(s)) } ")" }
            }
        }
        p { "You can disconnect it at any time under API and MCP tokens, Connected apps." }
        (decision_buttons(app::MCP_CONSENT, id, csrf_token))
    }
}

/// `POST /mcp/consent`: Approve or Deny.
pub(crate) async fn decide(
    user: Result<SignedIn, PageError>,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<DecisionForm>,
) -> Result<Response, PageError> {
    let Some(id) = form.request() else {
        return Err(expired());
    };
    let approve = form.approved()?;
    let user = user.map_err(|e| e.returning_to(here(id)))?;
    user.check_form(&csrf_purpose(id), &form.csrf)?;
    let Some(pending) = mcp::take_pending(&state.redis, id).await? else {
        return Err(expired());
    };
    let team_id = user.team_id();
    let actor = user.owner.actor();
    if !approve {
        let pg = state.pg.get().await.map_err(StoreError::from)?;
        audit::record(
            &pg,
            &AuditEvent {
                team_id: Some(team_id),
                actor: &actor,
                action: AuditAction::McpGrantDenied,
                target: None,
                detail: json!({ "client_id": pending.client_id, "client_name": pending.client_name }),
            },
        )
        .await?;
        super::count("consent", "denied");
        return Ok(error_to_client(
            &state,
            &pending.redirect_uri,
            pending.state.as_deref(),
            "access_denied",
            "the user denied the request",
        ));
    }
    let code = token::mint(state.config.region_id(), TokenKind::OneTime);
    let grant_id = Uuid::new_v4();
    let expires_at = state.config.clock.now().unix_timestamp() + CODE_TTL_SECS;
    let recorded = async {
        let mut client = state.pg.get().await?;
        let tx = client.transaction().await?;
        mcp::insert_grant(
            &tx,
            &NewGrant {
                id: grant_id,
                team_id,
                user_id: user.user_id(),
                user_epoch: user.owner.epoch,
                request: &pending,
                code_hash: &code.hash,
            },
        )
        .await?;
        audit::record(
            &tx,
            &AuditEvent {
                team_id: Some(team_id),
                actor: &actor,
                action: AuditAction::McpGrantApproved,
                target: Some(&grant_id.to_string()),
                detail: json!({
                    "client_id": pending.client_id,
                    "client_name": pending.client_name,
                    "redirect_uri": pending.redirect_uri,
                    "scopes": pending.scopes,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        mcp::save_code(
            &state.redis,
            &code.hash,
            &CodeRecord {
                grant_id,
                client_id: pending.client_id.clone(),
                redirect_uri: pending.redirect_uri.clone(),
                code_challenge: pending.code_challenge.clone(),
                resource: pending.resource.clone(),
                expires_at,
            },
            CODE_TTL_SECS.unsigned_abs(),
        )
        .await
    };
    recorded.await?;
    super::count("consent", "approved");
    tracing::info!(%team_id, %grant_id, "MCP grant approved");
    Ok(redirect_to_client(
        &pending.redirect_uri,
        &[
            ("code", Some(code.secret.as_str())),
            ("state", pending.state.as_deref()),
            ("iss", Some(&issuer(&state))),
        ],
    ))
}
