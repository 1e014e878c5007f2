//! Who signed in: the user of the workspace bound to the Okta subject of the ID token
//! (DESIGN.md, "Accounts are Okta subjects, not email addresses"), and only in the
//! workspace whose own Okta org and client issued it.
//!
//! 1. A user bound to `(issuer, sub)` at an earlier sign-in, or provisioned by SCIM with
//!    `sub` as `externalId` (Okta's user id is the org's `sub`), is that person, whatever
//!    their email is now (an email changed in Okta keeps the account).
//! 2. Else the verified email (or user name, case-insensitively) finds the account, which
//!    must not be bound to another subject: its `externalId`, when set, must be `sub`,
//!    and a recorded subject must be this one. Its first sign-in records the subject.
//! 3. Else, when the workspace allows it, the user is created just in time as a Member
//!    (OKTA.md §8), bound to the subject, with `source = 'jit'` and no `externalId`, so
//!    that a later SCIM create from Okta adopts them instead of conflicting
//!    (`scim/users.rs::create`).
//!
//! A subject that does not match is refused ([`SignInFailure::SubjectMismatch`]): an
//! email match alone never signs anyone in as an existing user, nor creates a second one.

use serde_json::{Value, json};
use shared::scim::definitions::{USER, USER_URN};
use shared::scim::value::canonicalize_resource;
use uuid::Uuid;

use super::failure::{SignInFailure, record};
use crate::okta::settings::OktaSettings;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::roles;
use crate::store::users::{self, Bound, SignInUser, UserColumns};

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

/// Picks the user among email candidates: the one whose user name is the email, else
/// the only one.
fn pick(candidates: &[SignInUser]) -> Result<Option<&SignInUser>, SignInFailure> {
    match candidates {
        [] => Ok(None),
        [first, ..] if first.exact => Ok(Some(first)),
        [only] => Ok(Some(only)),
        _ => Err(SignInFailure::Ambiguous),
    }
}

/// Whether `user` may be signed in as Okta's `(issuer, sub)`: their `externalId`, when
/// set, is `sub`, and a recorded subject is this very one.
fn subject_matches(user: &SignInUser, issuer: &str, sub: &str) -> bool {
    let external_ok = user.external_id.as_deref().is_none_or(|e| e == sub);
    let bound_ok = user
        .okta_subject
        .as_ref()
        .is_none_or(|(i, s)| i == issuer && s == sub);
    external_ok && bound_ok
}

/// Signs in as `user` once their subject is checked (and recorded on first sign-in).
async fn sign_in_as(
    state: &AppState,
    client: &impl crate::store::pg::GenericClient,
    settings: &OktaSettings,
    identity: &Identity,
    user: &SignInUser,
) -> Result<SignedIn, SignInFailure> {
    let mismatch = SignInFailure::SubjectMismatch { user_id: user.id };
    if !subject_matches(user, &settings.issuer, &identity.sub) {
        return Err(mismatch);
    }
    if !user.active {
        return Err(SignInFailure::Deactivated);
    }
    if user.okta_subject.is_none() {
        match users::bind_okta_subject(
            client,
            settings.team_id,
            user.id,
            &settings.issuer,
            &identity.sub,
        )
        .await?
        {
            Bound::Now => {
                record(
                    state,
                    Some(settings.team_id),
                    "okta",
                    AuditAction::OidcUserBound,
                    Some(&user.id.to_string()),
                    json!({ "issuer": settings.issuer, "okta_sub": identity.sub }),
                )
                .await;
            }
            Bound::Already => {}
            Bound::Conflict => return Err(mismatch),
        }
    }
    // A user made without a name (the operator's first admin) takes the one Okta
    // released; `fill_empty_name` never touches a name, nor a SCIM-managed user.
    if users::fill_empty_name(
        client,
        settings.team_id,
        user.id,
        identity.given_name.as_deref(),
        identity.family_name.as_deref(),
    )
    .await?
    {
        tracing::info!(team_id = %settings.team_id, user_id = %user.id, "empty name filled from the ID token");
    }
    Ok(SignedIn {
        user_id: user.id,
        user_epoch: user.token_epoch,
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

/// Finds the user who signs in, by Okta subject first, then by email (an account not
/// bound to another subject), creating them as a Member when just-in-time provisioning
/// is on.
pub async fn resolve(
    state: &AppState,
    settings: &OktaSettings,
    identity: &Identity,
) -> Result<SignedIn, SignInFailure> {
    let team_id = settings.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let bound = users::by_okta_subject(&client, team_id, &settings.issuer, &identity.sub).await?;
    match bound.as_slice() {
        [user] => return sign_in_as(state, &client, settings, identity, user).await,
        [] => {}
        // Two accounts claim this subject (one bound to it, another provisioned with
        // it as externalId): refuse rather than guess.
        [first, ..] => return Err(SignInFailure::SubjectMismatch { user_id: first.id }),
    }
    let by_email = users::by_email_for_sign_in(&client, team_id, &identity.email).await?;
    if let Some(user) = pick(&by_email)? {
        return sign_in_as(state, &client, settings, identity, user).await;
    }
    if !settings.jit_provisioning {
        return Err(SignInFailure::NotProvisioned);
    }
    let resource = canonicalize_resource(&jit_resource(identity), &USER)
        .map_err(|_| SignInFailure::NoVerifiedEmail)?;
    let cols = UserColumns::of(&resource).ok_or(SignInFailure::NoVerifiedEmail)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let id = Uuid::new_v4();
    let Some(created) =
        users::insert(&tx, team_id, id, &cols, &resource, users::UserSource::Jit).await?
    else {
        // Created concurrently (a second tab, or SCIM): that account, if its subject
        // matches.
        drop(tx);
        let again = users::by_email_for_sign_in(&client, team_id, &identity.email).await?;
        return match pick(&again)? {
            Some(user) => sign_in_as(state, &client, settings, identity, user).await,
            None => Err(SignInFailure::NotProvisioned),
        };
    };
    if users::bind_okta_subject(&tx, team_id, created.id, &settings.issuer, &identity.sub).await?
        != Bound::Now
    {
        return Err(SignInFailure::SubjectMismatch {
            user_id: created.id,
        });
    }
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
            action: AuditAction::OidcUserJitCreated,
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

    #[test]
    fn a_subject_matches_only_the_account_it_is_bound_to() {
        let user = |external: Option<&str>, bound: Option<(&str, &str)>| SignInUser {
            id: Uuid::nil(),
            active: true,
            token_epoch: 0,
            exact: true,
            external_id: external.map(str::to_owned),
            okta_subject: bound.map(|(i, s)| (i.to_owned(), s.to_owned())),
        };
        let iss = "https://acme.okta.com";
        assert!(subject_matches(&user(None, None), iss, "00u1"));
        assert!(subject_matches(&user(Some("00u1"), None), iss, "00u1"));
        assert!(subject_matches(
            &user(None, Some((iss, "00u1"))),
            iss,
            "00u1"
        ));
        assert!(!subject_matches(&user(Some("00u2"), None), iss, "00u1"));
        assert!(!subject_matches(
            &user(None, Some((iss, "00u2"))),
            iss,
            "00u1"
        ));
        assert!(!subject_matches(
            &user(None, Some(("https://other.okta.com", "00u1"))),
            iss,
            "00u1"
        ));
        assert!(!subject_matches(
            &user(Some("00u1"), Some((iss, "00u2"))),
            iss,
            "00u1"
        ));
    }
}
