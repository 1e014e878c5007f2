//! Operator commands. Each returns what it made as a typed result, which `main`
//! serialises once, as one JSON document on stdout, so scripts (and the local
//! launcher) can read it; tests read the fields. The JSON keys are the field names
//! (README, "Operator commands"). Times come from the worker's clock, like every
//! decision that depends on time, so tests can move past a link's expiry.

use std::fmt;

use serde::Serialize;
use shared::ids::TeamId;
use shared::scope;
use shared::token::{self, TokenKind};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::okta::domain::OktaDomain;
use crate::paths;
use crate::state::AppState;
use crate::store::domains::{self, EmailDomain};
use crate::store::tokens::{self, NewTokenRecord, TokenRecord};
use crate::store::workspaces::{self, AdminName, AllowanceChange, LinkIssue, Workspace};

/// How long a first admin's sign-in link is valid.
pub const SIGN_IN_LINK_TTL: Duration = Duration::hours(24);

/// What `workspace create` made. Its `Debug` hides the sign-in link, a credential.
#[derive(Clone, Serialize)]
pub struct WorkspaceCreated {
    /// The new workspace's id.
    pub team_id: TeamId,
    /// Its display name, trimmed.
    pub name: String,
    /// The region it lives in.
    pub region: String,
    /// The first admin's email, trimmed.
    pub admin_email: String,
    /// The first admin's user id.
    pub admin_user_id: Uuid,
    /// The first admin's one-time sign-in link: to hand over once, never to log.
    pub sign_in_url: String,
    /// When the link stops working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub sign_in_url_expires_at: OffsetDateTime,
    /// Where the admin connects Okta.
    pub integrations_url: String,
    /// The SCIM base URL to give Okta.
    pub scim_base_url: String,
}

impl fmt::Debug for WorkspaceCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkspaceCreated")
            .field("team_id", &self.team_id)
            .field("name", &self.name)
            .field("region", &self.region)
            .field("admin_user_id", &self.admin_user_id)
            .field("sign_in_url", &"[redacted]")
            .field("sign_in_url_expires_at", &self.sign_in_url_expires_at)
            .finish_non_exhaustive()
    }
}

/// What `workspace sign-in-link` made. Its `Debug` hides the link, a credential.
#[derive(Clone, Serialize)]
pub struct SignInLinkIssued {
    /// The workspace.
    pub team_id: TeamId,
    /// The admin's user name (the email they sign in with).
    pub admin_email: String,
    /// The admin's user id.
    pub admin_user_id: Uuid,
    /// The new one-time sign-in link: to hand over once, never to log.
    pub sign_in_url: String,
    /// When the link stops working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub sign_in_url_expires_at: OffsetDateTime,
    /// How many earlier unused links of the admin stopped working.
    pub revoked_links: u64,
}

impl fmt::Debug for SignInLinkIssued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignInLinkIssued")
            .field("team_id", &self.team_id)
            .field("admin_user_id", &self.admin_user_id)
            .field("sign_in_url", &"[redacted]")
            .field("sign_in_url_expires_at", &self.sign_in_url_expires_at)
            .field("revoked_links", &self.revoked_links)
            .finish_non_exhaustive()
    }
}

/// One admin as `workspace admins` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedAdmin {
    /// The user id.
    pub user_id: Uuid,
    /// Their user name: what `workspace sign-in-link --email` takes.
    pub user_name: String,
    /// Their primary email.
    pub email: Option<String>,
    /// Their display name, when they have one.
    pub name: Option<String>,
    /// Whether they may sign in (a deactivated admin gets no link).
    pub active: bool,
    /// When they were created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What `workspace admins` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceAdmins {
    /// The workspace.
    pub team_id: TeamId,
    /// Its admins, by user name.
    pub admins: Vec<ListedAdmin>,
}

/// What `workspace allow-okta-domain` and `disallow-okta-domain` leave behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OktaDomainAllowance {
    /// The workspace.
    pub team_id: TeamId,
    /// The custom domain, normalised as the Okta page stores it.
    pub domain: String,
    /// Whether the command allowed (`true`) or withdrew the domain.
    pub allowed: bool,
    /// Whether anything changed (both commands are idempotent).
    pub changed: bool,
    /// Every custom domain the workspace may use now, sorted.
    pub allowed_okta_domains: Vec<String>,
}

/// One claimed email domain as `workspace domains` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedDomain {
    /// The domain, normalised.
    pub domain: String,
    /// Whether its DNS record was found: only a verified domain routes sign-ins.
    pub verified: bool,
    /// The TXT record's name the workspace's admin must publish.
    pub record_name: String,
    /// The TXT record's value.
    pub record_value: String,
    /// Who claimed it (`user:<id>`).
    pub claimed_by: String,
    /// When it was claimed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
    /// When it was verified (RFC 3339), if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
}

/// What `workspace domains` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceDomains {
    /// The workspace.
    pub team_id: TeamId,
    /// Its claimed email domains, by domain.
    pub domains: Vec<ListedDomain>,
}

/// What `workspace release-domain` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainReleased {
    /// The domain, normalised.
    pub domain: String,
    /// The workspace whose verified claim was released.
    pub team_id: TeamId,
}

/// What `token issue` made. Its `Debug` hides the token.
#[derive(Clone, Serialize)]
pub struct IssuedToken {
    /// The workspace the token is bound to.
    pub team_id: TeamId,
    /// Always [`TokenKind::Scim`] (printed as its code, `scim`).
    pub kind: TokenKind,
    /// The token: shown once, stored only as its hash.
    pub token: String,
    /// Its scopes, space-separated as RFC 6749 §3.3 writes a scope list.
    pub scopes: String,
    /// When it expires (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The SCIM base URL it works at.
    pub scim_base_url: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("team_id", &self.team_id)
            .field("kind", &self.kind)
            .field("token", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `workspace create`: a workspace, its roles, its first admin and a one-time link.
pub async fn workspace_create(
    state: &AppState,
    name: &str,
    admin_email: &str,
) -> anyhow::Result<WorkspaceCreated> {
    workspace_create_named(state, name, admin_email, None).await
}

/// `workspace create --admin-name`: as [`workspace_create`], the first admin named
/// `admin_name` (split at its last space into given and family name, see
/// [`AdminName::split`]).
pub async fn workspace_create_named(
    state: &AppState,
    name: &str,
    admin_email: &str,
    admin_name: Option<&str>,
) -> anyhow::Result<WorkspaceCreated> {
    let admin_name = match admin_name {
        Some(full) => {
            anyhow::ensure!(
                full.len() <= 200,
                "--admin-name must be at most 200 characters"
            );
            Some(AdminName::split(full).ok_or_else(|| {
                anyhow::anyhow!("--admin-name is blank: leave it out or give a name")
            })?)
        }
        None => None,
    };
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
        admin_name.as_ref(),
        &link.hash,
        expires,
    )
    .await?;
    let team_id = created.workspace.team_id;
    let app = state.config.region.app_base();
    Ok(WorkspaceCreated {
        team_id,
        name: created.workspace.name,
        region: created.workspace.region,
        admin_email: email.to_owned(),
        admin_user_id: created.admin_user_id,
        sign_in_url: sign_in_url(state, &link.secret),
        sign_in_url_expires_at: expires,
        integrations_url: format!("{app}{}", paths::app::OKTA_INTEGRATION),
        scim_base_url: format!(
            "{}{}",
            state.config.region.api_base(),
            paths::api::scim_base(team_id)
        ),
    })
}

/// `workspace list`: the region's workspaces, oldest first.
pub async fn workspace_list(state: &AppState) -> anyhow::Result<Vec<Workspace>> {
    Ok(workspaces::list(&state.pg).await?)
}

/// The link an admin opens: the sign-in page that shows a button for `secret`.
fn sign_in_url(state: &AppState, secret: &str) -> String {
    format!(
        "{}{}?code={secret}",
        state.config.region.app_base(),
        paths::app::SIGN_IN_LINK
    )
}

/// `workspace admins`: the workspace's admins, whom `workspace sign-in-link` serves.
pub async fn workspace_admins(state: &AppState, team: &str) -> anyhow::Result<WorkspaceAdmins> {
    let team_id = TeamId::parse(team)?;
    let Some(admins) = workspaces::admins(&state.pg, team_id).await? else {
        anyhow::bail!(
            "workspace {team_id} does not exist in region {}",
            state.config.region_id()
        );
    };
    Ok(WorkspaceAdmins {
        team_id,
        admins: admins
            .into_iter()
            .map(|a| ListedAdmin {
                user_id: a.user_id,
                user_name: a.user_name,
                email: a.email,
                name: a.display_name,
                active: a.active,
                created_at: a.created_at,
            })
            .collect(),
    })
}

/// `workspace sign-in-link`: a new one-time sign-in link (24 h) for an active admin of
/// the workspace, for an admin whose link expired or who lost their session before
/// Okta sign-in works. Their earlier unused links stop working. Audited.
pub async fn workspace_sign_in_link(
    state: &AppState,
    team: &str,
    email: &str,
) -> anyhow::Result<SignInLinkIssued> {
    let team_id = TeamId::parse(team)?;
    let email = email.trim();
    anyhow::ensure!(!email.is_empty(), "--email is blank");
    let region = state.config.region_id();
    let link = token::mint(region, TokenKind::OneTime);
    let expires = state.config.clock.now() + SIGN_IN_LINK_TTL;
    match workspaces::issue_sign_in_link(&state.pg, team_id, email, &link.hash, expires).await? {
        LinkIssue::Issued {
            user_id,
            user_name,
            revoked,
        } => Ok(SignInLinkIssued {
            team_id,
            admin_email: user_name,
            admin_user_id: user_id,
            sign_in_url: sign_in_url(state, &link.secret),
            sign_in_url_expires_at: expires,
            revoked_links: revoked,
        }),
        LinkIssue::NoWorkspace => {
            anyhow::bail!("workspace {team_id} does not exist in region {region}")
        }
        LinkIssue::NoUser => anyhow::bail!(
            "no user of workspace {team_id} has the email {email:?} \
             (`workspace admins --team {team_id}` lists its admins)"
        ),
        LinkIssue::NotAdmin => anyhow::bail!(
            "{email:?} is not an admin of workspace {team_id}: sign-in links are for admins \
             only (`workspace admins --team {team_id}` lists them); everyone else signs in \
             through Okta"
        ),
        LinkIssue::Deactivated => anyhow::bail!(
            "{email:?} is a deactivated admin of workspace {team_id}: a link would not sign \
             them in (reactivate them in Okta first)"
        ),
    }
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
) -> anyhow::Result<OktaDomainAllowance> {
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
) -> anyhow::Result<OktaDomainAllowance> {
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
) -> anyhow::Result<OktaDomainAllowance> {
    anyhow::ensure!(
        change != AllowanceChange::NoWorkspace,
        "workspace {team_id} does not exist in region {}",
        state.config.region_id()
    );
    let client = state.pg.get().await?;
    Ok(OktaDomainAllowance {
        team_id,
        domain: domain.as_str().to_owned(),
        allowed,
        changed: change == AllowanceChange::Changed,
        allowed_okta_domains: workspaces::allowed_okta_domains(&client, team_id).await?,
    })
}

/// `workspace domains`: the email domains a workspace claimed on Integrations > Okta,
/// pending and verified, with the record each one needs (for support to compare with
/// what the customer published).
pub async fn workspace_domains(state: &AppState, team: &str) -> anyhow::Result<WorkspaceDomains> {
    let team_id = TeamId::parse(team)?;
    anyhow::ensure!(
        workspaces::exists(&state.pg, team_id).await?,
        "workspace {team_id} does not exist in region {}",
        state.config.region_id()
    );
    let client = state.pg.get().await?;
    let claims = domains::list(&client, team_id).await?;
    Ok(WorkspaceDomains {
        team_id,
        domains: claims
            .into_iter()
            .map(|c| ListedDomain {
                record_name: c.record_name(),
                record_value: c.record_value(),
                domain: c.domain.as_str().to_owned(),
                verified: c.verified_at.is_some(),
                claimed_by: c.claimed_by,
                claimed_at: c.claimed_at,
                verified_at: c.verified_at,
            })
            .collect(),
    })
}

/// `workspace release-domain`: releases the verified claim of an email domain,
/// whichever workspace of the region holds it (the claim is removed: its holder must
/// claim and verify it again), so that another workspace may verify it. Sign-ins of
/// the domain stop routing at once. Audited under the former holder.
pub async fn workspace_release_domain(
    state: &AppState,
    domain: &str,
) -> anyhow::Result<DomainReleased> {
    let domain =
        EmailDomain::parse(domain).map_err(|e| anyhow::anyhow!("--domain {domain:?}: {e}"))?;
    match domains::release(&state.pg, &domain, "operator").await? {
        Some(team_id) => Ok(DomainReleased {
            domain: domain.as_str().to_owned(),
            team_id,
        }),
        None => anyhow::bail!(
            "no workspace of region {} has verified the email domain {domain}: nothing to \
             release (`workspace domains --team …` lists a workspace's claims)",
            state.config.region_id()
        ),
    }
}

/// `token issue --kind scim`: a SCIM bearer token for a workspace of this region.
pub async fn token_issue(
    state: &AppState,
    team: &str,
    kind: &str,
    scopes: &str,
    ttl_days: u32,
) -> anyhow::Result<IssuedToken> {
    let team_id = TeamId::parse(team)?;
    anyhow::ensure!(
        TokenKind::from_code(kind) == Some(TokenKind::Scim),
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
    Ok(IssuedToken {
        team_id,
        kind: TokenKind::Scim,
        token: minted.secret,
        scopes: scope::join(&scopes),
        expires_at: expires,
        scim_base_url: format!(
            "{}{}",
            state.config.region.api_base(),
            paths::api::scim_base(team_id)
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The JSON `main` prints, as the untyped commands built it with `json!`.
    fn printed(result: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(result).unwrap()
    }

    #[test]
    fn results_print_the_keys_and_values_the_readme_documents() {
        let team_id = TeamId::parse("7f9c1f4e-3c55-4a70-9d0e-2f8f6b1f0a11").unwrap();
        let admin = Uuid::parse_str("0c7ed1e2-52d4-4c4a-8a39-7a3c8f1d2b33").unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + Duration::nanoseconds(123_456_789);
        let created = WorkspaceCreated {
            team_id,
            name: "Acme".into(),
            region: "us".into(),
            admin_email: "a@acme.test".into(),
            admin_user_id: admin,
            sign_in_url: "http://app/auth/link?code=clk_us_otc_x".into(),
            sign_in_url_expires_at: at,
            integrations_url: "http://app/integrations/okta".into(),
            scim_base_url: format!("http://api/api/scim/v2/{team_id}"),
        };
        let rfc3339 = "2023-11-14T22:13:20.123456789Z";
        assert_eq!(
            printed(&created),
            json!({
                "team_id": team_id,
                "name": "Acme",
                "region": "us",
                "admin_email": "a@acme.test",
                "admin_user_id": admin,
                "sign_in_url": "http://app/auth/link?code=clk_us_otc_x",
                "sign_in_url_expires_at": rfc3339,
                "integrations_url": "http://app/integrations/okta",
                "scim_base_url": format!("http://api/api/scim/v2/{team_id}"),
            })
        );
        assert!(!format!("{created:?}").contains("clk_us_otc_x"));

        let issued = IssuedToken {
            team_id,
            kind: TokenKind::Scim,
            token: "clk_us_scim_secret".into(),
            scopes: scope::join(&[scope::Scope::ScimRead, scope::Scope::ScimWrite]),
            expires_at: at,
            scim_base_url: "http://api/scim".into(),
        };
        assert_eq!(
            printed(&issued),
            json!({
                "team_id": team_id,
                "kind": "scim",
                "token": "clk_us_scim_secret",
                "scopes": "scim.read scim.write",
                "expires_at": rfc3339,
                "scim_base_url": "http://api/scim",
            })
        );
        assert!(!format!("{issued:?}").contains("clk_us_scim_secret"));

        let allowance = OktaDomainAllowance {
            team_id,
            domain: "login.acme.com".into(),
            allowed: true,
            changed: false,
            allowed_okta_domains: vec!["login.acme.com".into()],
        };
        assert_eq!(
            printed(&allowance),
            json!({
                "team_id": team_id,
                "domain": "login.acme.com",
                "allowed": true,
                "changed": false,
                "allowed_okta_domains": ["login.acme.com"],
            })
        );
    }
}
