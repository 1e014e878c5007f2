//! Operator commands. Each prints one JSON document on stdout, so scripts (and the
//! local launcher) can read what was made. Times come from the worker's clock, like
//! every decision that depends on time, so tests can move past a link's expiry.

use serde_json::{Value, json};
use shared::ids::TeamId;
use shared::scope;
use shared::token::{self, TokenKind};
use time::Duration;

use crate::okta::domain::OktaDomain;
use crate::state::AppState;
use crate::store::tokens::{self, NewTokenRecord, TokenRecord};
use crate::store::workspaces::{self, AllowanceChange};

/// How long a first admin's sign-in link is valid.
pub const SIGN_IN_LINK_TTL: Duration = Duration::hours(24);

/// `workspace create`: a workspace, its roles, its first admin and a one-time link.
pub async fn workspace_create(
    state: &AppState,
    name: &str,
    admin_email: &str,
) -> anyhow::Result<Value> {
    let name = name.trim();
    let email = admin_email.trim();
    anyhow::ensure!(
        !name.is_empty() && name.len() <= 200,
        "--name must be 1 to 200 characters"
    );
    anyhow::ensure!(
        email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.')),
        "--admin-email {email:?} is not an email address"
    );
    let link = token::mint(state.config.region_id(), TokenKind::OneTime);
    let expires = state.config.clock.now() + SIGN_IN_LINK_TTL;
    let created = workspaces::create(
        &state.pg,
        state.config.region_id(),
        name,
        email,
        &link.hash,
        expires,
    )
    .await?;
    Ok(json!({
        "team_id": created.workspace.team_id,
        "name": created.workspace.name,
        "region": created.workspace.region,
        "admin_email": email,
        "admin_user_id": created.admin_user_id,
        "sign_in_url": format!("{}/auth/link?code={}", state.config.region.app_base(), link.secret),
        "sign_in_url_expires_at": expires.format(&time::format_description::well_known::Rfc3339)?,
        "integrations_url": format!("{}/integrations/okta", state.config.region.app_base()),
        "scim_base_url": format!("{}/api/scim/v2/{}", state.config.region.api_base(), created.workspace.team_id),
    }))
}

/// `workspace list`.
pub async fn workspace_list(state: &AppState) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(workspaces::list(&state.pg).await?)?)
}

/// The custom Okta domain an operator names, normalised as the Okta page stores it.
/// Okta's own domains need no allowance, so naming one is a mistake worth saying.
fn custom_domain(domain: &str) -> anyhow::Result<OktaDomain> {
    let parsed = OktaDomain::parse(domain, false)
        .map_err(|e| anyhow::anyhow!("--domain {domain:?}: {e}"))?;
    anyhow::ensure!(
        !parsed.kind().okta_operated(),
        "--domain {parsed} is an {}: every workspace may use it without an allowance",
        parsed.kind().describe()
    );
    Ok(parsed)
}

/// `workspace allow-okta-domain`: lets a workspace use a custom Okta URL domain
/// (`login.acme.com`) on its Okta page and for sign-in. Audited; idempotent.
pub async fn workspace_allow_okta_domain(
    state: &AppState,
    team: &str,
    domain: &str,
) -> anyhow::Result<Value> {
    let team_id = TeamId::parse(team)?;
    let domain = custom_domain(domain)?;
    let change =
        workspaces::allow_okta_domain(&state.pg, team_id, domain.as_str(), "operator").await?;
    allowance_answer(state, team_id, &domain, change, true).await
}

/// `workspace disallow-okta-domain`: withdraws an allowance. Sign-ins through that
/// domain stop at once, including ones already at Okta. Audited; idempotent.
pub async fn workspace_disallow_okta_domain(
    state: &AppState,
    team: &str,
    domain: &str,
) -> anyhow::Result<Value> {
    let team_id = TeamId::parse(team)?;
    let domain = custom_domain(domain)?;
    let change =
        workspaces::disallow_okta_domain(&state.pg, team_id, domain.as_str(), "operator").await?;
    allowance_answer(state, team_id, &domain, change, false).await
}

async fn allowance_answer(
    state: &AppState,
    team_id: TeamId,
    domain: &OktaDomain,
    change: AllowanceChange,
    allowed: bool,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        change != AllowanceChange::NoWorkspace,
        "workspace {team_id} does not exist in region {}",
        state.config.region_id()
    );
    let client = state.pg.get().await?;
    let now_allowed = workspaces::allowed_okta_domains(&client, team_id).await?;
    Ok(json!({
        "team_id": team_id,
        "domain": domain.as_str(),
        "allowed": allowed,
        "changed": change == AllowanceChange::Changed,
        "allowed_okta_domains": now_allowed,
    }))
}

/// `token issue --kind scim`: a SCIM bearer token for a workspace of this region.
pub async fn token_issue(
    state: &AppState,
    team: &str,
    kind: &str,
    scopes: &str,
    ttl_days: u32,
) -> anyhow::Result<Value> {
    let team_id = TeamId::parse(team)?;
    anyhow::ensure!(
        kind == TokenKind::Scim.code(),
        "--kind {kind:?}: operators issue only scim tokens (API and MCP tokens belong to users)"
    );
    anyhow::ensure!(
        workspaces::exists(&state.pg, team_id).await?,
        "workspace {team_id} does not exist in region {}",
        state.config.region_id()
    );
    let mut scopes = scope::parse_list(scopes)?;
    if scopes.is_empty() {
        scopes = scope::Scope::ALL.to_vec();
    }
    let minted = token::mint(state.config.region_id(), TokenKind::Scim);
    let expires = state.config.clock.now() + Duration::days(i64::from(ttl_days.max(1)));
    tokens::insert(
        &state.pg,
        &state.redis,
        &NewTokenRecord {
            hash: minted.hash,
            record: TokenRecord {
                team_id,
                kind: TokenKind::Scim,
                scopes: scopes.clone(),
                user_id: None,
                user_epoch: 0,
                expires_at: Some(expires.unix_timestamp()),
            },
            name: Some("operator"),
            created_by: "operator",
        },
    )
    .await?;
    Ok(json!({
        "team_id": team_id,
        "kind": "scim",
        "token": minted.secret,
        "scopes": scope::join(&scopes),
        "expires_at": expires.format(&time::format_description::well_known::Rfc3339)?,
        "scim_base_url": format!("{}/api/scim/v2/{team_id}", state.config.region.api_base()),
    }))
}
