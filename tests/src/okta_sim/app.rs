//! [`AppHandle`]: one app instance of the org — its OIDC client credentials, its SCIM
//! connection and the provisioning jobs on it, and its Universal Logout requests.

use std::sync::Arc;

use serde_json::Value;

use super::directory::{GroupId, ScimId, UserId};
use super::logout::{self, Forgery, LogoutError, LogoutResponse, Subject};
use super::provisioning::{
    self, Entitlements, Provisioned, ProvisioningError, RoleChange, ScimConnection, ScimExchange,
    ScimSettings,
};
use super::upstream::Upstream;
use super::{Org, lock};

/// A handle on one app instance; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppHandle {
    /// The org.
    org: Arc<Org>,
    /// The app's client id (its key in the directory).
    client_id: String,
}

impl AppHandle {
    pub(crate) fn new(org: Arc<Org>, client_id: String) -> Self {
        Self { org, client_id }
    }

    /// The OIDC client id (`0oa…`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The OIDC client secret.
    pub fn client_secret(&self) -> String {
        lock(&self.org.directory)
            .app(&self.client_id)
            .map(|a| a.client_secret.expose().to_owned())
            .unwrap_or_default()
    }

    /// The app instance's name.
    pub fn name(&self) -> String {
        lock(&self.org.directory)
            .app(&self.client_id)
            .map(|a| a.name.clone())
            .unwrap_or_default()
    }

    /// Registers another redirect URI (an admin editing the app's sign-in settings).
    pub fn add_redirect_uri(&self, uri: &str) {
        if let Some(app) = lock(&self.org.directory).app_mut(&self.client_id) {
            app.redirect_uris.push(uri.to_owned());
        }
    }

    /// Registers another post-logout redirect URI.
    pub fn add_post_logout_redirect_uri(&self, uri: &str) {
        if let Some(app) = lock(&self.org.directory).app_mut(&self.client_id) {
            app.post_logout_redirect_uris.push(uri.to_owned());
        }
    }

    /// Connects provisioning to our SCIM API (replacing any earlier connection and its
    /// log; links to SCIM resources are kept).
    pub fn connect_scim(&self, settings: ScimSettings) -> Result<(), ProvisioningError> {
        let conn =
            ScimConnection::new(settings).map_err(|source| ProvisioningError::Transport {
                method: String::new(),
                path: String::new(),
                source,
            })?;
        lock(&self.org.connections).insert(self.client_id.clone(), Arc::new(conn));
        Ok(())
    }

    /// Every SCIM exchange of the current connection, oldest first.
    pub fn scim_log(&self) -> Vec<ScimExchange> {
        self.org
            .connection(&self.client_id)
            .map(|c| lock(&c.log).clone())
            .unwrap_or_default()
    }

    /// Forgets the exchanges logged so far (to assert on the next job only).
    pub fn clear_scim_log(&self) {
        if let Some(c) = self.org.connection(&self.client_id) {
            lock(&c.log).clear();
        }
    }

    /// The SCIM id of `user` in this app, once provisioned.
    pub fn scim_id(&self, user: &UserId) -> Option<ScimId> {
        lock(&self.org.directory)
            .app(&self.client_id)
            .and_then(|a| a.user_links.get(user).cloned())
    }

    /// The SCIM id of a pushed group.
    pub fn group_scim_id(&self, group: &GroupId) -> Option<ScimId> {
        lock(&self.org.directory)
            .app(&self.client_id)
            .and_then(|a| a.group_links.get(group).cloned())
    }

    /// Whether `user` is assigned.
    pub fn is_assigned(&self, user: &UserId) -> bool {
        lock(&self.org.directory)
            .app(&self.client_id)
            .is_some_and(|a| a.assigned.contains(user))
    }

    /// Assigns `user` (they may sign in) and provisions them: existence check, then
    /// `POST /Users` or a link; a user linked before is reactivated.
    pub async fn assign(&self, user: &UserId) -> Result<Provisioned, ProvisioningError> {
        provisioning::assign(&self.org, &self.client_id, user).await
    }

    /// Unassigns `user`: `PATCH active:false` where provisioned.
    pub async fn unassign(&self, user: &UserId) -> Result<(), ProvisioningError> {
        provisioning::unassign(&self.org, &self.client_id, user).await
    }

    /// Assigns every member of `group`, one job each (group assignment).
    pub async fn assign_group(
        &self,
        group: &GroupId,
    ) -> Result<Vec<Provisioned>, ProvisioningError> {
        let members: Vec<UserId> = lock(&self.org.directory)
            .group(group)
            .map(|g| g.members.iter().cloned().collect())
            .ok_or_else(|| ProvisioningError::UnknownGroup(group.to_string()))?;
        let mut out = Vec::with_capacity(members.len());
        for m in &members {
            out.push(self.assign(m).await?);
        }
        Ok(out)
    }

    /// Pushes `group` (Group Push): create or link, then membership.
    pub async fn push_group(&self, group: &GroupId) -> Result<ScimId, ProvisioningError> {
        provisioning::push_group(&self.org, &self.client_id, group).await
    }

    /// Stops pushing `group`; `delete_remote` also deletes it from our side.
    pub async fn unpush_group(
        &self,
        group: &GroupId,
        delete_remote: bool,
    ) -> Result<(), ProvisioningError> {
        provisioning::unpush_group(&self.org, &self.client_id, group, delete_remote).await
    }

    /// Imports every user (paged `GET /Users`).
    pub async fn import_users(&self) -> Result<Vec<Value>, ProvisioningError> {
        provisioning::import(&self.org, &self.client_id, "/Users").await
    }

    /// Imports every group (paged `GET /Groups`).
    pub async fn import_groups(&self) -> Result<Vec<Value>, ProvisioningError> {
        provisioning::import(&self.org, &self.client_id, "/Groups").await
    }

    /// Entitlement discovery (`/ResourceTypes`, then each endpoint).
    pub async fn discover_entitlements(&self) -> Result<Entitlements, ProvisioningError> {
        provisioning::discover_entitlements(&self.org, &self.client_id).await
    }

    /// Changes a provisioned user's roles; returns the user as answered.
    pub async fn change_roles(
        &self,
        user: &UserId,
        change: &RoleChange,
    ) -> Result<Value, ProvisioningError> {
        provisioning::change_roles(&self.org, &self.client_id, user, change).await
    }

    /// The Universal Logout JWT this app's requests to `aud` carry, forged as asked.
    pub fn logout_jwt(&self, aud: &str, forgery: Option<Forgery>) -> Result<String, LogoutError> {
        Ok(logout::build_jwt(&self.org, &self.client_id, aud, forgery)?.0)
    }

    /// Sends a genuine Universal Logout request for `subject` to `endpoint`.
    pub async fn universal_logout(
        &self,
        endpoint: &Upstream,
        subject: &Subject,
    ) -> Result<LogoutResponse, LogoutError> {
        self.logout_with(endpoint, subject, None).await
    }

    /// Sends a forged Universal Logout request.
    pub async fn forged_logout(
        &self,
        endpoint: &Upstream,
        subject: &Subject,
        forgery: Forgery,
    ) -> Result<LogoutResponse, LogoutError> {
        self.logout_with(endpoint, subject, Some(forgery)).await
    }

    async fn logout_with(
        &self,
        endpoint: &Upstream,
        subject: &Subject,
        forgery: Option<Forgery>,
    ) -> Result<LogoutResponse, LogoutError> {
        let (jwt, jti) =
            logout::build_jwt(&self.org, &self.client_id, endpoint.public_str(), forgery)?;
        logout::send(&self.org, endpoint, jwt, jti, subject.body()).await
    }

    /// Sends the org's last Universal Logout request again, unchanged (a replay).
    pub async fn replay_last_logout(&self) -> Result<LogoutResponse, LogoutError> {
        logout::replay_last(&self.org).await
    }
}
