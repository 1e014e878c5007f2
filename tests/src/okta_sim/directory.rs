//! Okta's Universal Directory, as far as the flows need it: users (profile, password,
//! status), groups and their members, and app instances (each with its OIDC client, its
//! assignments, and the links between Okta users or groups and the SCIM resources the
//! provisioning engine created or matched).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rand::Rng;
use rand::distr::Alphanumeric;
use shared::regions::Secret;

use super::seed::{Seed, SeedApp};

/// An Okta user id (`00u…`, 20 characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

/// An Okta group id (`00g…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(String);

/// The `id` our SCIM server gave a user or group (opaque to Okta).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScimId(String);

macro_rules! id_accessors {
    ($t:ty) => {
        impl $t {
            /// The id as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
id_accessors!(UserId);
id_accessors!(GroupId);
id_accessors!(ScimId);

impl ScimId {
    /// Wraps an id read from a SCIM response.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
}

/// A random Okta-shaped id: a three-character type prefix and 17 alphanumerics.
pub(crate) fn okta_id(prefix: &str) -> String {
    let tail: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(17)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// A random secret of `len` alphanumerics.
pub(crate) fn random_secret(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The profile attributes the ClosedLoop app maps (seed doc, "SCIM Attribute Mapping").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Okta login, sent as `userName`.
    pub login: String,
    /// Primary email.
    pub email: String,
    /// `name.givenName`.
    pub given_name: String,
    /// `name.familyName`.
    pub family_name: String,
    /// `locale`.
    pub locale: String,
}

impl Profile {
    /// `displayName`, as Okta builds it.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
            .trim()
            .to_owned()
    }
}

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The profile.
    pub profile: Profile,
    /// The password the login page accepts; `None` accepts any password (demo orgs).
    pub password: Option<String>,
}

impl NewUser {
    /// A user whose login and email are `login`, locale `en-US`, no password.
    pub fn new(login: &str, given_name: &str, family_name: &str) -> Self {
        Self {
            profile: Profile {
                login: login.to_owned(),
                email: login.to_owned(),
                given_name: given_name.to_owned(),
                family_name: family_name.to_owned(),
                locale: "en-US".to_owned(),
            },
            password: None,
        }
    }

    /// With a password for the login page.
    pub fn with_password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }
}

/// An org user.
#[derive(Debug, Clone)]
pub struct User {
    /// Okta's id (the ID token `sub`, the SCIM `externalId`).
    pub id: UserId,
    /// The profile.
    pub profile: Profile,
    /// The login page's password (`None`: any).
    pub(crate) password: Option<Secret>,
    /// Deactivated users cannot sign in and are deprovisioned.
    pub active: bool,
}

/// An org group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Okta's id.
    pub id: GroupId,
    /// The name pushed as `displayName`.
    pub name: String,
    /// Its members.
    pub members: BTreeSet<UserId>,
}

/// An app instance: one OIDC client and one SCIM connection (one per region, as the
/// seed doc asks).
#[derive(Debug)]
pub struct App {
    /// The instance label (`closedloop` by default).
    pub name: String,
    /// The OIDC client id (`0oa…`), also the `sub` of its Universal Logout JWTs.
    pub client_id: String,
    /// The OIDC client secret.
    pub(crate) client_secret: Secret,
    /// Registered redirect URIs (exact match, as Okta).
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Users assigned to the app (who may sign in to it and are provisioned).
    pub(crate) assigned: BTreeSet<UserId>,
    /// SCIM ids of users the engine created or matched; kept after unassignment, as
    /// Okta keeps the link and reactivates instead of creating again.
    pub(crate) user_links: BTreeMap<UserId, ScimId>,
    /// SCIM ids of pushed groups.
    pub(crate) group_links: BTreeMap<GroupId, ScimId>,
}

/// Why a directory change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Logins are unique in an org (case-insensitively).
    #[error("a user with login {0:?} already exists")]
    DuplicateLogin(String),
    /// App names and client ids are unique.
    #[error("an app named {0:?} or with its client id already exists")]
    DuplicateApp(String),
    /// No app with this name.
    #[error("no app named {0:?}")]
    UnknownApp(String),
    /// No user with this login.
    #[error("no user with login {0:?}")]
    UnknownLogin(String),
    /// A login or app setting that is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// Users, groups and apps.
#[derive(Debug, Default)]
pub struct Directory {
    /// Users by id.
    users: BTreeMap<UserId, User>,
    /// Groups by id.
    groups: BTreeMap<GroupId, Group>,
    /// Apps in creation order (the first is the org's default app).
    apps: Vec<App>,
}

impl Directory {
    /// A directory holding `seed` (one default app when it names none).
    pub fn from_seed(seed: &Seed) -> Result<Self, DirectoryError> {
        let mut dir = Self::default();
        if seed.apps.is_empty() {
            dir.add_app(&SeedApp::test_default())?;
        }
        for app in &seed.apps {
            dir.add_app(app)?;
        }
        for u in &seed.users {
            let mut new = NewUser::new(&u.login, &u.given_name, &u.family_name);
            if let Some(email) = &u.email {
                new.profile.email.clone_from(email);
            }
            if let Some(locale) = &u.locale {
                new.profile.locale.clone_from(locale);
            }
            new.password.clone_from(&u.password);
            let id = dir.add_user(new)?;
            if !u.active
                && let Some(user) = dir.users.get_mut(&id)
            {
                user.active = false;
            }
            for name in &u.apps {
                let app = dir
                    .apps
                    .iter_mut()
                    .find(|a| &a.name == name)
                    .ok_or_else(|| DirectoryError::UnknownApp(name.clone()))?;
                app.assigned.insert(id.clone());
            }
        }
        for g in &seed.groups {
            let gid = dir.add_group(&g.name);
            for login in &g.members {
                let uid = dir
                    .user_by_login(login)
                    .map(|u| u.id.clone())
                    .ok_or_else(|| DirectoryError::UnknownLogin(login.clone()))?;
                if let Some(group) = dir.groups.get_mut(&gid) {
                    group.members.insert(uid);
                }
            }
        }
        Ok(dir)
    }

    /// Adds an app; returns its client id.
    pub fn add_app(&mut self, spec: &SeedApp) -> Result<String, DirectoryError> {
        let client_id = spec.client_id.clone().unwrap_or_else(|| okta_id("0oa"));
        if self
            .apps
            .iter()
            .any(|a| a.name == spec.name || a.client_id == client_id)
        {
            return Err(DirectoryError::DuplicateApp(spec.name.clone()));
        }
        for uri in spec
            .redirect_uris
            .iter()
            .chain(&spec.post_logout_redirect_uris)
        {
            url::Url::parse(uri).map_err(|e| {
                DirectoryError::Invalid(format!("redirect URI {uri:?} is not a URL: {e}"))
            })?;
        }
        self.apps.push(App {
            name: spec.name.clone(),
            client_id: client_id.clone(),
            client_secret: Secret::new(
                spec.client_secret
                    .clone()
                    .unwrap_or_else(|| random_secret(40)),
            ),
            redirect_uris: spec.redirect_uris.clone(),
            post_logout_redirect_uris: spec.post_logout_redirect_uris.clone(),
            assigned: BTreeSet::new(),
            user_links: BTreeMap::new(),
            group_links: BTreeMap::new(),
        });
        Ok(client_id)
    }

    /// Apps in creation order.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.iter()
    }

    /// The app with `client_id`.
    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// The app with `client_id`, to change.
    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| a.client_id == client_id)
    }

    /// Adds an active user.
    pub fn add_user(&mut self, new: NewUser) -> Result<UserId, DirectoryError> {
        let login = new.profile.login.trim();
        if login.is_empty() {
            return Err(DirectoryError::Invalid("a login is required".into()));
        }
        if self.user_by_login(login).is_some() {
            return Err(DirectoryError::DuplicateLogin(login.to_owned()));
        }
        let id = UserId(okta_id("00u"));
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                profile: new.profile,
                password: new.password.map(Secret::new),
                active: true,
            },
        );
        Ok(id)
    }

    /// The user with `id`.
    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.users.get(id)
    }

    /// The user with `id`, to change.
    pub fn user_mut(&mut self, id: &UserId) -> Option<&mut User> {
        self.users.get_mut(id)
    }

    /// The user whose login is `login`, case-insensitively (as Okta matches logins).
    pub fn user_by_login(&self, login: &str) -> Option<&User> {
        let login = login.trim();
        self.users
            .values()
            .find(|u| u.profile.login.eq_ignore_ascii_case(login))
    }

    /// Users, by id.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Adds a group.
    pub fn add_group(&mut self, name: &str) -> GroupId {
        let id = GroupId(okta_id("00g"));
        self.groups.insert(
            id.clone(),
            Group {
                id: id.clone(),
                name: name.to_owned(),
                members: BTreeSet::new(),
            },
        );
        id
    }

    /// The group with `id`.
    pub fn group(&self, id: &GroupId) -> Option<&Group> {
        self.groups.get(id)
    }

    /// The group with `id`, to change.
    pub fn group_mut(&mut self, id: &GroupId) -> Option<&mut Group> {
        self.groups.get_mut(id)
    }

    /// Removes a group.
    pub fn remove_group(&mut self, id: &GroupId) -> Option<Group> {
        self.groups.remove(id)
    }

    /// Whether `user` exists, is active and is assigned to app `client_id`: who may
    /// sign in to that app.
    pub fn may_sign_in(&self, user: &UserId, client_id: &str) -> bool {
        self.user(user).is_some_and(|u| u.active)
            && self
                .app(client_id)
                .is_some_and(|a| a.assigned.contains(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta_sim::seed::{SeedGroup, SeedUser};

    #[test]
    fn ids_have_okta_shapes() {
        let id = okta_id("00u");
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("00u"));
        assert_ne!(okta_id("00u"), id);
    }

    #[test]
    fn logins_are_unique_case_insensitively() {
        let mut dir = Directory::default();
        let id = dir
            .add_user(NewUser::new("Jane@Acme.test", "J", "D"))
            .unwrap();
        assert_eq!(dir.user_by_login("jane@acme.TEST").unwrap().id, id);
        assert_eq!(
            dir.add_user(NewUser::new("JANE@acme.test", "J", "D")),
            Err(DirectoryError::DuplicateLogin("JANE@acme.test".into()))
        );
    }

    #[test]
    fn a_seed_assigns_users_and_fills_groups() {
        let seed = Seed {
            apps: vec![SeedApp::test_default()],
            users: vec![SeedUser {
                login: "a@acme.test".into(),
                given_name: "A".into(),
                family_name: "B".into(),
                email: None,
                password: Some("pw".into()),
                locale: None,
                active: true,
                apps: vec!["closedloop".into()],
            }],
            groups: vec![SeedGroup {
                name: "Eng".into(),
                members: vec!["A@acme.test".into()],
            }],
        };
        let dir = Directory::from_seed(&seed).unwrap();
        let app = dir.apps().next().unwrap();
        let user = dir.user_by_login("a@acme.test").unwrap();
        assert!(dir.may_sign_in(&user.id, &app.client_id));
        assert_eq!(dir.groups.values().next().unwrap().members.len(), 1);

        let mut bad = seed.clone();
        bad.groups[0].members = vec!["nobody@acme.test".into()];
        assert!(matches!(
            Directory::from_seed(&bad),
            Err(DirectoryError::UnknownLogin(_))
        ));
        let mut bad = seed;
        bad.users[0].apps = vec!["other".into()];
        assert!(matches!(
            Directory::from_seed(&bad),
            Err(DirectoryError::UnknownApp(_))
        ));
    }
}
