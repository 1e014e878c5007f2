//! Who signed in: the user of the workspace whose email (or user name) is the verified
//! email Okta vouched for, compared case-insensitively, and only in the workspace whose
//! own Okta org and client issued the ID token. Unknown users are created just in time
//! as Members when the workspace allows it (OKTA.md §8), with `source = 'jit'` and no
//! `externalId`, so that a later SCIM create from Okta adopts them instead of
//! conflicting (`scim/users.rs::create`).

use serde_json::{Value, json};
use shared::ids::TeamId;
use shared::scim::definitions::{USER, USER_URN};
use shared::scim::value::canonicalize_resource;
use uuid::Uuid;

use super::failure::SignInFailure;
use crate::okta::settings::OktaSettings;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditEvent};
use crate::store::roles;
use crate::store::users::{self, UserColumns};

/// The identity Okta asserted.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The verified email.
    pub email: String,
    /// The org's user id (`sub`).
    pub sub: String,
    /// `given_name`, if released.
    pub given_name: Option<String>,
    /// `family_name`, if released.
    pub family_name: Option<String>,
    /// `name`, if released.
    pub name: Option<String>,
}

/// The user who signs in.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn {
    /// The user.
    pub user_id: Uuid,
    /// Their revocation epoch now.
    pub user_epoch: i64,
    /// Whether just-in-time provisioning created them now.
    pub created: bool,
}

/// A candidate user row.
struct Candidate {
    id: Uuid,
    active: bool,
    token_epoch: i64,
    exact: bool,
}

async fn find(
    client: &impl deadpool_postgres::GenericClient,
    team_id: TeamId,
    email: &str,
) -> Result<Vec<Candidate>, StoreError> {
    let rows = client
        .query(
            "SELECT id, active, token_epoch, lower(user_name) = lower($2) AS exact
               FROM users
              WHERE team_id = $1 AND (lower(email) = lower($2) OR lower(user_name) = lower($2))
              ORDER BY exact DESC, seq
              LIMIT 3",
            &[&team_id.as_uuid(), &email],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Candidate {
            id: r.get(0),
            active: r.get(1),
            token_epoch: r.get(2),
            exact: r.get(3),
        })
        .collect())
}

/// Picks the user among candidates: the one whose user name is the email, else the
/// only one.
fn pick(candidates: &[Candidate]) -> Result<Option<&Candidate>, SignInFailure> {
    match candidates {
        [] => Ok(None),
        [first, ..] if first.exact => Ok(Some(first)),
        [only] => Ok(Some(only)),
        _ => Err(SignInFailure::Ambiguous),
    }
}

fn signed_in(c: &Candidate) -> Result<SignedIn, SignInFailure> {
    if !c.active {
        return Err(SignInFailure::Deactivated);
    }
    Ok(SignedIn {
        user_id: c.id,
        user_epoch: c.token_epoch,
        created: false,
    })
}

/// The SCIM resource of a user created just in time.
fn jit_resource(identity: &Identity) -> Value {
    let mut resource = json!({
        "schemas": [USER_URN],
        "userName": identity.email,
        "emails": [{ "value": identity.email, "type": "work", "primary": true }],
        "active": true,
    });
    let mut name = serde_json::Map::new();
    if let Some(g) = identity
        .given_name
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = identity
        .family_name
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        resource["name"] = Value::Object(name);
    }
    if let Some(n) = identity.name.as_deref().filter(|s| !s.trim().is_empty()) {
        resource["displayName"] = json!(n);
    }
    resource
}

/// Finds the user who signs in, creating them as a Member when just-in-time
/// provisioning is on.
pub async fn resolve(
    state: &AppState,
    settings: &OktaSettings,
    identity: &Identity,
) -> Result<SignedIn, SignInFailure> {
    let team_id = settings.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    if let Some(c) = pick(&find(&client, team_id, &identity.email).await?)? {
        return signed_in(c);
    }
    if !settings.jit_provisioning {
        return Err(SignInFailure::NotProvisioned);
    }
    let resource = canonicalize_resource(&jit_resource(identity), &USER)
        .map_err(|_| SignInFailure::NoVerifiedEmail)?;
    let cols = UserColumns::of(&resource).ok_or(SignInFailure::NoVerifiedEmail)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let id = Uuid::new_v4();
    let Some(created) = users::insert(&tx, team_id, id, &cols, &resource, "jit").await? else {
        // Created concurrently (a second tab, or SCIM): sign in as that user.
        drop(tx);
        let again = find(&client, team_id, &identity.email).await?;
        return match pick(&again)? {
            Some(c) => signed_in(c),
            None => Err(SignInFailure::NotProvisioned),
        };
    };
    let defaults: Vec<Uuid> = roles::list(&tx, team_id)
        .await?
        .iter()
        .filter(|r| r.is_default)
        .map(|r| r.id)
        .collect();
    users::set_roles(&tx, team_id, created.id, &defaults, true).await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor: "okta",
            action: "oidc.user.jit_created",
            target: Some(&created.id.to_string()),
            detail: json!({
                "userName": cols.user_name,
                "okta_sub": identity.sub,
                "issuer": settings.issuer,
                "roles": defaults,
            }),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(%team_id, user_id = %created.id, "user created just in time");
    Ok(SignedIn {
        user_id: created.id,
        user_epoch: created.token_epoch,
        created: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jit_user_is_a_canonical_scim_user() {
        let identity = Identity {
            email: "Jane@Acme.test".into(),
            sub: "00u1".into(),
            given_name: Some("Jane".into()),
            family_name: Some("Doe".into()),
            name: Some("Jane Doe".into()),
        };
        let r = canonicalize_resource(&jit_resource(&identity), &USER).unwrap();
        let cols = UserColumns::of(&r).unwrap();
        assert_eq!(cols.user_name, "Jane@Acme.test");
        assert_eq!(cols.email.as_deref(), Some("Jane@Acme.test"));
        assert_eq!(cols.display_name.as_deref(), Some("Jane Doe"));
        assert!(cols.external_id.is_none(), "SCIM must be able to adopt it");
        let bare = Identity {
            given_name: None,
            family_name: None,
            name: None,
            ..identity
        };
        assert!(canonicalize_resource(&jit_resource(&bare), &USER).is_ok());
    }
}
