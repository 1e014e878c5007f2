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
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use shared::ids::TeamId;
use shared::scope::Scope;
use shared::token::{self, TokenKind};
use uuid::Uuid;

use super::error::{error_to_client, not_configured_page, redirect_to_client};
use crate::csrf;
use crate::html::{error_page, escape, page};
use crate::routes::pages::{sign_in_redirect, unavailable};
use crate::session;
use crate::state::AppState;
use crate::store::audit::{self, AuditEvent};
use crate::store::grants::{self, Approver, CodeRecord, NewGrant, PendingRequest};
use crate::store::{StoreError, tokens::TokenRecord};

/// Where the consent page lives on the app host.
pub const PATH: &str = "/oauth/consent";

/// The CSRF purpose of the consent form of one pending request.
fn csrf_purpose(request: Uuid) -> String {
    format!("oauth-consent:{request}")
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    request: Option<String>,
}

/// The signed-in admin deciding, with their workspace.
struct Decider {
    session: TokenRecord,
    user_id: Uuid,
    approver: Approver,
}

/// What stands between a request and the consent form.
enum Gate {
    /// Continue with this admin.
    Admin(Decider),
    /// Answer with this response (sign-in redirect, 403 page, store failure).
    Stop(Response),
}

/// Finds the signed-in user and checks that they are an admin of their workspace.
async fn gate(state: &AppState, headers: &HeaderMap, request: Uuid) -> Gate {
    let back = format!("{PATH}?request={request}");
    let session = match session::current(state, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Gate::Stop(sign_in_redirect(&back)),
        Err(e) => return Gate::Stop(unavailable(e)),
    };
    let Some(user_id) = session.user_id else {
        return Gate::Stop(sign_in_redirect(&back));
    };
    match grants::approver(&state.pg, session.team_id, user_id).await {
        Ok(Some(approver)) if approver.is_admin => Gate::Admin(Decider {
            session,
            user_id,
            approver,
        }),
        Ok(Some(approver)) => Gate::Stop(not_admin(&approver.workspace_name)),
        Ok(None) => Gate::Stop(sign_in_redirect(&back)),
        Err(e) => Gate::Stop(unavailable(e)),
    }
}

fn not_admin(workspace: &str) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Only a workspace admin can approve",
        &format!(
            "Connecting Okta provisioning to the workspace {workspace} needs a workspace \
             admin. Ask an admin of this workspace to start again from Okta."
        ),
    )
}

fn expired() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This authorization request has expired",
        "The request from Okta has expired (it is valid for 10 minutes) or was already \
         answered. Start again from the Provisioning tab of the ClosedLoop AI app in Okta.",
    )
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
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    if state.config.scim_oauth.is_none() {
        return not_configured_page();
    }
    let Some(id) = q.request.as_deref().and_then(|r| Uuid::parse_str(r).ok()) else {
        return expired();
    };
    let pending = match grants::load_pending(&state.redis, id).await {
        Ok(Some(p)) => p,
        Ok(None) => return expired(),
        Err(e) => return unavailable(e),
    };
    let decider = match gate(&state, &headers, id).await {
        Gate::Admin(d) => d,
        Gate::Stop(r) => return r,
    };
    let Some(csrf_token) = csrf::for_request(&state, &headers, &csrf_purpose(id)) else {
        return sign_in_redirect(&format!("{PATH}?request={id}"));
    };
    page(
        StatusCode::OK,
        "Allow Okta provisioning",
        &render(&state, &decider, &pending, id, &csrf_token),
    )
}

fn render(
    state: &AppState,
    decider: &Decider,
    pending: &PendingRequest,
    id: Uuid,
    csrf_token: &str,
) -> String {
    let scopes: String = pending
        .scopes
        .iter()
        .filter_map(|s| Scope::parse(s).ok())
        .map(|s| {
            format!(
                "<li>{} (<code>{}</code>)</li>",
                escape(s.describe()),
                s.as_str()
            )
        })
        .collect();
    format!(
        "<h1>Allow Okta to provision this workspace?</h1>\
         <p>Okta asks for access to manage users and groups in this ClosedLoop AI workspace \
         through SCIM.</p>\
         <dl>\
         <dt>Workspace</dt><dd>{workspace}</dd>\
         <dt>Region</dt><dd>{region}</dd>\
         <dt>Workspace ID (<code>team_id</code>)</dt><dd><code>{team_id}</code></dd>\
         <dt>Application</dt><dd>Okta provisioning (client <code>{client}</code>), returning to \
         <strong>{host}</strong></dd>\
         <dt>Signed in as</dt><dd>{user}</dd>\
         </dl>\
         <h2>Okta will be able to</h2><ul>{scopes}</ul>\
         <p>You can disconnect it at any time under Integrations &gt; Okta.</p>\
         <form method=\"post\" action=\"{PATH}\">\
         <input type=\"hidden\" name=\"request\" value=\"{id}\">\
         <input type=\"hidden\" name=\"{field}\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         </form>",
        workspace = escape(&decider.approver.workspace_name),
        region = escape(&region_label(state)),
        team_id = decider.session.team_id,
        client = escape(&pending.client_id),
        host = escape(&return_host(&pending.redirect_uri)),
        user = escape(&decider.approver.user_name),
        field = csrf::FIELD,
        csrf = escape(csrf_token),
    )
}

/// The consent form's fields; missing fields read as empty and fail their checks.
#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

/// `POST /oauth/consent`: Approve or Deny.
pub(crate) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<DecisionForm>,
) -> Response {
    let Some(server) = state.config.scim_oauth.as_ref() else {
        return not_configured_page();
    };
    let Ok(id) = Uuid::parse_str(&form.request) else {
        return expired();
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "No decision",
                "Choose Approve or Deny.",
            );
        }
    };
    let decider = match gate(&state, &headers, id).await {
        Gate::Admin(d) => d,
        Gate::Stop(r) => return r,
    };
    if csrf::check(&state, &headers, &csrf_purpose(id), &form.csrf).is_err() {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "The form expired or did not come from this ClosedLoop AI page. Start again from \
             the Provisioning tab of the ClosedLoop AI app in Okta.",
        );
    }
    let pending = match grants::take_pending(&state.redis, id).await {
        Ok(Some(p)) => p,
        Ok(None) => return expired(),
        Err(e) => return unavailable(e),
    };
    let team_id = decider.session.team_id;
    let actor = format!("user:{}", decider.user_id);
    if !approve {
        let denied = audit_denial(&state, team_id, &actor, &pending).await;
        if let Err(e) = denied {
            return unavailable(e);
        }
        tracing::info!(%team_id, "SCIM OAuth request denied");
        return error_to_client(
            &pending.redirect_uri,
            pending.state.as_deref(),
            "access_denied",
            "the workspace admin denied the request",
        );
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
                approved_by: decider.user_id,
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
                action: "scim_oauth.grant.approved",
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
    if let Err(e) = recorded.await {
        return unavailable(e);
    }
    tracing::info!(%team_id, %grant_id, "SCIM OAuth grant approved");
    redirect_to_client(
        &pending.redirect_uri,
        &[
            ("code", Some(code.secret.as_str())),
            ("state", pending.state.as_deref()),
        ],
    )
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
            action: "scim_oauth.grant.denied",
            target: None,
            detail: json!({ "client_id": pending.client_id, "scopes": pending.scopes }),
        },
    )
    .await
}
