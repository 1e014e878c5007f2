//! A simulated Okta org, faithful to what Okta sends and expects (`OKTA.md`), so that
//! tests and the local launcher can run the whole Okta story offline: OIDC sign-in
//! against the org authorization server, SCIM provisioning driven the way Okta's
//! provisioning engine drives it, the SCIM OAuth client, and Universal Logout.
//!
//! It is a test and demo tool: it never ships in the production binaries.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use closedloop_tests::okta_sim::{OktaSim, directory::NewUser};
//! let sim = OktaSim::start().await?;
//! let jane = sim.add_user(NewUser::new("jane@acme.test", "Jane", "Doe"))?;
//! let app = sim.app();
//! app.assign(&jane).await?; // recorded; provisioned too once `connect_scim` was called
//! println!("issuer {} client {}", sim.issuer(), app.client_id());
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - this file: [`OktaSim`] (start on port 0 or on a caller's listener, stop), its
//!   [`SimConfig`], and the shared org state the server and the handles use.
//! - [`clock`]: the org's clock, which tests move forward instead of sleeping.
//! - [`keys`]: RS256 signing keys, the published JWKS and on-demand rotation.
//! - [`directory`]: users, groups, app instances and their assignments.
//! - [`faults`]: error modes a test switches on (denied sign-in, failing or slow token
//!   endpoint, bad ID tokens).
//! - [`oidc`]: the org authorization server's endpoints (discovery, authorize and its
//!   login page, token, keys, userinfo, logout).
//! - [`upstream`]: where the sim sends requests: a public URL, optionally reached through
//!   another address with the public host in the `Host` header (the test gateway).
//! - [`provisioning`]: the SCIM client engine (users, groups, import, entitlements,
//!   `429` handling).
//! - [`oauth_client`]: how Okta's admin console obtains and refreshes the SCIM token.
//! - [`logout`]: Universal Logout (Global Token Revocation) requests, good and forged.
//! - [`app`]: [`AppHandle`], the typed handle on one app instance.
//! - [`seed`]: the seed-file format the `okta-sim` binary reads.

pub mod app;
pub mod clock;
pub mod directory;
pub mod faults;
pub mod keys;
pub mod logout;
pub mod oauth_client;
pub mod oidc;
pub mod provisioning;
pub mod seed;
pub mod upstream;

#[cfg(test)]
mod testkit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use app::AppHandle;

use crate::okta_sim::clock::Clock;
use crate::okta_sim::directory::{Directory, DirectoryError, GroupId, NewUser, Profile, UserId};
use crate::okta_sim::faults::{Faults, FaultsHandle};
use crate::okta_sim::keys::{KeySet, KeySource, KeysHandle};
use crate::okta_sim::oidc::Grants;
use crate::okta_sim::provisioning::{ProvisioningError, ScimConnection};
use crate::okta_sim::seed::Seed;

/// How a simulated org is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The org URL (the OIDC issuer, exactly). `None` means `http://{bound address}`;
    /// set it when the sim sits behind a proxy or a name the relying party must use.
    pub base_url: Option<String>,
    /// `max-age` of the JWKS `Cache-Control`, which relying parties must honour.
    pub jwks_max_age: Duration,
    /// Whether keys are freshly generated or taken from the per-process pool (RSA key
    /// generation is slow; tests share key material, each sim gets its own `kid`s).
    pub key_source: KeySource,
    /// Apps, users and groups to start with. With no app, one default app named
    /// `closedloop` is created whose redirect URIs are the test region map's.
    pub seed: Seed,
    /// A PEM private key to sign with instead of a generated one, so that a restarted
    /// demo org keeps the key relying parties cached.
    pub signing_key_pem: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            jwks_max_age: Duration::from_secs(3600),
            key_source: KeySource::Shared,
            seed: Seed::default(),
            signing_key_pem: None,
        }
    }
}

/// The org: everything the server and the handles share.
#[derive(Debug)]
pub(crate) struct Org {
    /// The org URL without a trailing slash; the `iss` of every token.
    pub(crate) issuer: String,
    /// Okta's org id (`00o…`), the ID token's `idp`.
    pub(crate) org_id: String,
    /// Drives every expiry the org decides.
    pub(crate) clock: Clock,
    /// `Cache-Control: max-age` of the JWKS.
    pub(crate) jwks_max_age: Duration,
    /// Where new keys come from on rotation.
    pub(crate) key_source: KeySource,
    /// Published keys, the signing key and the never-published key.
    pub(crate) keys: Mutex<KeySet>,
    /// Users, groups, apps.
    pub(crate) directory: Mutex<Directory>,
    /// Switched-on error modes.
    pub(crate) faults: Mutex<Faults>,
    /// Authorization codes, access tokens, browser sessions, logouts.
    pub(crate) grants: Mutex<Grants>,
    /// SCIM connections by app `client_id`, set by [`AppHandle::connect_scim`].
    pub(crate) connections: Mutex<HashMap<String, Arc<ScimConnection>>>,
    /// The client Universal Logout requests go out with.
    pub(crate) http: reqwest::Client,
    /// The last Universal Logout request sent, so that a test can replay it.
    pub(crate) last_logout: Mutex<Option<logout::SentRequest>>,
}

/// Locks a mutex whether or not a panicking test thread poisoned it: the sim's state
/// stays usable (every critical section leaves it consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Org {
    /// The SCIM connection of app `client_id`, if one was set.
    pub(crate) fn connection(&self, client_id: &str) -> Option<Arc<ScimConnection>> {
        lock(&self.connections).get(client_id).cloned()
    }
}

/// A running simulated Okta org.
#[derive(Debug)]
pub struct OktaSim {
    /// The shared org state.
    org: Arc<Org>,
    /// Where it listens.
    addr: SocketAddr,
    /// Resolves the server's shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The server task, awaited by [`OktaSim::stop`].
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl OktaSim {
    /// An org with the default configuration on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(SimConfig::default()).await
    }

    /// An org with `config` on `127.0.0.1:0`.
    pub async fn start_with(config: SimConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, config).await
    }

    /// An org with `config` serving on the caller's `listener` until [`OktaSim::stop`]
    /// (or drop).
    pub async fn start_on(listener: TcpListener, config: SimConfig) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let issuer = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        url::Url::parse(&issuer).with_context(|| format!("base URL {issuer:?}"))?;
        let mut keys = KeySet::new(config.key_source).await?;
        if let Some(pem) = &config.signing_key_pem {
            keys.replace_signing(keys::SigningKey::from_pem(pem)?);
        }
        let directory = Directory::from_seed(&config.seed)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        let org = Arc::new(Org {
            issuer,
            org_id: directory::okta_id("00o"),
            clock: Clock::new(),
            jwks_max_age: config.jwks_max_age,
            key_source: config.key_source,
            keys: Mutex::new(keys),
            directory: Mutex::new(directory),
            faults: Mutex::new(Faults::default()),
            grants: Mutex::new(Grants::default()),
            connections: Mutex::new(HashMap::new()),
            http,
            last_logout: Mutex::new(None),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let router = oidc::router(org.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Self {
            org,
            addr,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// Stops serving and waits for in-flight requests.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// The org URL: the issuer, exactly (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.org.issuer
    }

    /// The OIDC issuer (the same as [`OktaSim::base_url`], as for Okta's org server).
    pub fn issuer(&self) -> &str {
        &self.org.issuer
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The org's clock: move it forward to expire codes, tokens and logout JWTs.
    pub fn clock(&self) -> &Clock {
        &self.org.clock
    }

    /// The first app instance (the default `closedloop` app unless seeded otherwise).
    pub fn app(&self) -> AppHandle {
        let client_id = lock(&self.org.directory)
            .apps()
            .next()
            .map(|a| a.client_id.clone())
            .unwrap_or_default();
        AppHandle::new(self.org.clone(), client_id)
    }

    /// The app instance named `name`.
    pub fn app_named(&self, name: &str) -> Option<AppHandle> {
        let client_id = lock(&self.org.directory)
            .apps()
            .find(|a| a.name == name)
            .map(|a| a.client_id.clone())?;
        Some(AppHandle::new(self.org.clone(), client_id))
    }

    /// Adds an app instance (its own OIDC client and SCIM connection).
    pub fn add_app(&self, spec: seed::SeedApp) -> Result<AppHandle, DirectoryError> {
        let client_id = lock(&self.org.directory).add_app(&spec)?;
        Ok(AppHandle::new(self.org.clone(), client_id))
    }

    /// Adds an active user; assign it to apps with [`AppHandle::assign`]. Logins are
    /// unique, case-insensitively.
    pub fn add_user(&self, user: NewUser) -> Result<UserId, DirectoryError> {
        lock(&self.org.directory).add_user(user)
    }

    /// The user whose login is `login` (case-insensitive).
    pub fn user_by_login(&self, login: &str) -> Option<UserId> {
        lock(&self.org.directory)
            .user_by_login(login)
            .map(|u| u.id.clone())
    }

    /// A copy of a user's profile.
    pub fn profile(&self, user: &UserId) -> Option<Profile> {
        lock(&self.org.directory)
            .user(user)
            .map(|u| u.profile.clone())
    }

    /// Changes a user's profile and pushes it (`GET` then `PUT`) to every connected
    /// app the user is provisioned to.
    pub async fn update_profile(
        &self,
        user: &UserId,
        change: impl FnOnce(&mut Profile),
    ) -> Result<(), ProvisioningError> {
        provisioning::update_profile(&self.org, user, change).await
    }

    /// Deactivates a user in the org: sign-in stops, and every connected app the user
    /// is provisioned to gets `active:false`.
    pub async fn deactivate_user(&self, user: &UserId) -> Result<(), ProvisioningError> {
        provisioning::set_user_status(&self.org, user, false).await
    }

    /// Reactivates a user: `active:true` to every app the user is assigned to.
    pub async fn reactivate_user(&self, user: &UserId) -> Result<(), ProvisioningError> {
        provisioning::set_user_status(&self.org, user, true).await
    }

    /// Adds a group (not pushed anywhere until [`AppHandle::push_group`]).
    pub fn add_group(&self, name: &str) -> GroupId {
        lock(&self.org.directory).add_group(name)
    }

    /// Renames a group; every app pushing it gets the rename PATCH.
    pub async fn rename_group(&self, group: &GroupId, name: &str) -> Result<(), ProvisioningError> {
        provisioning::rename_group(&self.org, group, name).await
    }

    /// Adds a member; every app pushing the group, where the user is provisioned, gets
    /// the membership PATCH.
    pub async fn add_to_group(
        &self,
        group: &GroupId,
        user: &UserId,
    ) -> Result<(), ProvisioningError> {
        provisioning::change_membership(&self.org, group, user, true).await
    }

    /// Removes a member (the `members[value eq "…"]` PATCH where pushed).
    pub async fn remove_from_group(
        &self,
        group: &GroupId,
        user: &UserId,
    ) -> Result<(), ProvisioningError> {
        provisioning::change_membership(&self.org, group, user, false).await
    }

    /// Deletes a group; every app pushing it gets `DELETE /Groups/{id}`.
    pub async fn delete_group(&self, group: &GroupId) -> Result<(), ProvisioningError> {
        provisioning::delete_group(&self.org, group).await
    }

    /// Key rotation and inspection.
    pub fn keys(&self) -> KeysHandle {
        KeysHandle::new(self.org.clone())
    }

    /// Error modes.
    pub fn faults(&self) -> FaultsHandle {
        FaultsHandle::new(self.org.clone())
    }

    /// A `Cookie` header value (`sid=…`) of a browser already signed in to the org as
    /// `user`: `/oauth2/v1/authorize` with it answers with a code at once (the
    /// non-interactive sign-in for tests).
    pub fn session_cookie(&self, user: &UserId) -> String {
        format!(
            "{}={}",
            oidc::SESSION_COOKIE,
            lock(&self.org.grants).open_session(user, self.org.clock.now())
        )
    }

    /// Signs every `/oauth2/v1/authorize` request without a session in as `user`
    /// (`None` turns it off), for flows where the test cannot attach a cookie.
    pub fn set_auto_sign_in(&self, user: Option<&UserId>) {
        lock(&self.org.grants).auto_sign_in = user.cloned();
    }

    /// What a launcher needs to configure relying parties: the issuer and each app's
    /// credentials and URIs, and the users (the `okta-sim` binary prints this).
    pub fn summary(&self) -> serde_json::Value {
        let dir = lock(&self.org.directory);
        let apps: Vec<serde_json::Value> = dir
            .apps()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "client_id": a.client_id,
                    "client_secret": a.client_secret.expose(),
                    "redirect_uris": a.redirect_uris,
                    "post_logout_redirect_uris": a.post_logout_redirect_uris,
                })
            })
            .collect();
        let users: Vec<serde_json::Value> = dir
            .users()
            .map(|u| serde_json::json!({ "id": u.id.as_str(), "login": u.profile.login, "active": u.active }))
            .collect();
        serde_json::json!({
            "base_url": self.org.issuer,
            "issuer": self.org.issuer,
            "listen": self.addr.to_string(),
            "jwks_uri": format!("{}/oauth2/v1/keys", self.org.issuer),
            "apps": apps,
            "users": users,
        })
    }

    /// Logouts received at `/oauth2/v1/logout`, oldest first.
    pub fn logouts(&self) -> Vec<oidc::LogoutEvent> {
        lock(&self.org.grants).logouts.clone()
    }
}

impl Drop for OktaSim {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
