//! A workspace's Okta settings (`okta_settings`, V1): the org's domain and issuer, the
//! OIDC client id and its secret sealed under the region key (with the key's id), and
//! the two switches of the seed's Step 3. Plain functions over a client or transaction.

use shared::ids::TeamId;
use shared::regions::Secret;
use time::OffsetDateTime;
use uuid::Uuid;

use super::domain::{DomainError, OktaDomain};
use crate::crypto::{CryptoError, Purpose, RegionKey};
use crate::store::pg::GenericClient;
use crate::store::{StoreError, workspaces};

/// The saved settings of one workspace.
#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// The workspace.
    pub team_id: TeamId,
    /// The domain as shown (`acme.okta.com`).
    pub okta_domain: String,
    /// The org issuer (`https://acme.okta.com`).
    pub issuer: String,
    /// The OIDC client id of the workspace's Okta app instance.
    pub client_id: String,
    /// The client secret, sealed ([`crate::crypto`]); never leaves the worker.
    client_secret_sealed: Vec<u8>,
    /// The id of the key that sealed it.
    key_id: String,
    /// "Enable Okta sign-in".
    pub sign_in_enabled: bool,
    /// "Just-in-time provisioning".
    pub jit_provisioning: bool,
    /// When they were last saved.
    pub updated_at: OffsetDateTime,
    /// Who saved them (`user:<id>`).
    pub updated_by: Option<String>,
}

impl OktaSettings {
    /// Opens the client secret.
    pub fn client_secret(&self, key: &RegionKey) -> Result<Secret, CryptoError> {
        let plain = key.open(
            &self.key_id,
            Purpose::OktaClientSecret,
            &self.team_id.to_string(),
            &self.client_secret_sealed,
        )?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CryptoError::Open)
    }
}

/// Whether the saved org may still be used for a sign-in (DESIGN.md, "Sign-in
/// trust"), checked at login and again at the callback, before any code is sent: the
/// saved domain must still parse under today's development switch (a loopback org
/// saved in development is refused once the switch is off), make the saved issuer,
/// and be Okta's own or a custom domain an operator still allows for the workspace.
/// The outer error is the store's; the inner one says why the org is refused.
pub async fn org_permitted(
    client: &impl GenericClient,
    settings: &OktaSettings,
    development: bool,
) -> Result<Result<OktaDomain, DomainError>, StoreError> {
    let domain = match OktaDomain::parse(&settings.okta_domain, development) {
        Ok(d) if d.issuer() == settings.issuer => d,
        Ok(_) => return Ok(Err(DomainError::Invalid)),
        Err(e) => return Ok(Err(e)),
    };
    if domain.kind().okta_operated() {
        return Ok(Ok(domain));
    }
    let allowed = workspaces::allowed_okta_domains(client, settings.team_id).await?;
    Ok(domain.permitted(&allowed).map(|()| domain))
}

/// What saving writes.
#[derive(Debug)]
pub struct NewSettings<'a> {
    /// The workspace.
    pub team_id: TeamId,
    /// The normalised domain.
    pub okta_domain: &'a str,
    /// The issuer made from it.
    pub issuer: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// A new client secret, or `None` to keep the saved one.
    pub client_secret: Option<&'a str>,
    /// "Enable Okta sign-in".
    pub sign_in_enabled: bool,
    /// "Just-in-time provisioning".
    pub jit_provisioning: bool,
    /// Who saves (`user:<id>`).
    pub updated_by: &'a str,
}

const COLUMNS: &str = "team_id, okta_domain, issuer, client_id, client_secret_sealed, key_id,
     sign_in_enabled, jit_provisioning, updated_at, updated_by";

fn row_to_settings(r: &tokio_postgres::Row) -> OktaSettings {
    OktaSettings {
        team_id: TeamId::from(r.get::<_, Uuid>(0)),
        okta_domain: r.get(1),
        issuer: r.get(2),
        client_id: r.get(3),
        client_secret_sealed: r.get(4),
        key_id: r.get(5),
        sign_in_enabled: r.get(6),
        jit_provisioning: r.get(7),
        updated_at: r.get(8),
        updated_by: r.get(9),
    }
}

/// The settings of `team_id`, if saved.
pub async fn get(
    client: &impl GenericClient,
    team_id: TeamId,
) -> Result<Option<OktaSettings>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM okta_settings WHERE team_id = $1"),
            &[&team_id.as_uuid()],
        )
        .await?;
    Ok(row.as_ref().map(row_to_settings))
}

/// The workspaces whose Okta org is `issuer` (a login started from the Okta dashboard
/// names only the org; Universal Logout adds the client id).
pub async fn by_issuer(
    client: &impl GenericClient,
    issuer: &str,
) -> Result<Vec<OktaSettings>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM okta_settings WHERE issuer = $1 ORDER BY team_id LIMIT 50"
            ),
            &[&issuer],
        )
        .await?;
    Ok(rows.iter().map(row_to_settings).collect())
}

/// The workspace whose Okta app is (`issuer`, `client_id`), if any.
pub async fn by_client(
    client: &impl GenericClient,
    issuer: &str,
    client_id: &str,
) -> Result<Option<OktaSettings>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM okta_settings WHERE issuer = $1 AND client_id = $2"),
            &[&issuer, &client_id],
        )
        .await?;
    Ok(row.as_ref().map(row_to_settings))
}

/// Saves the settings; the client secret is sealed under `key`, or kept as it was when
/// [`NewSettings::client_secret`] is `None`. Returns `false` (and writes nothing) when
/// no secret is given and none is saved.
pub async fn save(
    client: &impl GenericClient,
    key: &RegionKey,
    new: &NewSettings<'_>,
) -> Result<bool, StoreError> {
    let team = new.team_id.as_uuid();
    let n = match new.client_secret {
        Some(secret) => {
            let sealed = key.seal(
                Purpose::OktaClientSecret,
                &new.team_id.to_string(),
                secret.as_bytes(),
            );
            client
                .execute(
                    "INSERT INTO okta_settings (team_id, okta_domain, issuer, client_id,
                         client_secret_sealed, key_id, sign_in_enabled, jit_provisioning,
                         updated_at, updated_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9)
                     ON CONFLICT (team_id) DO UPDATE SET okta_domain = $2, issuer = $3,
                         client_id = $4, client_secret_sealed = $5, key_id = $6,
                         sign_in_enabled = $7, jit_provisioning = $8, updated_at = now(),
                         updated_by = $9",
                    &[
                        &team,
                        &new.okta_domain,
                        &new.issuer,
                        &new.client_id,
                        &sealed,
                        &key.id(),
                        &new.sign_in_enabled,
                        &new.jit_provisioning,
                        &new.updated_by,
                    ],
                )
                .await?
        }
        None => {
            client
                .execute(
                    "UPDATE okta_settings SET okta_domain = $2, issuer = $3, client_id = $4,
                         sign_in_enabled = $5, jit_provisioning = $6, updated_at = now(),
                         updated_by = $7
                      WHERE team_id = $1",
                    &[
                        &team,
                        &new.okta_domain,
                        &new.issuer,
                        &new.client_id,
                        &new.sign_in_enabled,
                        &new.jit_provisioning,
                        &new.updated_by,
                    ],
                )
                .await?
        }
    };
    Ok(n == 1)
}
